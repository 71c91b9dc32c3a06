#!/usr/bin/env bash
# Network cost of Verse's policy path. Run as root:
#
#   VERSE_BIN=target/debug/verse bench/net.sh     # N=200 connects per case by default
#
# An "outside" host is a network namespace behind a veth (iperf3 server + busybox httpd).
# Measured side by side in one run, from the host and from inside envs' network namespaces
# (entered with nsenter so the same curl/iperf3 binaries run on both sides):
#   - TCP connect latency (curl's time_connect, median of N) and iperf3 throughput (3 s)
#     from a `nat` env vs the host;
#   - connect latency from `allow` envs with 10, 1 000 and 10 000 entries (nft interval
#     sets: lookups should stay flat).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N=${N:-200}
need iperf3 iperf3
need curl curl

OUT_NS=vbench-out-$$
OUT_IF=vbo$$
cleanup_net() {
  ip netns pids "$OUT_NS" 2>/dev/null | xargs -r kill 2>/dev/null
  ip netns del "$OUT_NS" 2>/dev/null
  ip link del "$OUT_IF" 2>/dev/null
  cleanup
}
trap cleanup_net EXIT
ip netns add "$OUT_NS"
ip link add "$OUT_IF" type veth peer name eth0 netns "$OUT_NS"
ip addr add 172.30.99.1/24 dev "$OUT_IF"
ip link set "$OUT_IF" up
echo 1 >"/proc/sys/net/ipv4/conf/$OUT_IF/forwarding"
ip -n "$OUT_NS" addr add 172.30.99.2/24 dev eth0
ip -n "$OUT_NS" link set eth0 up
ip -n "$OUT_NS" link set lo up
ip -n "$OUT_NS" route add default via 172.30.99.1
mkdir -p "$BENCH_TMP/www" && echo ok >"$BENCH_TMP/www/index.html"
ip netns exec "$OUT_NS" busybox httpd -p 8080 -h "$BENCH_TMP/www"
ip netns exec "$OUT_NS" iperf3 -s -D >/dev/null
sleep 0.3
URL=http://172.30.99.2:8080/

start_daemon
"$VERSE" image import busybox "$ROOTFS" >/dev/null
allow_list() { # allow_list N: N-1 filler /32s in 100.64.0.0/10, then the server
  python3 - "$1" <<'PY'
import sys
n = int(sys.argv[1])
items = [f'"100.{64 + i // 65536 % 64}.{i // 256 % 256}.{i % 256}:443"' for i in range(n - 1)]
items.append('"172.30.99.2:*"')
print(", ".join(items))
PY
}
{
  printf '[env.nat]\nimage = "busybox"\nnetwork = "nat"\n'
  for n in 10 1000 10000; do
    printf '\n[env.allow%s]\nimage = "busybox"\nnetwork = { allow = [%s] }\n' "$n" "$(allow_list $n)"
  done
} >"$BENCH_TMP/verse.toml"
t0=$(date +%s.%N)
"$VERSE" apply "$BENCH_TMP/verse.toml" >/dev/null
echo "apply (4 envs, 11 010 allow entries): $(python3 -c "print(round($(date +%s.%N) - $t0, 2))") s" >&2

pid_of() { "$VERSE" ls --json | python3 -c "import json,sys; print([e['pid'] for e in json.load(sys.stdin) if e['name']=='$1'][0])"; }
connect_ms() { # connect_ms [nsenter args...]: median time_connect in ms over N connects
  for _ in $(seq "$N"); do "$@" curl -s -o /dev/null -w '%{time_connect}\n' "$URL"; done |
    python3 -c "import sys,statistics; print('%.3f' % (1000*statistics.median(float(l) for l in sys.stdin)))"
}
iperf_gbps() {
  "$@" iperf3 -c 172.30.99.2 -t 3 -J |
    python3 -c "import json,sys; print('%.2f' % (json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e9))"
}
in_env() { echo nsenter "--net=/proc/$(pid_of "$1")/ns/net"; }

host_c=$(connect_ms)
nat_c=$(connect_ms $(in_env nat))
host_t=$(iperf_gbps)
nat_t=$(iperf_gbps $(in_env nat))
a10=$(connect_ms $(in_env allow10))
a1k=$(connect_ms $(in_env allow1000))
a10k=$(connect_ms $(in_env allow10000))
ratio() { python3 -c "print('%.2f' % ($1/$2))"; }
cat <<TABLE
| path | connect median (ms) | ratio to host | iperf3 (Gbit/s) | ratio to host |
|---|---|---|---|---|
| host → outside | $host_c | 1.00 | $host_t | 1.00 |
| nat env → outside | $nat_c | $(ratio "$nat_c" "$host_c") | $nat_t | $(ratio "$nat_t" "$host_t") |
| allow env, 10 entries | $a10 | $(ratio "$a10" "$host_c") | | |
| allow env, 1 000 entries | $a1k | $(ratio "$a1k" "$host_c") | | |
| allow env, 10 000 entries | $a10k | $(ratio "$a10k" "$host_c") | | |
TABLE

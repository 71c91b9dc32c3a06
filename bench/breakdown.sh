#!/usr/bin/env bash
# Where the time of `verse run --rm busybox -- /bin/true` goes. Run as root:
#
#   bench/breakdown.sh            # RUNS=60 by default
#
# 1. hyperfine of the pieces: process start of the CLI, one daemon round trip
#    (`verse ls`, curl /v1/info), namespace creation (`unshare ...`), bwrap.
# 2. kernel operations verse does per env, timed in a loop from python
#    (ctypes, no process spawn per iteration): overlay mount+umount, cgroup v1
#    mkdir/rmdir across cpu,memory,pids, cgroup v2 mkdir/rmdir, and moving a
#    process into a cgroup (cgroup.procs write) right away or after 100 ms idle.
# 3. one traced `verse run --rm` (strace -f -tt on the daemon and the CLI):
#    a timeline of the notable syscalls and the biggest gaps, and syscall
#    counts of the whole path. strace slows every syscall; read the timeline
#    for order and shape, the hyperfine figures for absolute time.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-60}
WARMUP=${WARMUP:-5}
OUT=${OUT:-$BENCH_TMP/out}
mkdir -p "$OUT"
need hyperfine hyperfine
need bwrap bubblewrap
need strace strace
need curl curl
need python3 python3

start_daemon
SOCK=$VERSE_ROOT/run/verse/verse.sock

echo "== 1. pieces (hyperfine -N, empty daemon)" >&2
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --style basic \
  --export-json "$OUT/pieces.json" \
  -n "true" "true" \
  -n "verse --version" "$VERSE --version" \
  -n "verse ls (round trip)" "$VERSE ls" \
  -n "curl /v1/info" "curl -s --unix-socket $SOCK http://verse/v1/info -o /dev/null" \
  -n "unshare -m true" "unshare -m true" \
  -n "unshare 5 ns + fork" "unshare --fork --pid --mount --net --ipc --uts true" \
  -n "unshare 6 ns + fork" "unshare --fork --pid --mount --net --ipc --uts --cgroup true"

echo "== 2. kernel operations (python ctypes loop)" >&2
python3 - "$BENCH_TMP/k" <<'PY' | tee "$OUT/kernel.txt"
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
base = sys.argv[1]
def check(r, what):
    if r != 0:
        e = ctypes.get_errno(); raise OSError(e, f"{what}: {os.strerror(e)}")
def bench(name, fn, n):
    fn()  # warm
    t = []
    for _ in range(n):
        s = time.perf_counter(); fn(); t.append(time.perf_counter() - s)
    t.sort()
    print(f"  {name:<44} median {t[n//2]*1e3:7.3f} ms   min {t[0]*1e3:7.3f}   max {t[-1]*1e3:7.3f}   (n={n})")
for d in ("lower", "upper", "work", "merged"):
    os.makedirs(f"{base}/{d}")
opts = f"lowerdir={base}/lower,upperdir={base}/upper,workdir={base}/work".encode()
def overlay():
    check(libc.mount(b"overlay", f"{base}/merged".encode(), b"overlay", 0, opts), "mount")
    check(libc.umount2(f"{base}/merged".encode(), 0), "umount")
bench("overlay mount + umount", overlay, 200)
def tmpfs():
    check(libc.mount(b"tmpfs", f"{base}/merged".encode(), b"tmpfs", 0, None), "mount")
    check(libc.umount2(f"{base}/merged".encode(), 0), "umount")
bench("tmpfs mount + umount", tmpfs, 200)
name = f"verse-bench-{os.getpid()}"
ctrls = [c for c in ("cpu", "memory", "pids") if os.path.isdir(f"/sys/fs/cgroup/{c}")]
def v1():
    for c in ctrls: os.mkdir(f"/sys/fs/cgroup/{c}/{name}")
    for c in ctrls: os.rmdir(f"/sys/fs/cgroup/{c}/{name}")
if ctrls:
    bench(f"cgroup v1 mkdir+rmdir ({','.join(ctrls)})", v1, 100)
for c in ctrls:
    bench(f"cgroup v1 mkdir+rmdir ({c})", lambda c=c: (os.mkdir(f"/sys/fs/cgroup/{c}/{name}"), os.rmdir(f"/sys/fs/cgroup/{c}/{name}")), 100)
for v2 in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
    if os.path.exists(f"{v2}/cgroup.controllers"):
        bench(f"cgroup v2 mkdir+rmdir ({v2})", lambda: (os.mkdir(f"{v2}/{name}"), os.rmdir(f"{v2}/{name}")), 100)
        break
def migrate(paths, pause, n=15):
    """Moves a fresh child into fresh cgroups: the write to cgroup.procs that
    every container start does. `pause` idles first, as between two starts."""
    ts = []
    for _ in range(n):
        time.sleep(pause)
        pid = os.fork()
        if pid == 0:
            time.sleep(5); os._exit(0)
        dirs = [f"{p}/{name}" for p in paths]
        for d in dirs: os.mkdir(d)
        s = time.perf_counter()
        for d in dirs:
            with open(d + "/cgroup.procs", "w") as f: f.write(str(pid))
        ts.append(time.perf_counter() - s)
        os.kill(pid, 9); os.waitpid(pid, 0)
        for d in dirs:
            for _ in range(200):
                try: os.rmdir(d); break
                except OSError: time.sleep(0.001)
    ts.sort()
    return f"median {ts[n//2]*1e3:7.3f} ms   min {ts[0]*1e3:7.3f}   max {ts[-1]*1e3:7.3f}   (n={n})"
v1_all = [f"/sys/fs/cgroup/{c}" for c in ("cpu", "cpuacct", "memory", "pids", "freezer") if os.path.isdir(f"/sys/fs/cgroup/{c}")]
for pause in (0.0, 0.1):
    print(f"  {'migrate pid into v1 cpu,cpuacct,memory,pids,freezer':<44} {migrate(v1_all, pause)}  idle {pause*1000:.0f} ms before")
    if os.path.exists("/sys/fs/cgroup/unified/cgroup.controllers"):
        print(f"  {'migrate pid into v2 (unified)':<44} {migrate(['/sys/fs/cgroup/unified'], pause)}  idle {pause*1000:.0f} ms before")
def fork_exit():
    pid = os.fork()
    if pid == 0: os._exit(0)
    os.waitpid(pid, 0)
bench("fork + exit + wait (python)", fork_exit, 200)
PY

echo "== 3. one traced verse run --rm" >&2
"$VERSE" image import busybox "$ROOTFS" >/dev/null
"$VERSE" run --rm busybox -- /bin/true   # warm caches and the store
EV=execve,clone,clone3,vfork,mount,umount2,pivot_root,mkdir,rmdir,connect,accept4,fsync,fdatasync,nanosleep,clock_nanosleep,exit_group,wait4,setns,unshare,kill,unlinkat,renameat2,rename,pwrite64
strace -f -tt -T -e trace=$EV -o "$OUT/daemon.strace" -p "$DAEMON_PID" 2>/dev/null &
ST=$!
sleep 0.5
strace -f -tt -T -e trace=$EV -o "$OUT/cli.strace" "$VERSE" run --rm busybox -- /bin/true
sleep 0.5
kill -INT "$ST"; wait "$ST" 2>/dev/null || true
python3 "$REPO/bench/timeline.py" "$OUT/cli.strace" "$OUT/daemon.strace" | tee "$OUT/timeline.txt"

# Syscall counts over the whole path (daemon side, which includes the shim).
strace -f -c -o "$OUT/daemon.count" -p "$DAEMON_PID" 2>/dev/null &
ST=$!
sleep 0.5
for _ in 1 2 3 4 5; do "$VERSE" run --rm busybox -- /bin/true; done
sleep 0.5
kill -INT "$ST"; wait "$ST" 2>/dev/null || true
echo "-- daemon+shim syscalls over 5 runs (strace -c, top 15 by time)"
head -n 17 "$OUT/daemon.count" | tail -n 15

echo
python3 "$REPO/bench/report.py" "$OUT/pieces.json" "true"

#!/usr/bin/env bash
# YARA scan throughput: verse-scan (yara-x) against Debian's `yara` CLI
# (libyara), the same rules (rules/*.yar) over the same generated corpus, in
# one run. Each tool reads every file of the corpus once per run; hyperfine
# takes the median of RUNS runs; MB/s = corpus size / median.
#
#   sudo bench/scan.sh                 # 200 MiB corpus, 10 runs
#   SIZE_MB=500 RUNS=5 bench/scan.sh
#
# The corpus (under a temp dir, removed at the end) mixes text, random
# binary, zip archives of text, PDF-like files and a few EICAR files.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
SIZE_MB=${SIZE_MB:-200}
RUNS=${RUNS:-10}
need() { command -v "$1" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2; }
need yara yara
need hyperfine hyperfine
need python3 python3
scan=$here/target/release/verse-scan
if [ ! -x "$scan" ]; then
  cargo build --release --manifest-path crates/verse-scan/Cargo.toml --target-dir target >&2
fi
tmp=$(mktemp -d /tmp/verse-scan-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp/corpus" "$SIZE_MB" <<'PY'
import io, os, random, sys, zipfile
out, size_mb = sys.argv[1], int(sys.argv[2])
os.makedirs(out)
rng = random.Random(7)
words = b"the of and storm chapter ledger invoice river quiet download script".split()
eicar = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
total, n = 0, 0
while total < size_mb << 20:
    kind = n % 5
    if kind == 0:   # text
        data = b" ".join(rng.choice(words) for _ in range(rng.randint(20000, 200000)))
    elif kind == 1: # random binary
        data = rng.randbytes(rng.randint(100 << 10, 2 << 20))
    elif kind == 2: # zip of text
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for i in range(5):
                z.writestr(f"f{i}.txt", b" ".join(rng.choice(words) for _ in range(50000)))
        data = buf.getvalue()
    elif kind == 3: # PDF-like
        data = b"%PDF-1.4\n" + rng.randbytes(rng.randint(100 << 10, 1 << 20)) + b"\n%%EOF\n"
    else:           # EICAR now and then, else log-like text
        data = eicar if n % 25 == 4 else b"\n".join(b"%d INFO request ok" % i for i in range(100000))
    open(os.path.join(out, f"{n:05d}.bin"), "wb").write(data)
    total += len(data); n += 1
print(f"corpus: {n} files, {total / 2**20:.1f} MiB", file=sys.stderr)
PY
bytes=$(du -sb "$tmp/corpus" | cut -f1)
files=$(ls "$tmp/corpus" | wc -l)
# The same rule files for both: yara takes them with a namespace each.
yara_rules=()
for r in rules/*.yar; do yara_rules+=("$r"); done
# Sanity: both find the same EICAR files.
v=$("$scan" "$tmp"/corpus/* | grep -c EICAR_Test_File || true)
y=$(yara "${yara_rules[@]}" -r "$tmp/corpus" | grep -c '^EICAR_Test_File' || true)
echo "EICAR files found: verse-scan $v, yara $y" >&2
[ "$v" = "$y" ] || { echo "the two scanners disagree" >&2; exit 1; }
hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$tmp/h.json" \
  -n verse-scan "$scan $tmp/corpus/*" \
  -n "yara $(yara --version)" "yara -r ${yara_rules[*]} $tmp/corpus" >&2
python3 - "$tmp/h.json" "$bytes" "$files" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["results"]
mb = int(sys.argv[2]) / 2**20
print(f"corpus {mb:.1f} MiB in {sys.argv[3]} files")
base = None
for r in runs:
    med = r["median"]
    base = base or med
    print(f"{r['command']:<16} median {med:.3f} s  {mb / med:7.1f} MiB/s  ({med / base:.2f}x verse-scan's time)")
PY

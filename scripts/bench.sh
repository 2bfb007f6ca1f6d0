#!/usr/bin/env bash
# The performance suite (BENCHMARKS.md): builds release binaries, then runs
#   1. optimizerd-bench: every optimizer's step on 1M/8M/32M tensors and a transformer-shaped
#      model, next to a plain C fused Adam loop (-O3 -march=native) at the same size and threads;
#   2. benchmarks/torch_adam.py: torch's CPU Adam (default and fused=True), if torch is installed;
#   3. benchmarks/daemon.py: a step over loopback split into upload/decode/step/encode/download next
#      to PUT+GET of the same bytes; 1/8/64 concurrent sessions; /healthz during 32M steps; memory.
# Prints the tables and writes one JSON file (default .build/bench/results.json).
#
#   scripts/bench.sh [--quick] [--out DIR]
#
# Not part of the tests (CI never runs it): the numbers depend on the machine. Compare the ratios
# within one run; absolute figures on shared machines drift.
set -euo pipefail
cd "$(dirname "$0")/.."

out=.build/bench
quick=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --out) out="$2"; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done
mkdir -p "$out"

swift build -c release --product optimizerd
swift build -c release --product optimizerd-bench
bin=$(swift build -c release --show-bin-path)

if [ "$quick" = 1 ]; then
    kernel_args=(--sizes 1M,8M --transformer 512x2 --repeats 3)
    torch_args=(--sizes 1M,8M --repeats 3)
    daemon_args=(--sizes 1M --repeats 3 --clients 1,8 --seconds 2 --parameters 1M)
else
    kernel_args=()
    torch_args=()
    daemon_args=()
fi

echo "== kernels =="
"$bin/optimizerd-bench" "${kernel_args[@]}" --json "$out/kernels.json"
echo "== torch =="
python3 benchmarks/torch_adam.py "${torch_args[@]}" --json "$out/torch.json"
echo "== daemon =="
python3 benchmarks/daemon.py all --binary "$bin/optimizerd" "${daemon_args[@]}" --json "$out/daemon.json"

python3 - "$out" <<'PY'
import json, platform, subprocess, sys, time
from pathlib import Path
out = Path(sys.argv[1])
results = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": platform.machine(),
           "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()}
for part in ("kernels", "torch", "daemon"):
    path = out / f"{part}.json"
    if path.exists():
        results[part] = json.loads(path.read_text())
(out / "results.json").write_text(json.dumps(results, indent=2))
print(f"results: {out / 'results.json'}")
PY

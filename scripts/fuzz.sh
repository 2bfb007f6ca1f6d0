#!/usr/bin/env bash
# Coverage-guided fuzzing of the safetensors decoder and the request path (Sources/OptimizerFuzzing)
# with libFuzzer and AddressSanitizer, for a fixed time per target.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     # default 300 s; targets safetensors request json
#
# Builds optimizerd-fuzz with -sanitize=fuzzer,address (release, in $FUZZ_SCRATCH, default
# .build-fuzz), runs each target from the kept corpus (Tests/FuzzCorpus/<target>/) plus the seeds
# (Tests/FuzzCorpus/seeds/, from scripts/fuzz/make_seeds.py) and the fixed reproducers
# (Tests/FuzzCorpus/regressions/), then adds to the kept corpus the inputs that reach new edges
# (-set_cover_merge; FUZZ_MERGE=0 leaves the corpus alone). Prints executions, executions/s and
# corpus sizes per target.
#
# Exits non-zero on any crash, broken invariant, leak, timeout (-timeout=10 s per input) or
# out-of-memory (-rss_limit_mb=2048, and -malloc_limit_mb=512 for one allocation: a small input that
# claims a huge tensor must not get its allocation). The reproducer is kept under
# $FUZZ_SCRATCH/fuzz/<target>/artifacts/; replay it without the sanitizer with
#   swift run optimizerd-fuzz <target> <file>
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors request json)
scratch=${FUZZ_SCRATCH:-.build-fuzz}
merge=${FUZZ_MERGE:-1}
corpus_root=Tests/FuzzCorpus
limits=(-rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 -max_len=8192)

echo "== building optimizerd-fuzz (libFuzzer + AddressSanitizer) in $scratch"
nice -n 10 swift build --scratch-path "$scratch" -c release --product optimizerd-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING 2>&1 | grep -v 'ld.gold: warning: Cannot export local symbol' || true
fuzzer="$scratch/release/optimizerd-fuzz"
[ -x "$fuzzer" ] || { echo "fuzz.sh: the build failed" >&2; exit 1; }

# Swift's own crash backtracer would hold a crashing input for ~30 s; libFuzzer reports it instead.
export SWIFT_BACKTRACE=enable=no

count_files() { find "$1" -type f 2>/dev/null | wc -l | tr -d ' '; }

failed=()
summary=()
for target in "${targets[@]}"; do
    work="$scratch/fuzz/$target"
    added=0
    rm -rf "$work/corpus" "$work/merged"
    mkdir -p "$work/corpus" "$work/artifacts" "$corpus_root/$target" "$corpus_root/regressions/$target"
    inputs=("$corpus_root/$target" "$corpus_root/seeds/$target" "$corpus_root/regressions/$target")

    echo "== fuzzing $target for ${seconds}s (log: $work/fuzz.log)"
    status=0
    nice -n 10 "$fuzzer" "$target" "${limits[@]}" -max_total_time="$seconds" -print_final_stats=1 \
        -dict="scripts/fuzz/$target.dict" -artifact_prefix="$work/artifacts/" \
        "$work/corpus" "${inputs[@]}" >"$work/fuzz.log" 2>&1 || status=$?
    runs=$(grep -oE 'stat::number_of_executed_units: +[0-9]+' "$work/fuzz.log" | grep -oE '[0-9]+$' || echo "?")
    speed=$(grep -oE 'stat::average_exec_per_sec: +[0-9]+' "$work/fuzz.log" | grep -oE '[0-9]+$' || echo "?")
    rss=$(grep -oE 'stat::peak_rss_mb: +[0-9]+' "$work/fuzz.log" | grep -oE '[0-9]+$' || echo "?")
    coverage=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$work/fuzz.log" | tail -1 || true)
    found=$(find "$work/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) -newer "$work/corpus" 2>/dev/null || true)

    if [ "$status" -ne 0 ] || [ -n "$found" ]; then
        failed+=("$target")
        echo "!! $target failed (libFuzzer exit $status); the end of its log:"
        grep -vE '^#[0-9]+ +(NEW|REDUCE|pulse)' "$work/fuzz.log" | tail -40
        for file in $found; do echo "!! reproducer: $file   (replay: swift run optimizerd-fuzz $target $file)"; done
        summary+=("$target: FAILED after $runs executions, see $work/fuzz.log")
        continue
    fi

    if [ "$merge" = 1 ]; then
        # Add what reaches edges that the seeds, the regressions and the kept corpus do not (a set
        # cover over edges, not hit counts): the corpus grows by a few small files per run and
        # the files it has stay, so the repository sees no churn.
        mkdir -p "$work/merged"
        cp "$corpus_root/seeds/$target"/* "$corpus_root/regressions/$target"/* "$corpus_root/$target"/* \
            "$work/merged/" 2>/dev/null || true
        baseline=$(ls "$work/merged")
        nice -n 10 "$fuzzer" "$target" "${limits[@]}" -set_cover_merge=1 -use_counters=0 "$work/merged" "$work/corpus" \
            >"$work/merge.log" 2>&1 || { failed+=("$target"); echo "!! merging $target failed: $work/merge.log"; continue; }
        (cd "$work/merged" && rm -f $baseline)
        added=$(count_files "$work/merged")
        cp "$work/merged"/* "$corpus_root/$target/" 2>/dev/null || true
    fi
    kept=$(count_files "$corpus_root/$target")
    summary+=("$target: $runs executions, $speed exec/s, peak RSS ${rss} MB, $coverage, new inputs $(count_files "$work/corpus"), $added kept, corpus $kept files ($(du -sk --apparent-size "$corpus_root/$target" | cut -f1) KB)")
done

echo "== fuzzing summary (${seconds}s per target)"
printf '   %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: failures in ${failed[*]}" >&2
    exit 1
fi

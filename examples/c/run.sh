#!/usr/bin/env bash
# Runs PROGRAM URL DATA against a throw-away daemon: a free port (--port 0, read back from its log),
# a temporary data directory, stopped (SIGTERM) and removed when the program ends, whatever happens.
#   ./run.sh PROGRAM DATA [ARGS...]
# The daemon is $OPTIMIZERD_BIN, else ../../.build/debug/optimizerd next to this script.
set -euo pipefail
program=$1 data=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
binary=${OPTIMIZERD_BIN:-$here/../../.build/debug/optimizerd}
if [ ! -x "$binary" ]; then
    echo "run.sh: no optimizerd binary at $binary: run 'swift build --product optimizerd' in the" \
         "repository root, or set OPTIMIZERD_BIN" >&2
    exit 2
fi

# The daemon reads its flags from OPTIMIZERD_* too: run it with exactly the flags below.
for name in $(compgen -e); do
    case $name in OPTIMIZERD_*) unset "$name" ;; esac
done

scratch=$(mktemp -d "${TMPDIR:-/tmp}/optimizerd-c-example.XXXXXX")
daemon=
stop() {
    if [ -n "$daemon" ] && kill "$daemon" 2>/dev/null; then wait "$daemon" 2>/dev/null || true; fi
    rm -rf "$scratch"
}
trap stop EXIT

"$binary" serve --host 127.0.0.1 --port 0 --data-dir "$scratch/data" --log-level info >"$scratch/log" 2>&1 &
daemon=$!
port=
for _ in $(seq 300); do  # up to 30 s for a cold start
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$scratch/log" | head -n 1)
    if [ -n "$port" ]; then break; fi
    if ! kill -0 "$daemon" 2>/dev/null; then
        echo "run.sh: the daemon exited; its log:" >&2
        cat "$scratch/log" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "run.sh: the daemon did not start listening within 30 s; its log:" >&2
    cat "$scratch/log" >&2
    exit 1
fi
echo "started $binary on http://127.0.0.1:$port (stopped at exit)"
"$program" "http://127.0.0.1:$port" "$data" "$@"

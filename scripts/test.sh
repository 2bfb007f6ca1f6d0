#!/usr/bin/env bash
# The whole test suite: the Swift packages' tests (library, codec, store, daemon, conformance
# through the library and over HTTP), then the Python tests against live daemons (the client, and
# system tests with real processes: kill -9, torn logs, full disks, checkpoints, the API spec; the
# container image built and run on a real Docker engine, integration/container).
# Expects ../shared/conformance beside the repository (or OPTIMIZERD_CONFORMANCE_DIR), for the
# container tests ../shared/container/engine.sh (run as root: it installs and starts the engine),
# and the Python packages that .ci/run installs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Formatting and lint first: the Swift sources against .swift-format, the Python against ruff.toml.
swift format lint --strict --recursive Sources Tests Package.swift
ruff check --quiet . && ruff format --check --quiet .

swift build --build-tests
swift test --skip-build 2>&1 | tee .build/swift-test.log
swift_passed=$(grep -oE 'Test run with [0-9]+ tests? .* passed' .build/swift-test.log | grep -oE '[0-9]+' | head -1 || echo 0)

export OPTIMIZERD_BIN="$PWD/.build/debug/optimizerd"
# pytest imports test files by their base name: two test_x.py in different folders collide and
# stop the whole collection, so refuse that here with the names.
duplicate_tests=$(find clients/python/tests integration -name 'test_*.py' -printf '%f\n' | sort | uniq -d)
if [ -n "$duplicate_tests" ]; then
    echo "error: test files share a base name (pytest cannot collect both): $duplicate_tests" >&2
    exit 1
fi
# -rs lists every skipped test with its reason in the summary.
python3 -m pytest -q -rs -p no:cacheprovider clients/python/tests integration 2>&1 | tee .build/pytest.log
python_passed=$(grep -oE '[0-9]+ passed' .build/pytest.log | tail -1 | grep -oE '[0-9]+' || echo 0)
python_skipped=$(grep -oE '[0-9]+ skipped' .build/pytest.log | tail -1 | grep -oE '[0-9]+' || echo 0)
swift_skipped=$(grep -cE 'Test .* skipped' .build/swift-test.log || true)

# In CI (CI=true, as .ci/run sets it) nothing may skip: a skip there means a missing dependency
# (torch, curl, a browser) that .ci/run should have installed, and a test that silently did not run.
if [ "${CI:-}" = true ] && [ $((python_skipped + swift_skipped)) -gt 0 ]; then
    echo "error: ${python_skipped} Python and ${swift_skipped} Swift tests skipped in CI; every test must run here:" >&2
    grep -E '^SKIPPED' .build/pytest.log >&2 || true
    grep -E 'Test .* skipped' .build/swift-test.log >&2 || true
    exit 1
fi

# A short coverage-guided fuzz run of the decoder and the request path: its own sanitizer build,
# then 30 s per target, about 3 minutes on 2 cores (RELIABILITY.md). swift test above already
# replayed the kept corpus. FUZZ_SECONDS=0 skips it.
if [ "${FUZZ_SECONDS:-30}" != 0 ]; then FUZZ_MERGE=0 scripts/fuzz.sh "${FUZZ_SECONDS:-30}"; fi

echo "tests: $((swift_passed + python_passed)) passed, 0 failed, $((python_skipped + swift_skipped)) skipped"

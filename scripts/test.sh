#!/usr/bin/env bash
# The whole test suite: the Swift packages' tests (library, codec, conformance, daemon).
# Run from anywhere; expects ../shared/conformance beside the repository (or OPTIMIZERD_CONFORMANCE_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
swift test --skip-build

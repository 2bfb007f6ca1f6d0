#!/usr/bin/env bash
# Set up and run the daemon: installs the system packages a fresh Debian/Ubuntu machine lacks,
# builds optimizerd in release mode, and starts it. Extra arguments go to `optimizerd serve`
# (see `optimizerd serve --help`); by default it listens on 127.0.0.1:8080 with ./optimizerd-data.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null && ! dpkg -s zlib1g-dev >/dev/null 2>&1; then
    echo "installing zlib1g-dev (needed to build the gzip support)" >&2
    ${SUDO:-$( [ "$(id -u)" -eq 0 ] || echo sudo )} apt-get update -qq
    ${SUDO:-$( [ "$(id -u)" -eq 0 ] || echo sudo )} apt-get install -y -qq zlib1g-dev >/dev/null
fi

swift build -c release --product optimizerd
exec .build/release/optimizerd serve "$@"

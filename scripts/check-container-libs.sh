#!/usr/bin/env bash
# Checks, without a Docker engine, that the container's runtime stage has every shared library the
# daemon needs:
#
#   1. reads the runtime packages from the Dockerfile (ARG RUNTIME_PACKAGES in the last stage);
#   2. builds the binary as the Dockerfile's build stage does (release, --static-swift-stdlib), into
#      .build-static, unless --binary is given;
#   3. runs `ldd` on it and finds the Debian package of every library (`dpkg -S`): each must be in
#      RUNTIME_PACKAGES (or be Essential or Priority: required, so in every Debian image);
#   4. with --chroot (root only): copies just the files of those packages (`dpkg -L`) and the binary
#      into an empty directory, and runs `optimizerd serve` there under chroot, checked with
#      `optimizerd probe` and stopped with SIGTERM — the runtime stage without its base image.
#
# The host must be the runtime image's Debian release (bookworm) with the Swift toolchain the
# build image has (6.3): that is this project's machine.
#
# Usage: scripts/check-container-libs.sh [--binary PATH] [--chroot]
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
use_chroot=0
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --chroot) use_chroot=1; shift ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

fail() { echo "FAIL: $*" >&2; exit 1; }

# MARK: 1. the runtime stage's packages

runtime_stage=$(awk '/^FROM /{stage=""} {stage = stage $0 "\n"} END {printf "%s", stage}' Dockerfile)
packages=$(printf '%s' "$runtime_stage" | sed -n 's/^ARG RUNTIME_PACKAGES="\(.*\)"$/\1/p')
[ -n "$packages" ] || fail "no ARG RUNTIME_PACKAGES=\"...\" in the Dockerfile's last stage"
printf '%s' "$runtime_stage" | grep -q 'install .*\${RUNTIME_PACKAGES}' \
    || fail "the runtime stage does not apt-get install \${RUNTIME_PACKAGES}"
base_image=$(sed -n 's/^ARG RUNTIME_IMAGE=\(.*\)$/\1/p' Dockerfile)
. /etc/os-release
case "$base_image" in
    *"${VERSION_CODENAME:-?}"*) ;;
    *) echo "warning: runtime image $base_image is not this host's Debian release (${VERSION_CODENAME:-unknown}): package names may differ" >&2 ;;
esac
echo "runtime stage ($base_image) installs: $packages"

# MARK: 2. the binary

if [ -z "$binary" ]; then
    echo "building: swift build -c release --static-swift-stdlib --scratch-path .build-static --product optimizerd"
    swift build -c release --static-swift-stdlib --scratch-path .build-static --product optimizerd >&2
    binary=".build-static/release/optimizerd"
fi
[ -x "$binary" ] || fail "$binary is not an executable"

# MARK: 3. ldd → Debian packages

ldd_output=$(ldd "$binary")
if grep -q "not found" <<<"$ldd_output"; then
    fail "libraries not found: $(grep 'not found' <<<"$ldd_output")"
fi
if grep -qE 'libswift|libFoundation|lib_Foundation|libdispatch|libBlocksRuntime' <<<"$ldd_output"; then
    fail "the Swift runtime is linked dynamically (build with --static-swift-stdlib):
$ldd_output"
fi

# The owning package of a file, trying the path as given and resolved, with and without /usr
# (Debian 12 has a merged /usr, but dpkg records the path each package ships).
owner() {
    local path="$1" candidate resolved
    resolved=$(readlink -f "$path")
    for candidate in "$path" "$resolved" "${path#/usr}" "/usr$path" "${resolved#/usr}" "/usr$resolved"; do
        if dpkg -S "$candidate" >/dev/null 2>&1; then
            dpkg -S "$candidate" 2>/dev/null | head -n1 | cut -d: -f1
            return 0
        fi
    done
    return 1
}

needed=()
missing=()
printf '\n%-28s %-44s %-14s %s\n' "library" "path" "package" "in the image because"
while read -r line; do
    case "$line" in
        *linux-vdso*|"") continue ;;
        *"=>"*) name=${line%% =>*}; path=$(awk '{print $3}' <<<"$line") ;;
        *) path=$(awk '{print $1}' <<<"$line"); name=$(basename "$path") ;;
    esac
    package=$(owner "$path") || fail "no Debian package ships $path"
    if [[ " $packages " == *" $package "* ]]; then
        why="RUNTIME_PACKAGES"
    elif [ "$(dpkg-query -W -f='${Essential}' "$package")" = "yes" ] \
        || [ "$(dpkg-query -W -f='${Priority}' "$package")" = "required" ]; then
        why="in every Debian image (essential/required)"
    else
        why="MISSING"
        missing+=("$package")
    fi
    needed+=("$package")
    printf '%-28s %-44s %-14s %s\n' "$name" "$path" "$package" "$why"
done <<<"$ldd_output"
echo

for package in $packages; do
    if [[ " ${needed[*]} " != *" $package "* ]]; then
        echo "note: $package is installed by the runtime stage but not needed by ldd"
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    fail "add to RUNTIME_PACKAGES in the Dockerfile: $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')"
fi
echo "OK: every library of $binary comes from the runtime stage's packages"

# MARK: 4. run it with only those files (optional)

[ "$use_chroot" = 1 ] || exit 0
[ "$(id -u)" = 0 ] || fail "--chroot needs root"
root=$(mktemp -d /tmp/optimizerd-runtime-XXXXXX)
daemon_pid=""
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then kill -KILL "$daemon_pid" 2>/dev/null || true; fi
    if mountpoint -q "$root/proc" 2>/dev/null; then umount "$root/proc" || umount -l "$root/proc" || true; fi
    if mountpoint -q "$root/proc" 2>/dev/null; then echo "warning: could not unmount $root/proc" >&2; return; fi
    rm -rf "$root"
}
trap cleanup EXIT
# Debian 12's merged /usr: /lib, /lib64, /bin and /sbin are links into /usr, as in the image.
for dir in lib lib64 bin sbin; do
    mkdir -p "$root/usr/$dir"
    if [ -L "/$dir" ]; then ln -s "usr/$dir" "$root/$dir"; fi
done
runtime_files=0
for package in $packages; do
    while read -r file; do
        [ -d "$file" ] && continue
        if [ -f "$file" ] || [ -L "$file" ]; then
            mkdir -p "$root$(dirname "$file")"
            cp -a "$file" "$root$file"
            runtime_files=$((runtime_files + 1))
        fi
    done < <(dpkg -L "$package")
done
if command -v ldconfig >/dev/null; then ldconfig -r "$root" 2>/dev/null || true; fi  # the image's ld.so.cache
mkdir -p "$root/usr/local/bin" "$root/var/lib/optimizerd" "$root/tmp" "$root/dev" "$root/proc"
# A container always has /proc; the Swift runtime reads the command line from it.
mount -t proc proc "$root/proc" || fail "cannot mount /proc in the chroot"
# The few device nodes a container always has (best effort: not every sandbox allows mknod).
mknod -m 666 "$root/dev/null" c 1 3 2>/dev/null || true
mknod -m 444 "$root/dev/urandom" c 1 9 2>/dev/null || true
cp "$binary" "$root/usr/local/bin/optimizerd"
echo "chroot with only the files of: $packages ($runtime_files files)"

chroot_bin=$(command -v chroot) || fail "no chroot command"
port=$(( (RANDOM % 20000) + 30000 ))
chroot "$root" /usr/local/bin/optimizerd --help >/dev/null || fail "optimizerd --help fails in the chroot"
env -i OPTIMIZERD_HOST=127.0.0.1 OPTIMIZERD_PORT="$port" OPTIMIZERD_DATA_DIR=/var/lib/optimizerd \
    OPTIMIZERD_ADMIN_TOKEN=check-container-libs \
    "$chroot_bin" "$root" /usr/local/bin/optimizerd serve >"$root/tmp/daemon.log" 2>&1 &
daemon_pid=$!
healthy=0
for _ in $(seq 1 100); do
    if env -i OPTIMIZERD_PORT="$port" "$chroot_bin" "$root" /usr/local/bin/optimizerd probe >/dev/null 2>&1; then healthy=1; break; fi
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
done
[ "$healthy" = 1 ] || fail "the daemon did not become healthy in the chroot:
$(cat "$root/tmp/daemon.log")"
env -i OPTIMIZERD_PORT="$port" "$chroot_bin" "$root" /usr/local/bin/optimizerd probe
if command -v curl >/dev/null && command -v gzip >/dev/null; then
    # A session from a gzip body (zlib), written to the data directory.
    created=$(printf '{"optimizer":"adam","name":"chroot-check"}' | gzip | curl -sS -o /dev/null -w '%{http_code}' \
        -H "Authorization: Bearer check-container-libs" -H "Content-Type: application/json" \
        -H "Content-Encoding: gzip" --data-binary @- "http://127.0.0.1:$port/v1/sessions")
    [ "$created" = 201 ] || fail "creating a session in the chroot answered $created:
$(cat "$root/tmp/daemon.log")"
    [ -n "$(ls -A "$root/var/lib/optimizerd")" ] || fail "nothing was written to the data directory"
    echo "created a session from a gzip body; the data directory holds: $(ls "$root/var/lib/optimizerd" | tr '\n' ' ')"
fi
kill -TERM "$daemon_pid"
status=0
wait "$daemon_pid" || status=$?
daemon_pid=""
[ "$status" = 0 ] || fail "the daemon exited with $status after SIGTERM:
$(cat "$root/tmp/daemon.log")"
grep -q "optimizerd stopped" "$root/tmp/daemon.log" || fail "no clean stop in the log:
$(cat "$root/tmp/daemon.log")"
echo "OK: in a root holding only those packages' files, the daemon served, answered the probe and stopped cleanly on SIGTERM"

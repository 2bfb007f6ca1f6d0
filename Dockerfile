# syntax=docker/dockerfile:1
#
# optimizerd in a container: built with the official Swift 6.3 image (Debian 12 "bookworm", like the
# machines this project builds on), run on debian:bookworm-slim as a non-root user. The binary links
# the Swift standard library and Foundation statically (--static-swift-stdlib), so the runtime stage
# needs only the few C libraries in RUNTIME_PACKAGES; scripts/check-container-libs.sh checks that
# list against `ldd` of the same build.
#
#   docker build -t optimizerd .
#   docker run -d -p 8080:8080 -v optimizerd-data:/var/lib/optimizerd \
#       -e OPTIMIZERD_ADMIN_TOKEN="$(openssl rand -hex 24)" optimizerd
#
# The image ships the binary without its debug information (see the `symbols` stage to get it) and
# with Swift's crash backtracer switched on. Configuration: every `optimizerd serve` flag has an
# OPTIMIZERD_* variable (see docs/deploy.md).

ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# MARK: build

FROM ${SWIFT_IMAGE} AS build
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
# Dependencies first: this layer is reused until the manifest changes. Package.resolved is not
# tracked, so `Package.*` copies it only when the checkout has one (and then resolution keeps it).
COPY ./Package.* ./
RUN swift package resolve $([ -f ./Package.resolved ] && echo --force-resolved-versions)
COPY openapi.yaml ./
COPY Sources ./Sources
COPY Tests ./Tests
# The optimizer kernels are built for x86-64-v3 (AVX2) by default: the daemon refuses to start on an
# older CPU and says so. --build-arg OPTIMIZERD_PORTABLE=1 builds for any x86-64 (about half the
# kernel throughput; BENCHMARKS.md).
ARG OPTIMIZERD_PORTABLE=
ENV OPTIMIZERD_PORTABLE=${OPTIMIZERD_PORTABLE}
RUN swift build -c release --static-swift-stdlib --product optimizerd \
    && install -D -m 0755 "$(swift build -c release --static-swift-stdlib --show-bin-path)/optimizerd" /out/optimizerd
# The shipped binary is stripped (76 MB instead of 140 MB): its symbols and debug information go to
# /symbols/optimizerd.debug, found from the binary by its build id and .gnu_debuglink. Crash
# backtraces then give addresses, which the `symbols` stage's file turns into functions and lines.
RUN install -d /staging /symbols \
    && objcopy --only-keep-debug /out/optimizerd /symbols/optimizerd.debug \
    && objcopy --strip-all --add-gnu-debuglink=/symbols/optimizerd.debug /out/optimizerd /staging/optimizerd \
    && cp /usr/libexec/swift/linux/swift-backtrace-static /staging/

# MARK: symbols

# The debug information of the image's binary, for gdb, lldb or addr2line:
#   docker build --target symbols -t optimizerd-symbols .
#   docker create --name symbols optimizerd-symbols none && docker cp symbols:/optimizerd.debug . && docker rm symbols
FROM scratch AS symbols
COPY --from=build /symbols/optimizerd.debug /

# MARK: run

FROM ${RUNTIME_IMAGE}
# The shared libraries the binary still loads (`ldd`). debian:bookworm-slim already has them all;
# installing them by name keeps this list the truth if the base changes. No apt lists, package
# archives or caches stay in the layer.
ARG RUNTIME_PACKAGES="libc6 libgcc-s1 libstdc++6 zlib1g"
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends ${RUNTIME_PACKAGES} \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/cache/apt/*.bin \
    && groupadd --system --gid 10001 optimizerd \
    && useradd --system --uid 10001 --gid optimizerd --home-dir /var/lib/optimizerd --no-create-home \
        --shell /usr/sbin/nologin optimizerd \
    && install -d -o optimizerd -g optimizerd -m 0750 /var/lib/optimizerd
COPY --from=build /staging/optimizerd /usr/local/bin/optimizerd
COPY --from=build /staging/swift-backtrace-static /usr/libexec/swift/linux/swift-backtrace-static

ENV OPTIMIZERD_DATA_DIR=/var/lib/optimizerd \
    OPTIMIZERD_HOST=0.0.0.0 \
    OPTIMIZERD_PORT=8080 \
    SWIFT_BACKTRACE=enable=yes,sanitize=yes,threads=all,images=all,interactive=no,swift-backtrace=/usr/libexec/swift/linux/swift-backtrace-static
USER optimizerd:optimizerd
WORKDIR /var/lib/optimizerd
VOLUME ["/var/lib/optimizerd"]
EXPOSE 8080
# The daemon finishes running steps, snapshots every session and exits 0 on SIGTERM; give it time
# with `docker stop --time 30` for large sessions.
STOPSIGNAL SIGTERM
# `optimizerd probe` GETs /healthz on the port (and scheme) this environment configures.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["/usr/local/bin/optimizerd", "probe"]
# Exec form: the daemon is PID 1 and receives SIGTERM itself.
ENTRYPOINT ["/usr/local/bin/optimizerd"]
CMD ["serve"]

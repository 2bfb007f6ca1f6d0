"""The HTTP step at the speed of the wire: optimizerd next to the floor and to a peer (issue 13).

    swift build -c release --product optimizerd
    python3 benchmarks/wire_speed.py step  [--parameters 8M] [--requests 30]
    python3 benchmarks/wire_speed.py large [--parameters 200M] [--tensors 8] [--steps 3] [--curl]

`step`: one Adam step of an f32 model (gradients up, parameters down, 4 bytes per parameter each
way) sent with curl — a C client on one keep-alive connection per server, so the client is not
what is measured — to three servers started here, in interleaved rounds so that all three see the
same machine:
  - optimizerd with its defaults (data directory on disk, `--fsync periodic`, default snapshots);
  - the FastAPI + uvicorn + torch fused-Adam peer (../shared/bench/peer_server.py);
  - benchmarks/echo_server.py, which answers with the request's own bytes: the floor for an HTTP
    round trip of that size.
Reports median and p99 of each, the ratios, and the daemon's `Server-Timing` phases (medians).

`large`: a 200M-parameter Adam session through the project's Python client (answers decoded into the
parameters, `out=`, as RemoteOptimizer does): the parameter upload
(f32) in MB/s next to the same bytes sent with the same client to the echo server's sink, steps
with bf16 gradients and a bf16 answer end to end, and the daemon's peak resident memory (VmHWM)
next to what it must hold: parameters + Adam's state + one request + one answer. With `--curl`, as
many steps again sent with curl (bf16 both ways), which leaves the Python client's share out.

Benchmarks, not tests: read the ratios; absolute times drift on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mmap
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback import (  # noqa: E402
    DEFAULT_BINARY,
    REPO,
    LocalDaemon,
    parse_count,
    percentile,
    reset_peak,
    rss_bytes,
    wire,
)
from optimizerd import Client  # noqa: E402
from optimizerd.testing import free_port  # noqa: E402

DEFAULT_PEER = REPO.parent / "shared" / "bench" / "peer_server.py"
ECHO = Path(__file__).resolve().parent / "echo_server.py"


# MARK: - Servers


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{process.args} did not listen on {port}")


@contextlib.contextmanager
def python_server(script: Path) -> Iterator[int]:
    """Runs `python3 SCRIPT PORT` until the block ends; yields the port."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(script), str(port)], stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def default_daemon(binary: Path, data_root: Path, extra: List[str]) -> Iterator[LocalDaemon]:
    """optimizerd with its defaults (the log level lowered, `extra` flags added), data under `data_root`."""
    with tempfile.TemporaryDirectory(prefix="optimizerd-wire-", dir=data_root) as root:
        args = ["--log-level", "warning", *extra]
        with LocalDaemon(binary, data_dir=Path(root) / "data", args=args) as running:
            yield running


# MARK: - Step with curl


def curl_rounds(
    targets: Dict[str, Dict[str, Any]], body: Path, rounds: int
) -> Dict[str, List[Dict[str, Any]]]:
    """POSTs `body` to every target `rounds` times, one curl process, rotating the order each round.

    curl keeps one connection per server open across the whole run (its connection cache), sends
    `Expect: 100-continue` as it does for any large body, and reports per transfer its total time,
    the bytes received and the `Server-Timing` header.
    """
    names = list(targets)
    sections = []
    for index in range(rounds):
        order = names[index % len(names) :] + names[: index % len(names)]
        for name in order:
            target = targets[name]
            lines = [
                f'url = "{target["url"]}"',
                f'data-binary = "@{body}"',
                'header = "Content-Type: application/octet-stream"',
                *(f'header = "{header}"' for header in target.get("headers", [])),
                'output = "/dev/null"',
                f'write-out = "{name} %{{http_code}} %{{time_total}} %{{size_download}} %header{{server-timing}}\\n"',
            ]
            sections.append("\n".join(lines))
    with tempfile.NamedTemporaryFile("w", suffix=".curl", delete=False) as config:
        config.write("\nnext\n".join(sections) + "\n")
    try:
        finished = subprocess.run(
            ["curl", "--silent", "--show-error", "--config", config.name],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(config.name)
    results: Dict[str, List[Dict[str, Any]]] = {name: [] for name in names}
    for line in finished.stdout.splitlines():
        name, status, total, size, *timing = line.split(" ", 4)
        if status != "200":
            raise RuntimeError(f"{name}: HTTP {status}")
        phases = {}
        for item in " ".join(timing).split(","):
            phase, _, duration = item.strip().partition(";dur=")
            if phase and duration:
                phases[phase] = float(duration) / 1e3
        results[name].append({"seconds": float(total), "bytes": int(size), "phases": phases})
    return results


def put(url: str, body: bytes, headers: Dict[str, str]) -> None:
    requests.put(url, data=body, headers=headers, timeout=600).raise_for_status()


def step_benchmark(
    binary: Path,
    peer: Path,
    count: int,
    requests_each: int,
    data_root: Path,
    extra: List[str],
    log: Callable[[str], None],
) -> Dict[str, Any]:
    rng = np.random.default_rng(0)
    params = wire.encode({"w": rng.standard_normal(count).astype(np.float32)})
    gradient = wire.encode({"w": (rng.standard_normal(count) * 1e-2).astype(np.float32)})
    warmup = 3
    with contextlib.ExitStack() as stack:
        running = stack.enter_context(default_daemon(binary, data_root, extra))
        peer_port = stack.enter_context(python_server(peer))
        echo_port = stack.enter_context(python_server(ECHO))
        body = (
            Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wire-speed-")))
            / "gradient.safetensors"
        )
        body.write_bytes(gradient)

        created = requests.post(f"{running.url}/v1/sessions", json={"optimizer": "adam"}, timeout=60).json()
        auth = f"Authorization: Bearer {created['token']}"
        daemon_base = f"{running.url}/v1/sessions/{created['id']}"
        put(f"{daemon_base}/parameters", params, {"Authorization": f"Bearer {created['token']}"})
        peer_url = f"http://127.0.0.1:{peer_port}"
        peer_session = requests.post(f"{peer_url}/v1/sessions", json={"optimizer": "adam"}, timeout=60).json()
        put(f"{peer_url}/v1/sessions/{peer_session['id']}/parameters", params, {})

        targets = {
            "optimizerd": {"url": f"{daemon_base}/step", "headers": [auth]},
            "peer": {"url": f"{peer_url}/v1/sessions/{peer_session['id']}/step"},
            "echo": {"url": f"http://127.0.0.1:{echo_port}/echo"},
        }
        results = curl_rounds(targets, body, requests_each + warmup)
        peak = rss_bytes(running.process.pid, "VmHWM") if running.process else 0
    disk = direct_write_seconds(data_root, len(gradient), requests_each)

    summary: Dict[str, Any] = {
        "parameters": count,
        "request_bytes": len(gradient),
        "requests_each": requests_each,
        "daemon_peak_rss_bytes": peak,
        "direct_write_median": statistics.median(disk),
    }
    for name, samples in results.items():
        timed = samples[warmup:]
        seconds = [s["seconds"] for s in timed]
        summary[name] = {
            "median": statistics.median(seconds),
            "p99": percentile(seconds, 99),
            "max": max(seconds),
            "response_bytes": timed[-1]["bytes"],
        }
    phases = [s["phases"] for s in results["optimizerd"][warmup:]]
    summary["optimizerd"]["phases"] = {
        name: statistics.median(p.get(name, 0.0) for p in phases) for name in phases[-1]
    }
    ours, peer_row, echo = summary["optimizerd"], summary["peer"], summary["echo"]
    summary["peer_over_optimizerd"] = peer_row["median"] / ours["median"]
    summary["optimizerd_over_echo"] = ours["median"] / echo["median"]
    summary["optimizerd_p99_over_median"] = ours["p99"] / ours["median"]
    for name in ("optimizerd", "peer", "echo"):
        row = summary[name]
        log(
            f"{name:<10} median {row['median'] * 1e3:7.1f} ms  p99 {row['p99'] * 1e3:7.1f} ms"
            f"  max {row['max'] * 1e3:7.1f} ms  ({row['response_bytes'] / 1e6:.1f} MB back)"
        )
    log(
        f"peer / optimizerd {summary['peer_over_optimizerd']:.2f}x (target ≥ 1.5)"
        f"  optimizerd / echo {summary['optimizerd_over_echo']:.2f}x (target ≤ 1.5)"
        f"  optimizerd p99 / median {summary['optimizerd_p99_over_median']:.2f} (target ≤ 1.5)"
    )
    log(
        "optimizerd Server-Timing medians (ms): "
        + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in ours["phases"].items())
    )
    log(
        f"the request's bytes written with O_DIRECT to the data directory's disk (the `log` phase's floor): "
        f"median {summary['direct_write_median'] * 1e3:.1f} ms"
    )
    return summary


def direct_write_seconds(directory: Path, size: int, times: int) -> List[float]:
    """Seconds to append `size` bytes (rounded up to 4 KiB) `times` times with O_DIRECT to a file in
    `directory`: how fast the disk under the data directory takes one step's log record."""
    directory.mkdir(parents=True, exist_ok=True)
    length = (size + 4095) // 4096 * 4096
    block = mmap.mmap(-1, length)  # page-aligned, as O_DIRECT wants
    block.write(os.urandom(length))
    path = directory / "direct-write-floor.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
    seconds = []
    try:
        for index in range(times):
            start = time.perf_counter()
            os.pwrite(fd, block, index * length)
            seconds.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()
    return seconds


# MARK: - Large model with the project's client


def large_benchmark(
    binary: Path,
    count: int,
    tensors: int,
    steps: int,
    data_root: Path,
    extra: List[str],
    log: Callable[[str], None],
    with_curl: bool = False,
) -> Dict[str, Any]:
    rng = np.random.default_rng(1)
    size = count // tensors
    params = {f"layer{k}.weight": rng.standard_normal(size, dtype=np.float32) for k in range(tensors)}
    grads = {name: (rng.standard_normal(size, dtype=np.float32) * 1e-2) for name in params}
    parameter_bytes = 4 * size * tensors
    # At info level the daemon logs each background snapshot (reported below); a few lines per step.
    with (
        python_server(ECHO) as echo_port,
        default_daemon(binary, data_root, [*extra, "--log-level", "info"]) as running,
    ):
        assert running.process is not None
        pid = running.process.pid
        with Client(running.url) as client:
            session = client.create_session("adam")
            start = time.perf_counter()
            session.upload_parameters(params)
            upload = time.perf_counter() - start
            with requests.Session() as http:
                body = wire.encode(params, keep_order=True)
                start = time.perf_counter()
                http.put(f"http://127.0.0.1:{echo_port}/sink", data=body, timeout=600).raise_for_status()
                sink = time.perf_counter() - start
                del body
            step_seconds = []
            reset_peak(pid)
            for _ in range(steps):
                start = time.perf_counter()
                session.step(grads, dtype="bf16", response_dtype="bf16", out=params)
                step_seconds.append(time.perf_counter() - start)
            peak = rss_bytes(pid, "VmHWM")
            curl_seconds = curl_steps(running.url, session, grads, steps) if with_curl else []
            session.delete()
        snapshots = snapshot_lines(running.log())
    held = parameter_bytes * 3 + 2 * (2 * size * tensors)  # θ, m, v + a bf16 request and answer
    row = {
        "parameters": size * tensors,
        "tensors": tensors,
        "upload_seconds": upload,
        "upload_mb_per_s": parameter_bytes / upload / 1e6,
        "same_bytes_to_echo_sink_mb_per_s": parameter_bytes / sink / 1e6,
        "step_seconds": step_seconds,
        "step_median": statistics.median(step_seconds),
        "peak_rss_bytes": peak,
        "must_hold_bytes": held,
        "peak_over_held": peak / held,
        "curl_steps": curl_seconds,
        "snapshots": snapshots,
    }
    log(
        f"{count / 1e6:.0f}M params in {tensors} tensors: upload {row['upload_mb_per_s']:.0f} MB/s"
        f" (same client, same bytes to the echo sink: {row['same_bytes_to_echo_sink_mb_per_s']:.0f} MB/s)"
    )
    log(
        "bf16 step end to end: " + ", ".join(f"{s:.2f}" for s in step_seconds) + " s"
        f"  | daemon peak RSS {peak / 2**20:.0f} MiB = {row['peak_over_held']:.2f}x"
        f" (θ + m + v + bf16 request + answer = {held / 2**20:.0f} MiB; target ≤ 1.2)"
    )
    for seconds, timing in curl_seconds:
        log(f"the same step sent with curl: {seconds:.2f} s  Server-Timing: {timing}")
    for snapshot in snapshots:
        log(
            f"background snapshot of step {snapshot['step']:.0f}: {snapshot['written_under_lock_bytes'] / 2**20:.0f} MiB"
            f" written under the session's lock, {snapshot['copy_ms']:.0f} ms under it, {snapshot['write_ms']:.0f} ms after"
        )
    return row


def snapshot_lines(text: str) -> List[Dict[str, float]]:
    """The daemon's `snapshot written` log lines past step 0: step, bytes written under the lock,
    time under the lock (copy and that write) and after it."""
    found = []
    for line in text.splitlines():
        if "snapshot written" not in line:
            continue
        fields = dict(re.findall(r"snapshot\.([a-z_]+)=([0-9.]+)", line))
        if int(fields.get("step", "0")) > 0:
            found.append(
                {
                    key: float(fields.get(key, "0"))
                    for key in ("step", "written_under_lock_bytes", "copy_ms", "write_ms")
                }
            )
    return found


def curl_steps(url: str, session: Any, grads: Dict[str, np.ndarray], steps: int) -> List[Any]:
    """`steps` more steps of `session`, the bf16 body sent with curl (a C client, so the Python
    client's share is left out) and a bf16 answer; returns (seconds, Server-Timing) per step."""
    results = []
    with tempfile.TemporaryDirectory(prefix="wire-speed-") as folder:
        body = Path(folder) / "gradient.safetensors"
        for _ in range(steps):
            step = requests.get(
                f"{url}/v1/sessions/{session.id}",
                headers={"Authorization": f"Bearer {session.token}"},
                timeout=60,
            ).json()["step"]
            body.write_bytes(
                wire.encode(grads, dtype="bf16", keep_order=True, metadata={"step": str(step + 1)})
            )
            finished = subprocess.run(
                [
                    "curl", "--silent", "--show-error", "--fail", "--output", "/dev/null",
                    "--header", f"Authorization: Bearer {session.token}",
                    "--header", "Content-Type: application/octet-stream",
                    "--data-binary", f"@{body}",
                    "--write-out", "%{time_total} %header{server-timing}",
                    f"{url}/v1/sessions/{session.id}/step?dtype=bf16",
                ],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            seconds, _, timing = finished.stdout.partition(" ")
            results.append((float(seconds), timing))
    return results


# MARK: - Main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", choices=["step", "large", "all"])
    parser.add_argument("--binary", type=Path, default=Path(os.environ.get("OPTIMIZERD_BIN", DEFAULT_BINARY)))
    parser.add_argument("--peer", type=Path, default=DEFAULT_PEER, help="the FastAPI + torch peer server")
    parser.add_argument("--parameters", help="step: 8M; large: 200M")
    parser.add_argument("--requests", type=int, default=30, help="step: timed requests per server")
    parser.add_argument("--tensors", type=int, default=8, help="large: tensors the parameters are split into")
    parser.add_argument("--steps", type=int, default=3, help="large: timed steps")
    parser.add_argument(
        "--curl",
        action="store_true",
        help="large: then as many steps again sent with curl (the daemon's share alone)",
    )
    parser.add_argument(
        "--data-root", type=Path, default=Path(tempfile.gettempdir()), help="where the daemon keeps its data"
    )
    parser.add_argument(
        "--daemon-arg",
        action="append",
        default=[],
        help="an extra flag for optimizerd, e.g. --daemon-arg=--durability=snapshot (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if not args.binary.exists():
        sys.exit(f"{args.binary} not found: build it with `swift build -c release --product optimizerd`")

    def log(line: str) -> None:
        print(line, flush=True)

    results: Dict[str, Any] = {
        "data_root": str(args.data_root),
        "daemon_args": args.daemon_arg,
        "load_average": os.getloadavg(),
    }
    if args.part in ("step", "all"):
        count = parse_count(args.parameters or "8M")
        log(f"== {count / 1e6:g}M-parameter Adam step (f32 both ways) with curl: optimizerd, peer, echo ==")
        results["step"] = step_benchmark(
            args.binary, args.peer, count, args.requests, args.data_root, args.daemon_arg, log
        )
    if args.part in ("large", "all"):
        count = parse_count(args.parameters or "200M")
        log(f"== {count / 1e6:g}M parameters with the project's client: upload, bf16 steps, peak memory ==")
        results["large"] = large_benchmark(
            args.binary, count, args.tensors, args.steps, args.data_root, args.daemon_arg, log, args.curl
        )
    log(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores, shared)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""A large session's checkpoint download (`GET …/checkpoint`): time and the daemon's extra memory.

    swift build -c release --product optimizerd
    python3 benchmarks/checkpoint.py [--parameters 100M] [--binary …]

An Adam session of `--parameters` float32 parameters in 4 tensors takes one step (so the file holds
θ, m and v: 12 bytes per parameter), then its checkpoint is downloaded three ways, each with the
daemon's peak resident memory reset first:
  - curl without `Accept-Encoding` (the floor: the daemon encoding the file and sending it);
  - curl with `Accept-Encoding: gzip` (what `requests` and browsers send by default);
  - `requests.get` with its defaults (how a Python user would fetch it).
Next to them, the same number of bytes sent over a plain loopback socket (the floor for moving
them at all). Reports seconds and the daemon's peak RSS above what it held.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback import DEFAULT_BINARY, daemon, parse_count, reset_peak, rss_bytes  # noqa: E402
from optimizerd import Client  # noqa: E402


def curl(url: str, headers: List[str]) -> float:
    start = time.perf_counter()
    arguments = ["curl", "-sf", "-o", "/dev/null"]
    for header in headers:
        arguments += ["-H", header]
    subprocess.run([*arguments, url], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--binary", type=Path, default=DEFAULT_BINARY)
    parser.add_argument("--parameters", default="100M")
    options = parser.parse_args()
    count = parse_count(options.parameters)
    rng = np.random.default_rng(0)
    params = {f"layer{k}.weight": rng.standard_normal(count // 4, dtype=np.float32) for k in range(4)}
    with daemon(options.binary) as running, Client(running.url) as client:
        assert running.process is not None
        pid = running.process.pid
        session = client.create_session("adam")
        session.upload_parameters(params)
        session.step(
            {name: value * 1e-3 for name, value in params.items()}, dtype="bf16", response_dtype="bf16"
        )
        url = f"{running.url}/v1/sessions/{session.id}/checkpoint"
        auth = f"Authorization: Bearer {session.token}"
        size = len(
            requests.get(
                url,
                headers={"Authorization": f"Bearer {session.token}", "Accept-Encoding": "identity"},
                timeout=600,
            ).content
        )
        held = rss_bytes(pid)
        print(
            f"== checkpoint of a {count / 1e6:g}M-parameter Adam session after one step: {size / 1e6:.0f} MB =="
        )
        rows = [
            ("curl, no Accept-Encoding", lambda: curl(url, [auth])),
            ("curl, Accept-Encoding: gzip", lambda: curl(url, [auth, "Accept-Encoding: gzip"])),
            (
                "requests.get (its defaults)",
                lambda: timed(
                    lambda: (
                        requests.get(
                            url, headers={"Authorization": f"Bearer {session.token}"}, timeout=600
                        ).content
                    )
                ),
            ),
        ]
        for label, run in rows:
            reset_peak(pid)
            seconds = run()
            extra = rss_bytes(pid, "VmHWM") - held
            print(
                f"{label:32s} {seconds:6.2f} s  {size / seconds / 1e6:6.0f} MB/s  daemon peak +{extra / 2**20:.0f} MiB"
            )
        floor = raw_socket_seconds(size)
        print(f"{'the same bytes, raw socket':32s} {floor:6.2f} s  {size / floor / 1e6:6.0f} MB/s")


def raw_socket_seconds(size: int) -> float:
    """Seconds to move `size` bytes from one thread to another over a loopback TCP socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    payload = bytearray(size)

    def send() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.sendall(payload)

    sender = threading.Thread(target=send)
    sender.start()
    buffer = bytearray(1 << 20)
    start = time.perf_counter()
    with socket.create_connection(listener.getsockname()) as receiver:
        received = 0
        while received < size:
            count = receiver.recv_into(buffer)
            if count == 0:
                break
            received += count
    seconds = time.perf_counter() - start
    sender.join()
    listener.close()
    return seconds


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()

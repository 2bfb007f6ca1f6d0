"""The Python client's share of a step, and the step with two clients against two servers.

    swift build -c release --product optimizerd --scratch-path .build-release
    python3 benchmarks/client.py [--parameters 8M] [--repeats 15] [--binary ...] [--peer ...]
                                 [--daemon-arg=--durability=snapshot]

Part 1, the client's own share: one Adam-sized step body (f32 gradients, f32 answer, the
parameter count given) sent to a stub HTTP server on loopback that reads the body and answers a
prepared safetensors buffer of the same size at once, so everything measured is the client's
encode, send, receive and decode. Side by side: the project's client (``Session.step`` with
``out=``), a plain ``requests`` client (``safetensors.numpy.save`` → ``requests.post`` →
``safetensors.numpy.load``), and a raw socket moving the same bytes both ways (no HTTP, no
encoding: the floor).

Part 2, the step: both clients against the release daemon (a temporary data directory,
``--fsync never``) and against the FastAPI + torch fused-Adam peer (``../shared/bench/peer_server.py``),
interleaved, medians. A benchmark, not a test; the machine may be busy, so read the ratios.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
import safetensors.numpy

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "clients" / "python" / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))
import optimizerd  # noqa: E402
from loopback import parse_count  # noqa: E402
from optimizerd.session import Session  # noqa: E402
from optimizerd.testing import LocalDaemon, free_port  # noqa: E402


class StubServer:
    """HTTP/1.1 on loopback: reads each request's body and answers ``answer`` (keep-alive)."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            connection, _ = self.listener.accept()
            threading.Thread(target=self._talk, args=(connection,), daemon=True).start()

    def _talk(self, connection: socket.socket) -> None:
        reader = connection.makefile("rb")
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        head += f"Content-Length: {len(self.answer)}\r\n\r\n".encode()
        sink = bytearray(1 << 20)
        while True:
            length = 0
            line = reader.readline()
            if not line:
                return
            while line not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                line = reader.readline()
            while length:
                length -= reader.readinto(memoryview(sink)[: min(length, len(sink))])
            connection.sendall(head)
            connection.sendall(self.answer)


def raw_round_trip(nbytes_out: int, nbytes_back: int) -> float:
    """Seconds to move the bytes one way and back over a plain loopback TCP socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    payload = bytes(nbytes_back)

    def echo() -> None:
        connection, _ = listener.accept()
        sink = bytearray(1 << 20)
        left = nbytes_out
        while left:
            left -= connection.recv_into(sink, min(left, len(sink)))
        connection.sendall(payload)
        connection.close()

    threading.Thread(target=echo, daemon=True).start()
    client = socket.create_connection(listener.getsockname())
    data = bytes(nbytes_out)
    back = bytearray(nbytes_back)
    started = time.perf_counter()
    client.sendall(data)
    view, got = memoryview(back), 0
    while got < nbytes_back:
        got += client.recv_into(view[got:])
    seconds = time.perf_counter() - started
    client.close()
    listener.close()
    return seconds


def requests_step(http: requests.Session, url: str, token: str, gradient: np.ndarray) -> np.ndarray:
    body = safetensors.numpy.save({"w": gradient})
    answer = http.post(
        url,
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"},
    )
    answer.raise_for_status()
    return safetensors.numpy.load(answer.content)["w"]


def wait_for_health(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if requests.get(url + "/healthz", timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.2)


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:8.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parameters", default="8M")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--binary", default=str(REPO / ".build-release" / "release" / "optimizerd"))
    parser.add_argument("--peer", default=str(REPO.parent / "shared" / "bench" / "peer_server.py"))
    parser.add_argument(
        "--daemon-arg",
        action="append",
        default=[],
        help="an extra daemon argument, e.g. --daemon-arg=--durability=snapshot (repeatable)",
    )
    args = parser.parse_args()
    count = parse_count(args.parameters)
    rng = np.random.default_rng(0)
    weights = rng.standard_normal(count).astype(np.float32)
    gradient = rng.standard_normal(count).astype(np.float32)
    out = {"w": np.empty(count, np.float32)}
    print(
        f"{count / 1e6:.0f}M parameters, f32 both ways ({count * 4 / 1e6:.0f} MB each way), {args.repeats} repeats"
    )

    # Part 1: the client's share, against a stub that answers at once.
    stub = StubServer(safetensors.numpy.save({"w": weights}))
    stub_session = Session(optimizerd.Client(stub.url), "stub", "token")
    http = requests.Session()
    share: dict[str, list[float]] = {"optimizerd client": [], "requests client": [], "raw socket": []}
    for _ in range(args.repeats):
        started = time.perf_counter()
        stub_session.step({"w": gradient}, out=out)
        share["optimizerd client"].append(time.perf_counter() - started)
        started = time.perf_counter()
        requests_step(http, stub.url + "/step", "token", gradient)
        share["requests client"].append(time.perf_counter() - started)
        share["raw socket"].append(raw_round_trip(count * 4, count * 4))
    print("\nclient share (stub server answering at once), median ms:")
    for label, samples in share.items():
        print(
            f"  {label:<20} {median_ms(samples)}   x raw {statistics.median(samples) / statistics.median(share['raw socket']):5.2f}"
        )

    # Part 2: the step against the daemon and the peer, both clients, interleaved.
    port = free_port()
    peer = subprocess.Popen([sys.executable, args.peer, str(port)], stderr=subprocess.DEVNULL)
    try:
        peer_url = f"http://127.0.0.1:{port}"
        wait_for_health(peer_url)
        with (
            tempfile.TemporaryDirectory() as data_dir,
            LocalDaemon(
                args.binary,
                args=["--data-dir", data_dir, "--fsync", "never", "--log-level", "warning", *args.daemon_arg],
            ) as daemon,
        ):
            steps: dict[str, list[float]] = {}
            targets = {}
            for server, url in (("optimizerd", daemon.url), ("peer", peer_url)):
                client = optimizerd.Client(url)
                session = client.create_session("adam", lr=1e-3)
                session.upload_parameters({"w": weights})
                targets[server] = (session, f"{url}/v1/sessions/{session.id}/step")
            for _ in range(args.repeats):
                for server, (session, step_url) in targets.items():
                    started = time.perf_counter()
                    session.step({"w": gradient}, out=out)
                    steps.setdefault(f"{server}, optimizerd client", []).append(time.perf_counter() - started)
                    started = time.perf_counter()
                    requests_step(http, step_url, session.token, gradient)
                    steps.setdefault(f"{server}, requests client", []).append(time.perf_counter() - started)
                    session.last_step += 1  # the requests client's step
    finally:
        peer.terminate()
        peer.wait()
    print("\nAdam step, median ms (server, client):")
    for label, samples in steps.items():
        print(f"  {label:<30} {median_ms(samples)}")
    for client in ("optimizerd client", "requests client"):
        ratio = statistics.median(steps[f"optimizerd, {client}"]) / statistics.median(
            steps[f"peer, {client}"]
        )
        print(f"  optimizerd / peer with the {client}: {ratio:.2f}")


if __name__ == "__main__":
    main()

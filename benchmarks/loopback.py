"""Loopback plumbing shared by the daemon benchmarks (daemon.py, wire_speed.py): keep-alive HTTP
connections with client-side timestamps, throw-away daemons, and the daemon's resident memory.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "clients" / "python" / "src"))
from optimizerd import wire  # noqa: E402
from optimizerd.testing import LocalDaemon  # noqa: E402

DEFAULT_BINARY = REPO / ".build" / "release" / "optimizerd"

# MARK: - HTTP plumbing


def parse_count(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * scale)


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


@dataclass
class Exchange:
    """One request/response with client-side timestamps (seconds, perf_counter)."""

    status: int
    body: bytes
    headers: Dict[str, str]
    start: float
    head: float  # response head received
    end: float  # response body read

    @property
    def total(self) -> float:
        return self.end - self.start

    @property
    def download(self) -> float:
        return self.end - self.head

    def server_timing(self) -> Dict[str, float]:
        """Server-Timing phases in seconds."""
        phases: Dict[str, float] = {}
        for item in self.headers.get("server-timing", "").split(","):
            name, _, duration = item.strip().partition(";dur=")
            if name and duration:
                phases[name] = float(duration) / 1e3
        return phases


class Connection:
    """One keep-alive HTTP/1.1 connection to the daemon."""

    def __init__(self, port: int, token: Optional[str] = None, timeout: float = 120) -> None:
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.token = token

    def request(
        self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None
    ) -> Exchange:
        all_headers = dict(headers or {})
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        start = time.perf_counter()
        self.http.request(method, path, body=body, headers=all_headers)
        response = self.http.getresponse()
        head = time.perf_counter()
        data = response.read()
        end = time.perf_counter()
        return Exchange(
            response.status, data, {k.lower(): v for k, v in response.getheaders()}, start, head, end
        )

    def close(self) -> None:
        self.http.close()


def create_session(port: int, config: Dict[str, Any]) -> Tuple[str, str]:
    connection = Connection(port)
    answer = connection.request(
        "POST", "/v1/sessions", json.dumps(config).encode(), {"Content-Type": "application/json"}
    )
    connection.close()
    if answer.status != 201:
        raise RuntimeError(f"create failed: {answer.status} {answer.body[:300]!r}")
    created = json.loads(answer.body)
    return created["id"], created["token"]


def checked(exchange: Exchange, what: str) -> Exchange:
    if exchange.status != 200:
        raise RuntimeError(f"{what}: HTTP {exchange.status}: {exchange.body[:300]!r}")
    return exchange


DATA_ROOT: Optional[Path] = None  # --data-root: where daemons keep their data (default: a temp dir on disk)


@contextlib.contextmanager
def daemon(binary: Path, *extra: str) -> Iterator[LocalDaemon]:
    with tempfile.TemporaryDirectory(prefix="optimizerd-bench-", dir=DATA_ROOT) as root:
        args = ["--fsync", "never", "--snapshot-every", "1000000", "--log-level", "warning", *extra]
        with LocalDaemon(binary, data_dir=Path(root) / "data", args=args) as running:
            yield running


def safetensors_bytes(
    tensors: Dict[str, np.ndarray], dtype: str, metadata: Optional[Dict[str, str]] = None
) -> bytes:
    """A safetensors body with float values in `dtype` ("F32" or "BF16"), as the Python client writes it."""
    return wire.encode(tensors, metadata=metadata, dtype=dtype.lower())


# MARK: - Memory


def rss_bytes(pid: int, field_name: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field_name} not found")


def reset_peak(pid: int) -> bool:
    """Resets VmHWM (Linux ≥ 4.0: writing 5 to clear_refs)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False

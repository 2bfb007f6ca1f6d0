"""What the load run watches while it runs: /healthz latency (from a separate process, so the
clients' threads cannot delay the probe) and the daemon's resident memory."""

from __future__ import annotations

import http.client
import multiprocessing
import threading
import time
from pathlib import Path


def rss_bytes(pid: int) -> int:
    """VmRSS of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def open_descriptors(pid: int) -> int:
    try:
        return len(list(Path(f"/proc/{pid}/fd").iterdir()))
    except OSError:
        return -1


class MemorySampler:
    """Samples the daemon's RSS (and open descriptors) every `interval` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []  # (monotonic time, rss bytes, fds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), rss_bytes(self.pid), open_descriptors(self.pid)))
            except (OSError, RuntimeError):
                return  # the process is gone
            self._stop.wait(self.interval)

    def timeline(self, points: int = 60) -> list[tuple[float, float]]:
        """About `points` (seconds since the start, RSS MiB) pairs spread over the run."""
        if not self.samples:
            return []
        start = self.samples[0][0]
        every = max(1, len(self.samples) // points)
        return [(round(t - start, 1), round(rss / (1 << 20), 1)) for t, rss, _ in self.samples[::every]]

    @property
    def peak(self) -> int:
        return max((rss for _, rss, _ in self.samples), default=0)

    @property
    def peak_descriptors(self) -> int:
        return max((fds for _, _, fds in self.samples), default=0)


def _poll(host: str, port: int, interval: float, timeout: float, stop, results) -> None:
    """Runs in its own process: one fresh connection per probe, as a load balancer would."""
    latencies, failures = [], []
    while not stop.is_set():
        started = time.monotonic()
        try:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
            connection.request("GET", "/healthz", headers={"Connection": "close"})
            response = connection.getresponse()
            response.read()
            connection.close()
            elapsed = time.monotonic() - started
            if response.status != 200:
                failures.append(f"status {response.status} after {elapsed:.3f} s")
            elif elapsed > timeout:
                failures.append(f"answered after {elapsed:.3f} s (limit {timeout} s)")
            latencies.append(elapsed)
        except (OSError, http.client.HTTPException) as error:
            failures.append(f"{error!r} after {time.monotonic() - started:.3f} s")
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
    results.put((latencies, failures))


class HealthPoller:
    """GET /healthz every `interval` seconds; every probe must answer 200 within `timeout`."""

    def __init__(self, host: str, port: int, interval: float = 0.25, timeout: float = 5.0) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._results = context.Queue()
        self._process = context.Process(
            target=_poll,
            args=(host, port, interval, timeout, self._stop, self._results),
            name="healthz",
            daemon=True,
        )
        self.latencies: list[float] = []
        self.failures: list[str] = []

    def start(self) -> HealthPoller:
        self._process.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.latencies, self.failures = self._results.get(timeout=60)
        self._process.join(timeout=10)

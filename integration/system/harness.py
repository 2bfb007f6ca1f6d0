"""Helpers for the system tests: real daemons (processes) on loopback, plain HTTP, real files."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import requests
from safetensors.numpy import load, save

REPO = Path(__file__).resolve().parents[2]
try:
    import optimizerd  # noqa: F401
except ImportError:  # not pip-installed: use the checkout's client
    sys.path.insert(0, str(REPO / "clients" / "python" / "src"))

from optimizerd.testing import LocalDaemon, find_binary  # noqa: E402


def daemon_binary() -> Path:
    return find_binary(hints=[REPO / ".build" / "debug" / "optimizerd"])


class RawSession:
    """A session driven with plain HTTP, so a test knows exactly which steps were acknowledged."""

    def __init__(
        self, url: str, optimizer: str = "adam", hyperparameters: dict | None = None, **options: str
    ) -> None:
        """Creates a session; `options` are further members of the create body (`durability=...`)."""
        self.url = url
        answer = requests.post(
            f"{url}/v1/sessions",
            json={"optimizer": optimizer, "hyperparameters": hyperparameters or {}, **options},
            timeout=30,
        )
        answer.raise_for_status()
        body = answer.json()
        self.id = body["id"]
        self.token = body["token"]

    @classmethod
    def attach(cls, url: str, id: str, token: str) -> RawSession:
        session = cls.__new__(cls)
        session.url, session.id, session.token = url, id, token
        return session

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def path(self, suffix: str = "") -> str:
        return f"{self.url}/v1/sessions/{self.id}{suffix}"

    def upload(self, tensors: dict) -> requests.Response:
        return requests.put(self.path("/parameters"), data=save(tensors), headers=self.headers, timeout=60)

    def step(self, step: int, gradients: dict, timeout: float = 60) -> requests.Response:
        body = save(gradients, metadata={"step": str(step)})
        return requests.post(self.path("/step?return=none"), data=body, headers=self.headers, timeout=timeout)

    def summary(self) -> dict:
        answer = requests.get(self.path(), headers=self.headers, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def parameters(self) -> dict:
        answer = requests.get(self.path("/parameters"), headers=self.headers, timeout=60)
        answer.raise_for_status()
        return load(answer.content)


def model(seed: int = 0, scale: int = 1) -> dict:
    """Initial parameters: a few tensors of different ranks (about 50k·scale elements)."""
    rng = np.random.default_rng(seed)
    return {
        "embed.weight": rng.standard_normal((100 * scale, 64)).astype(np.float32),
        "layer.weight": rng.standard_normal((64, 64)).astype(np.float32),
        "layer.bias": rng.standard_normal((64,)).astype(np.float32),
        "conv.weight": rng.standard_normal((8, 4, 3, 3)).astype(np.float32),
    }


def gradients(parameters: dict, step: int) -> dict:
    """The gradients of `step`: deterministic, different every step."""
    rng = np.random.default_rng(1000 + step)
    return {
        name: (rng.standard_normal(value.shape) * 0.1).astype(np.float32)
        for name, value in parameters.items()
    }


def reference_run(binary: Path, optimizer: str, hyperparameters: dict, initial: dict, steps: int) -> dict:
    """The parameters after `steps` steps on a daemon that never stops."""
    with LocalDaemon(binary, args=["--fsync", "never"]) as daemon:
        session = RawSession(daemon.url, optimizer, hyperparameters)
        assert session.upload(initial).status_code == 200
        for step in range(1, steps + 1):
            answer = session.step(step, gradients(initial, step))
            assert answer.status_code == 200, answer.text
        return session.parameters()


def assert_bit_identical(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert got[name].dtype == expected[name].dtype
        assert np.array_equal(got[name].view(np.uint32), expected[name].view(np.uint32)), name


def data_files(daemon_dir: Path, session_id: str) -> list:
    return sorted(p.name for p in (daemon_dir / "sessions" / session_id).iterdir())


def wait_until(condition, what: str, timeout: float = 60) -> None:
    """Polls `condition` until it holds (for work the daemon does in the background, such as a
    snapshot); fails naming `what` if it does not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


__all__ = [
    "LocalDaemon",
    "RawSession",
    "model",
    "gradients",
    "reference_run",
    "assert_bit_identical",
    "data_files",
    "wait_until",
]

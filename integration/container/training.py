"""Sessions driven with plain HTTP against a containerized daemon, and a trainer that keeps stepping
until the daemon goes away, so a test knows exactly which steps were acknowledged."""

from __future__ import annotations

import threading
from typing import Optional

import numpy as np
import requests
from safetensors.numpy import load, save


class Session:
    """One optimizer session: created with the admin token, then used with its own token."""

    def __init__(self, url: str, id: str, token: str, verify: object = True) -> None:
        self.url, self.id, self.token, self.verify = url, id, token, verify
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def create(cls, url: str, admin_token: str, optimizer: str = "adam", verify: object = True) -> Session:
        answer = requests.post(
            f"{url}/v1/sessions",
            json={"optimizer": optimizer, "hyperparameters": {"lr": 0.01}},
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=30,
            verify=verify,
        )
        assert answer.status_code == 201, answer.text
        body = answer.json()
        return cls(url, body["id"], body["token"], verify)

    def path(self, suffix: str = "") -> str:
        return f"{self.url}/v1/sessions/{self.id}{suffix}"

    def upload(self, tensors: dict) -> requests.Response:
        return self.http.put(self.path("/parameters"), data=save(tensors), timeout=300, verify=self.verify)

    def step(self, step: int, gradients: dict) -> requests.Response:
        body = save(gradients, metadata={"step": str(step)})
        return self.http.post(self.path("/step?return=none"), data=body, timeout=300, verify=self.verify)

    def summary(self) -> dict:
        answer = self.http.get(self.path(), timeout=30, verify=self.verify)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def parameters(self) -> dict:
        answer = self.http.get(self.path("/parameters"), timeout=300, verify=self.verify)
        assert answer.status_code == 200, answer.text
        return load(answer.content)


def model(seed: int = 0) -> dict:
    """Initial parameters: about a million, in tensors of a few ranks."""
    rng = np.random.default_rng(seed)
    return {
        "embed.weight": rng.standard_normal((1000, 1000)).astype(np.float32),
        "layer.bias": rng.standard_normal((1000,)).astype(np.float32),
        "conv.weight": rng.standard_normal((8, 4, 3, 3)).astype(np.float32),
    }


def gradients(parameters: dict, step: int) -> dict:
    """The gradients of `step`: deterministic, different every step."""
    rng = np.random.default_rng(1000 + step)
    return {
        name: (rng.standard_normal(value.shape) * 0.1).astype(np.float32)
        for name, value in parameters.items()
    }


def steps(session: Session, initial: dict, first: int, last: int) -> None:
    """Steps `first` through `last`, each of which must be acknowledged."""
    for step in range(first, last + 1):
        answer = session.step(step, gradients(initial, step))
        assert answer.status_code == 200, f"step {step}: {answer.status_code} {answer.text}"


def assert_bit_identical(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert got[name].dtype == expected[name].dtype
        assert np.array_equal(got[name].view(np.uint32), expected[name].view(np.uint32)), name


class Trainer(threading.Thread):
    """Steps a session from step 1 until a step is not acknowledged (the daemon stopped)."""

    def __init__(self, session: Session, initial: dict) -> None:
        super().__init__(daemon=True)
        self.session, self.initial = session, initial
        self.acknowledged = 0
        self.progress = threading.Condition()
        self.ended_by: Optional[str] = None
        self.done = False

    def run(self) -> None:
        step = 1
        while True:
            try:
                answer = self.session.step(step, gradients(self.initial, step))
            except requests.RequestException as error:
                self.ended_by = f"step {step}: {type(error).__name__}"
                break
            if answer.status_code != 200:
                self.ended_by = f"step {step}: {answer.status_code} {answer.text[:200]}"
                break
            with self.progress:
                self.acknowledged = step
                self.progress.notify_all()
            step += 1
        with self.progress:
            self.done = True
            self.progress.notify_all()

    def wait_for(self, step: int, timeout: float = 120) -> None:
        with self.progress:
            reached = self.progress.wait_for(lambda: self.acknowledged >= step or self.done, timeout)
        assert reached and self.acknowledged >= step, (
            f"trainer at {self.acknowledged}, ended by {self.ended_by}"
        )

"""Helpers of the API contract tests: paths, safetensors bodies, sessions on a live daemon."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests
from safetensors.numpy import save

REPO = Path(__file__).resolve().parents[2]
SPEC_PATH = REPO / "openapi.yaml"
ADMIN_TOKEN = "api-test-admin-token"

#: (operation, "generated" or "real body", status) -> requests, from test_schemathesis.py; printed
#: at the end of the run by conftest.py.
STATISTICS: Counter[tuple[str, str, int]] = Counter()


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors buffer, as any client would write it."""
    return save({name: np.ascontiguousarray(value) for name, value in tensors.items()}, metadata=metadata)


#: The parameters every test session gets: two tensors, one matched by the "*.bias" group.
PARAMETERS = {
    "fc.weight": np.arange(6, dtype=np.float32).reshape(2, 3) / 10,
    "fc.bias": np.array([0.5, -0.5], dtype=np.float32),
}


@dataclass
class Session:
    """A live session: its id, token and the headers that authorise it."""

    base: str
    id: str
    token: str

    @property
    def path(self) -> str:
        return f"/v1/sessions/{self.id}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def create_session(
    http: requests.Session,
    base: str,
    body: dict[str, Any] | None = None,
    *,
    parameters: bool = True,
    steps: int = 0,
    headers: dict[str, str] | None = None,
) -> Session:
    """Creates a session (adam with a bias group unless `body` says otherwise), uploads
    ``PARAMETERS`` and makes `steps` steps, so its summary, history and checkpoint are not empty."""
    body = body or {
        "optimizer": "adam",
        "hyperparameters": {"lr": 0.01},
        "groups": [{"parameters": ["*.bias"], "hyperparameters": {"weight_decay": 0}}],
        "name": "api test",
    }
    response = http.post(base + "/v1/sessions", data=json.dumps(body), headers=headers or {})
    assert response.status_code == 201, response.text
    created = response.json()
    session = Session(base, created["id"], created["token"])
    if parameters:
        response = http.put(
            base + session.path + "/parameters", data=safetensors_bytes(PARAMETERS), headers=session.auth
        )
        assert response.status_code == 200, response.text
    for step in range(1, steps + 1):
        gradients = {name: np.full_like(value, 0.1 * step) for name, value in PARAMETERS.items()}
        response = http.post(
            base + session.path + "/step",
            data=safetensors_bytes(gradients, {"step": str(step), "loss": "1.0"}),
            headers=session.auth,
        )
        assert response.status_code == 200, response.text
    return session

"""Shared by the sharded-session tests: three live daemons, the conformance cases, and bitwise
comparisons (a uniquely named module, like client_support)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from client_support import REPO
from safetensors.numpy import load_file

CONFORMANCE = Path(os.environ.get("OPTIMIZERD_CONFORMANCE_DIR") or REPO.parent / "shared" / "conformance")
CASES = sorted(path.stem for path in CONFORMANCE.glob("*.safetensors"))
COUPLED = ("momo", "momo_adam")


class Case:
    """One golden trajectory: optimizer, hyperparameters, initial values, gradients, losses."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tensors = load_file(str(CONFORMANCE / f"{name}.safetensors"))
        with open(CONFORMANCE / f"{name}.safetensors", "rb") as file:
            length = int.from_bytes(file.read(8), "little")
            meta = json.loads(file.read(length))["__metadata__"]
        self.optimizer = meta["optimizer"]
        self.hyperparameters = json.loads(meta["hyperparameters"])
        self.steps = int(meta["steps"])
        self.terms = int(meta["terms"])
        self.parameters = json.loads(meta["parameters"])
        self.losses = json.loads(meta["losses"]) if "losses" in meta else None
        self.atol, self.rtol = float(meta["atol"]), float(meta["rtol"])

    def initial(self) -> dict[str, np.ndarray]:
        return {name: self.tensors[f"init/{name}"] for name in self.parameters}

    def gradients(self, step: int) -> dict[str, np.ndarray]:
        """Step ``step``'s gradients (``k/P`` names for MTAdam), copies the test may change."""
        if self.terms > 1:
            return {
                f"{k}/{name}": self.tensors[f"grad/{step}/{k}/{name}"].copy()
                for k in range(self.terms)
                for name in self.parameters
            }
        return {name: self.tensors[f"grad/{step}/{name}"].copy() for name in self.parameters}

    def loss(self, step: int):
        return None if self.losses is None else self.losses[step - 1]

    def options(self) -> dict:
        return {**self.hyperparameters, **({"terms": self.terms} if self.terms > 1 else {})}

    def check_expected(self, step: int, got: dict[str, np.ndarray]) -> None:
        """The conformance pass criterion at ``step``."""
        for name in self.parameters:
            expect = self.tensors[f"expect/{step}/{name}"].astype(np.float64)
            init = self.tensors[f"init/{name}"].astype(np.float64)
            error = np.abs(got[name].astype(np.float64) - expect)
            bound = self.atol + self.rtol * np.abs(expect - init)
            assert np.all(error <= bound), (self.name, step, name, float(np.max(error - bound)))


def assert_same_bits(got: dict, expected: dict, where: str = "") -> None:
    assert list(got) == list(expected), (where, list(got), list(expected))
    for name, value in expected.items():
        assert np.array_equal(np.asarray(got[name]).view(np.uint32), np.asarray(value).view(np.uint32)), (
            where,
            name,
        )

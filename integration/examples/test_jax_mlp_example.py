"""examples/jax_mlp.py run as a reader would run it: a subprocess that starts its own daemon, trains
the digits MLP with optimizerd.optax.remote("adamw") and with optax.adamw, and exits 0 only if the
two loss curves agree within 1e-4."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax")
pytest.importorskip("optax")
pytest.importorskip("sklearn")

REPO = Path(__file__).resolve().parents[2]
try:
    from optimizerd.testing import find_binary
except ImportError:  # not pip-installed: use the checkout's client
    sys.path.insert(0, str(REPO / "clients" / "python" / "src"))
    from optimizerd.testing import find_binary


def test_jax_mlp_matches_optax_adamw():
    binary = find_binary(hints=[REPO / ".build" / "debug" / "optimizerd"])
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "jax_mlp.py"), "--steps", "150"],
        env={**os.environ, "OPTIMIZERD_BIN": str(binary)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RESULT: losses match" in result.stdout
    assert "daemon step counter: 150" in result.stdout
    difference = float(re.search(r"max \|loss difference\|: (\S+)", result.stdout).group(1))
    assert difference <= 1e-4

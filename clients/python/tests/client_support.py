"""Shared by the client tests (a uniquely named module, so that it never collides with another
test tree's helpers when pytest runs several trees at once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PYTHON_CLIENT = Path(__file__).resolve().parents[1]
REPO = PYTHON_CLIENT.parents[1]
ADMIN_TOKEN = "test-admin-token-0123456789"
SMALL_BODY_LIMIT = 64 * 1024


def daemon_binary() -> Path:
    """The binary under test: ``$OPTIMIZERD_BIN``, else ``<repo>/.build/debug/optimizerd``; a test
    failure saying how to get one when it is missing."""
    env = os.environ.get("OPTIMIZERD_BIN")
    path = Path(env) if env else REPO / ".build" / "debug" / "optimizerd"
    if not (path.is_file() and os.access(path, os.X_OK)):
        source = "OPTIMIZERD_BIN" if env else "the default location"
        pytest.fail(
            f"optimizerd binary not found at {path} ({source}). Build it with "
            f"`swift build --product optimizerd` in {REPO}, or set OPTIMIZERD_BIN to a built binary.",
            pytrace=False,
        )
    return path

"""Fixtures for the API contract tests: the spec, live daemons, sessions.

The daemon is started with the Python client's launcher (``optimizerd.testing.LocalDaemon``, from
``pip install ./clients/python``), which runs ``$OPTIMIZERD_BIN`` or ``<repo>/.build/debug/optimizerd``.
Build it first: ``swift build --product optimizerd``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import yaml
from api_support import ADMIN_TOKEN, REPO, SPEC_PATH, STATISTICS


def _start_daemon(**kwargs: Any) -> Any:
    from optimizerd.testing import DaemonNotFound, LocalDaemon

    try:
        return LocalDaemon(hints=[REPO / ".build" / "debug" / "optimizerd"], **kwargs).start()
    except DaemonNotFound as error:
        pytest.fail(f"{error}\n(build it with `swift build --product optimizerd`, or set OPTIMIZERD_BIN)")


@pytest.fixture(scope="session")
def spec_bytes() -> bytes:
    return SPEC_PATH.read_bytes()


@pytest.fixture(scope="session")
def spec(spec_bytes: bytes) -> dict[str, Any]:
    document = yaml.safe_load(spec_bytes)
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="session")
def daemon() -> Iterator[Any]:
    """A daemon without an admin token (creating and listing sessions is open)."""
    process = _start_daemon()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def admin_daemon() -> Iterator[Any]:
    """A daemon with the admin token ``ADMIN_TOKEN``."""
    process = _start_daemon(admin_token=ADMIN_TOKEN)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many requests schemathesis sent to each operation, and the statuses they got."""
    if not STATISTICS:
        return
    write = terminalreporter.write_line
    write(f"schemathesis: {sum(STATISTICS.values())} requests (operation, body, requests: status×count)")
    for label in sorted({key[0] for key in STATISTICS}):
        for body in ("generated", "real body"):
            statuses = {
                status: n
                for (op, kind, status), n in sorted(STATISTICS.items())
                if op == label and kind == body
            }
            if statuses:
                answers = ", ".join(f"{status}×{n}" for status, n in statuses.items())
                write(f"  {label:<40} {body:<9} {sum(statuses.values()):>5}: {answers}")

"""Fixtures: a live daemon started for the test session (and a second one with an admin token and
a small body limit), clients, and helpers.

The daemon binary is ``$OPTIMIZERD_BIN``, else ``<repo>/.build/debug/optimizerd`` where ``<repo>``
is two levels above ``clients/python``.
"""

from __future__ import annotations

import numpy as np
import optimizerd
import pytest
from client_support import ADMIN_TOKEN, SMALL_BODY_LIMIT, daemon_binary
from optimizerd.testing import LocalDaemon


@pytest.fixture(scope="session")
def daemon():
    """The shared daemon: no admin token, default limits."""
    with LocalDaemon(daemon_binary(), args=["--log-level", "warning"]) as running:
        yield running


@pytest.fixture(scope="session")
def admin_daemon():
    """A daemon with an admin token and a 64 KiB body limit."""
    with LocalDaemon(
        daemon_binary(),
        admin_token=ADMIN_TOKEN,
        args=["--max-body-bytes", str(SMALL_BODY_LIMIT), "--log-level", "warning"],
    ) as running:
        yield running


@pytest.fixture(scope="session")
def urls(daemon):
    """Three daemons for sharded sessions: the shared one and two more."""
    with LocalDaemon(daemon_binary(), args=["--log-level", "warning"]) as one:
        with LocalDaemon(daemon_binary(), args=["--log-level", "warning"]) as two:
            yield [daemon.url, one.url, two.url]


@pytest.fixture
def client(daemon):
    with optimizerd.Client(daemon.url, retries=3, backoff=0.02) as c:
        yield c


@pytest.fixture(scope="session")
def checkpoint_routes(daemon):
    """Skips the test when the daemon does not have the checkpoint routes yet."""
    with optimizerd.Client(daemon.url) as c:
        session = c.create_session("sgd", lr=0.1)
        session.upload_parameters({"w": np.ones(3, np.float32)})
        try:
            session.checkpoint()
        except optimizerd.NotFound as error:
            if "no session with id" in error.detail:
                raise
            # The route itself is missing ("Not Found" / "no route for GET ...").
            pytest.skip(f"the daemon has no checkpoint routes yet ({error})")
        finally:
            session.delete()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)

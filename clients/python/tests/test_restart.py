"""The client across daemon restarts: a step sent while the daemon is down is retried until it is
back, and a trainer reattaches to its session by id and token (the daemon keeps sessions in its
data directory)."""

from __future__ import annotations

import threading
import time

import numpy as np
import optimizerd
import pytest
from client_support import daemon_binary
from optimizerd.testing import LocalDaemon


@pytest.fixture
def own_daemon():
    """A daemon of this test alone (it gets restarted), flushing every step to disk."""
    with LocalDaemon(daemon_binary(), args=["--fsync", "always", "--log-level", "warning"]) as running:
        yield running


def durable(session) -> bool:
    """Whether the daemon keeps sessions across restarts (durability may not be in this build)."""
    return "durable_step" in session.summary() and session.info["durable_step"] == session.info["step"]


def make_session(daemon, rng):
    client = optimizerd.Client(daemon.url, retries=8, backoff=0.1, max_backoff=1.0)
    session = client.create_session("adam", lr=0.1)
    params = {"w": rng.standard_normal((6, 5)).astype(np.float32)}
    session.upload_parameters(params)
    return client, session, params


def reference_run(client, params, gradients):
    twin = client.create_session("adam", lr=0.1)
    twin.upload_parameters(params)
    values = None
    for g in gradients:
        values, _ = twin.step(g)
    twin.delete()
    return values


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_reattach_after_restart(own_daemon, rng, kill):
    client, session, params = make_session(own_daemon, rng)
    gradients = [{"w": rng.standard_normal((6, 5)).astype(np.float32)} for _ in range(4)]
    for g in gradients[:3]:
        session.step(g)
    if not durable(session):
        pytest.skip("this daemon build does not keep sessions across restarts")
    own_daemon.restart(kill=kill)
    again = client.session(session.id, session.token)
    assert again.last_step == 3 and again.summary()["durable_step"] == 3
    values, metadata = again.step(gradients[3])
    assert metadata["step"] == 4
    np.testing.assert_array_equal(values["w"], reference_run(client, params, gradients)["w"])


def test_step_sent_while_the_daemon_is_down_is_retried_until_it_is_back(own_daemon, rng):
    client, session, params = make_session(own_daemon, rng)
    gradients = [{"w": rng.standard_normal((6, 5)).astype(np.float32)} for _ in range(2)]
    session.step(gradients[0])
    if not durable(session):
        pytest.skip("this daemon build does not keep sessions across restarts")
    own_daemon.terminate()
    restarter = threading.Timer(1.0, own_daemon.start)
    restarter.start()
    started = time.monotonic()
    values, metadata = session.step(gradients[1])  # connection refused, backoff, ..., applied
    restarter.join()
    assert time.monotonic() - started >= 0.9 and client.transport.retry_count >= 1
    assert metadata["step"] == 2 and metadata["retry"] is False
    np.testing.assert_array_equal(values["w"], reference_run(client, params, gradients)["w"])


def test_step_whose_answer_was_lost_in_a_crash_is_answered_after_the_restart(own_daemon, rng):
    from client_faults import FlakyProxy

    with FlakyProxy(own_daemon.port) as proxy:
        client = optimizerd.Client(proxy.url, retries=0)
        session = client.create_session("adam", lr=0.1)
        params = {"w": rng.standard_normal((6, 5)).astype(np.float32)}
        session.upload_parameters(params)
        gradients = [{"w": rng.standard_normal((6, 5)).astype(np.float32)} for _ in range(2)]
        session.step(gradients[0])
        if not durable(session):
            pytest.skip("this daemon build does not keep sessions across restarts")
        proxy.drop_next_response()
        with pytest.raises(optimizerd.ConnectionFailed):
            session.step(gradients[1])  # applied and logged; the answer is lost
        own_daemon.restart(kill=True)  # the daemon crashes before anyone hears back
        values, metadata = session.step(gradients[1])  # the trainer tries again
        assert metadata["step"] == 2 and metadata["retry"] is True
        assert session.summary()["step"] == 2
        direct = optimizerd.Client(own_daemon.url)
        np.testing.assert_array_equal(values["w"], reference_run(direct, params, gradients)["w"])

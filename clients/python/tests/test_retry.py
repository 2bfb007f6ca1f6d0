"""Robustness: a step retried after the connection was cut is applied exactly once; 503s are
retried; session creation is not repeated when its answer may have been lost."""

from __future__ import annotations

import socket

import numpy as np
import optimizerd
import pytest
from client_faults import FlakyProxy, Unavailable


@pytest.fixture
def proxy(daemon):
    with FlakyProxy(daemon.port) as running:
        yield running


def setup_twins(daemon, proxy, rng):
    """A session reached through the proxy and an identical one reached directly."""
    params = {
        "w": rng.standard_normal((8, 4)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
    }
    flaky_client = optimizerd.Client(proxy.url, retries=3, backoff=0.02)
    direct_client = optimizerd.Client(daemon.url)
    flaky = flaky_client.create_session("adam", lr=0.1)
    direct = direct_client.create_session("adam", lr=0.1)
    for session in (flaky, direct):
        session.upload_parameters(params)
    return flaky, direct


def test_lost_step_answer_is_retried_and_applied_once(daemon, proxy, rng):
    flaky, direct = setup_twins(daemon, proxy, rng)
    grads = {
        "w": rng.standard_normal((8, 4)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
    }
    flaky.step(grads)  # step 1 goes through
    direct.step(grads)

    proxy.drop_next_response()
    values, metadata = flaky.step(grads)  # applied, answer lost, retried with the same step number
    assert proxy.events == [proxy.events[0]] and proxy.events[0].startswith("dropped response")
    assert flaky.client.transport.retry_count == 1
    assert metadata["retry"] is True and metadata["step"] == 2

    expected, _ = direct.step(grads)  # a single application of step 2
    summary = direct.client.session(flaky.id, flaky.token).summary()
    assert summary["step"] == 2
    assert [r["step"] for r in flaky.history()["records"]] == [1, 2]
    for name in grads:
        np.testing.assert_array_equal(values[name], expected[name])
        np.testing.assert_array_equal(flaky.parameters()[name], expected[name])

    # The next step continues normally.
    _, metadata = flaky.step(grads)
    assert metadata["step"] == 3 and metadata["retry"] is False


def test_lost_step_request_is_retried_and_applied_once(daemon, proxy, rng):
    flaky, direct = setup_twins(daemon, proxy, rng)
    grads = {
        "w": rng.standard_normal((8, 4)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
    }
    proxy.drop_next_request()
    values, metadata = flaky.step(grads)  # never reached the daemon; the retry applies it
    assert proxy.events and proxy.events[0].startswith("dropped request")
    assert metadata["retry"] is False and metadata["step"] == 1
    expected, _ = direct.step(grads)
    assert flaky.summary()["step"] == 1
    for name in grads:
        np.testing.assert_array_equal(values[name], expected[name])


def test_answer_cut_in_the_middle_of_the_body_is_retried(daemon, proxy, rng):
    flaky, direct = setup_twins(daemon, proxy, rng)
    big = {"big": rng.standard_normal(400_000).astype(np.float32)}
    for session in (flaky, direct):
        session.upload_parameters(big)
    grads = {"big": rng.standard_normal(400_000).astype(np.float32)}
    proxy.cut_next_response(after=100_000)  # headers and part of the 1.6 MB body arrive
    values, metadata = flaky.step(grads)
    assert proxy.events == ["cut response"] and metadata["retry"] is True and metadata["step"] == 1
    expected, _ = direct.step(grads)
    np.testing.assert_array_equal(values["big"], expected["big"])
    assert flaky.summary()["step"] == 1


def test_retried_delta_step_returns_the_same_delta(daemon, proxy, rng):
    flaky, direct = setup_twins(daemon, proxy, rng)
    grads = {
        "w": rng.standard_normal((8, 4)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
    }
    proxy.drop_next_response()
    delta, metadata = flaky.step(grads, return_="delta")
    expected, _ = direct.step(grads, return_="delta")
    assert metadata["retry"] is True and flaky.summary()["step"] == 1
    for name in grads:
        np.testing.assert_array_equal(delta[name], expected[name])


@pytest.mark.parametrize("applied", [True, False], ids=["answer-lost", "request-lost"])
def test_calling_step_again_after_connection_failed_never_double_applies(daemon, proxy, rng, applied):
    flaky, direct = setup_twins(daemon, proxy, rng)
    flaky.client.transport.retries = 0  # the failure reaches the caller
    grads = {
        "w": rng.standard_normal((8, 4)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
    }
    (proxy.drop_next_response if applied else proxy.drop_next_request)()
    with pytest.raises(optimizerd.ConnectionFailed):
        flaky.step(grads)
    values, metadata = flaky.step(grads)  # the caller tries the same step again
    assert metadata["step"] == 1 and metadata["retry"] is applied
    expected, _ = direct.step(grads)
    for name in grads:
        np.testing.assert_array_equal(values[name], expected[name])
    assert flaky.summary()["step"] == 1


@pytest.mark.parametrize("applied", [True, False], ids=["answer-lost", "request-lost"])
def test_new_gradients_after_connection_failed_become_the_next_step(daemon, proxy, rng, applied):
    flaky, direct = setup_twins(daemon, proxy, rng)
    flaky.client.transport.retries = 0
    first = {"w": np.ones((8, 4), np.float32), "b": np.ones(4, np.float32)}
    second = {"w": -np.ones((8, 4), np.float32), "b": np.ones(4, np.float32)}
    (proxy.drop_next_response if applied else proxy.drop_next_request)()
    with pytest.raises(optimizerd.ConnectionFailed):
        flaky.step(first)
    values, metadata = flaky.step(second)  # the trainer moved on to the next batch
    assert metadata["retry"] is False and metadata["step"] == (2 if applied else 1)
    if applied:
        direct.step(first)
    expected, _ = direct.step(second)
    for name in second:
        np.testing.assert_array_equal(values[name], expected[name])


def test_session_creation_is_not_repeated_after_a_lost_answer(daemon, proxy):
    direct = optimizerd.Client(daemon.url)
    before = {entry["id"] for entry in direct.list_sessions()}
    flaky_client = optimizerd.Client(proxy.url, retries=3, backoff=0.02)
    proxy.drop_next_response()
    with pytest.raises(optimizerd.ConnectionFailed):
        flaky_client.create_session("sgd", name="once")
    created = [entry for entry in direct.list_sessions() if entry["id"] not in before]
    assert [entry["name"] for entry in created] == ["once"]  # exactly one, not one per attempt


def test_idempotent_calls_survive_a_cut(daemon, proxy, rng):
    flaky, _ = setup_twins(daemon, proxy, rng)
    proxy.drop_next_response()
    assert flaky.summary()["step"] == 0
    proxy.drop_next_response()
    flaky.patch(lr=0.2)
    assert flaky.summary()["hyperparameters"]["lr"] == 0.2
    proxy.drop_next_response()
    flaky.delete()  # applied; the retry's 404 means done
    with pytest.raises(optimizerd.NotFound):
        flaky.summary()


def test_503_is_retried_then_raised():
    with Unavailable(failures=2) as server:
        client = optimizerd.Client(server.url, retries=3, backoff=0.01)
        assert client.health() == {"status": "ok"}
        assert server.requests == 3 and client.transport.retry_count == 2
    with Unavailable(failures=10) as server:
        client = optimizerd.Client(server.url, retries=2, backoff=0.01)
        with pytest.raises(optimizerd.ServiceUnavailable) as caught:
            client.health()
        assert server.requests == 3 and "shutting down" in caught.value.detail


def test_timeouts_are_retried_then_raised():
    # A listener that never accepts: connections complete in the kernel, answers never come.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        client = optimizerd.Client(
            f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3, retries=2, backoff=0.01
        )
        with pytest.raises(optimizerd.ConnectionFailed, match="Timeout"):
            client.health()
        assert client.transport.retry_count == 2


def test_connections_are_reused(daemon, proxy, rng):
    client = optimizerd.Client(proxy.url)
    session = client.create_session("adam")
    session.upload_parameters({"w": np.zeros(300_000, np.float32)})
    for _ in range(3):
        session.step({"w": rng.standard_normal(300_000).astype(np.float32)})
        session.parameters(compress=True)
        session.summary()
    # Two keep-alive connections for all 11 requests: one for the JSON routes, one for the tensor routes.
    assert proxy.connections == 2

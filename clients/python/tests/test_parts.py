"""Steps in parts through the Python client: forced by a small part size, bit-identical to
one-request steps, and unchanged by lost answers of a part or of the commit (retried by the
client; the daemon answers retries without applying anything twice)."""

from __future__ import annotations

import socket
import sys
import threading

import numpy as np
import optimizerd
import pytest
import requests
from client_faults import FlakyProxy
from optimizerd import parts
from safetensors.numpy import save


@pytest.fixture
def proxy(daemon):
    with FlakyProxy(daemon.port) as running:
        yield running


def _params(rng):
    return {
        "w": rng.standard_normal((8, 4)).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
        "v": rng.standard_normal((3, 3)).astype(np.float32),
    }


def _recording(session):
    """The paths of the requests ``session`` makes from now on (a list that fills as they go)."""
    calls = []
    original = session._exchange

    def exchange(method, subpath, reader, **kwargs):
        calls.append(subpath)
        return original(method, subpath, reader, **kwargs)

    session._exchange = exchange
    return calls


def _dropping(session, proxy, suffix):
    """Makes the next request to a path ending in ``suffix`` lose its answer."""
    original = session._exchange

    def exchange(method, subpath, reader, **kwargs):
        if subpath.endswith(suffix):
            proxy.drop_next_response()
            session._exchange = original
        return original(method, subpath, reader, **kwargs)

    session._exchange = exchange


@pytest.mark.parametrize("lost", ["/parts/p1", "/commit"])
def test_lost_answers_of_parts_and_commits_change_nothing(daemon, proxy, rng, lost):
    params = _params(rng)
    flaky = optimizerd.Client(proxy.url, retries=3, backoff=0.02).create_session(
        "adamw", lr=0.1, clip_grad_norm=0.3
    )
    direct = optimizerd.Client(daemon.url).create_session("adamw", lr=0.1, clip_grad_norm=0.3)
    for session in (flaky, direct):
        session.upload_parameters(params)
    for step in range(1, 4):
        grads = {name: rng.standard_normal(value.shape).astype(np.float32) for name, value in params.items()}
        if step == 2:
            _dropping(flaky, proxy, lost)
        # 300 bytes a part: one tensor per part, so the step takes three parts and a commit.
        got, telemetry = flaky.step(grads, grad_scale=4.0, part_bytes=300)
        expected, plain = direct.step(grads, grad_scale=4.0)
        assert telemetry["step"] == plain["step"] == step
        assert (
            telemetry["grad_norm"] == plain["grad_norm"]
            and telemetry["clip_coefficient"] == plain["clip_coefficient"]
        )
        for name in params:
            assert np.array_equal(got[name].view(np.uint32), expected[name].view(np.uint32)), name
    assert any(event.startswith("dropped response") for event in proxy.events)
    assert flaky.summary()["step"] == 3
    assert [record["step"] for record in flaky.history()["records"]] == [1, 2, 3]


def test_mtadam_and_momo_in_parts_match_one_request(daemon, rng):
    client = optimizerd.Client(daemon.url)
    params = _params(rng)
    for optimizer, options in (("mtadam", {"terms": 2}), ("momo", {"lr": 0.5})):
        sessions = [client.create_session(optimizer, **options) for _ in range(2)]
        for session in sessions:
            session.upload_parameters(params)
        for _step in range(3):
            terms = options.get("terms", 1)
            grads = {
                (f"{k}/{name}" if optimizer == "mtadam" else name): rng.standard_normal(value.shape).astype(
                    np.float32
                )
                for k in range(terms)
                for name, value in params.items()
            }
            loss = float(rng.random())
            in_parts, _ = sessions[0].step(grads, loss=loss, part_bytes=300)
            whole, _ = sessions[1].step(grads, loss=loss)
            for name in params:
                assert np.array_equal(in_parts[name].view(np.uint32), whole[name].view(np.uint32)), (
                    optimizer,
                    name,
                )


def test_split_keeps_sparse_pairs_together_and_order():
    tensors = {
        "a": np.zeros(100, np.float32),
        "b.indices": np.arange(3, dtype=np.int64),
        "b.values": np.ones(3, np.float32),
        "c": np.zeros(100, np.float32),
    }
    groups = parts.split(tensors, 1600, "f32")
    assert [list(group) for group in groups] == [["a", "b.indices", "b.values"], ["c"]]
    assert parts.split(tensors, 1 << 20, "f32") == [tensors]


def test_commit_scalars_fold_in_parameter_order_with_grad_scale():
    sums = {"b": (2.0, True), "a": (0.1, True), "c": (None, False)}
    body = parts.commit_scalars(
        sums, ["a", "b", "c"], terms=1, optimizer="sgd", loss=None, term_weights=None, grad_scale="4.0"
    )
    assert body["term_squared_norms"] == [0.0 + 0.1 * 0.25 * 0.25 + 2.0 * 0.25 * 0.25]
    assert body["nonfinite"] == "c" and body["grad_scale"] == 4.0


def test_a_grad_scale_beyond_float32_is_skipped_in_parts_as_in_one_request(client):
    """1/grad_scale = 1e200 makes the folded norm +inf in float64: sent as "Infinity" (bare JSON has
    no such number, and the daemon answered 400), the commit is a skipped step like the one request."""
    values = {"w": np.array([0.5, -1.0], np.float32), "v": np.array([2.0], np.float32)}
    gradients = {"w": np.array([1.0, 2.0], np.float32), "v": np.array([3.0], np.float32)}
    plain = client.create_session("sgd", lr=0.1, nonfinite="skip")
    parted = client.create_session("sgd", lr=0.1, nonfinite="skip")
    try:
        for session in (plain, parted):
            session.upload_parameters(values)
        _, one = plain.step(gradients, grad_scale=1e-200)
        _, many = parted.step(gradients, grad_scale=1e-200, part_bytes=8)
        assert one["skipped"] is True and many["skipped"] is True
        assert parted.summary()["step"] == 1
        for name, value in parted.parameters().items():
            assert np.array_equal(value, values[name])
    finally:
        plain.delete()
        parted.delete()


def test_a_single_part_goes_as_a_plain_step(client, rng):
    """One tensor past part_bytes would make a one-part step: no better than a plain step, which
    needs less of the daemon's memory, so the client sends that."""
    session = client.create_session("adam", lr=0.1)
    session.upload_parameters({"w": rng.standard_normal(1000).astype(np.float32)})
    calls = _recording(session)
    session.step({"w": rng.standard_normal(1000).astype(np.float32)}, part_bytes=300)
    assert calls == ["/step"]
    # Two tensors past part_bytes: two parts and a commit.
    session.upload_parameters({"w": np.zeros(1000, np.float32), "v": np.zeros(1000, np.float32)})
    calls.clear()
    session.step({"w": np.ones(1000, np.float32), "v": np.ones(1000, np.float32)}, part_bytes=300)
    assert [call.rsplit("/", 2)[-2:] for call in calls] == [["parts", "p0"], ["parts", "p1"], ["2", "commit"]]


def test_by_default_only_the_daemons_limit_splits_a_step(client):
    """Without ``part_bytes`` a step (and an upload) of several tensors past ``DEFAULT_PART_BYTES``
    goes as one request while it is under the daemon's limit: one request is the faster step."""
    count = parts.DEFAULT_PART_BYTES // 4 // 2 + 1024
    session = client.create_session("sgd", lr=0.5)
    calls = _recording(session)
    tensors = {"w": np.ones(count, np.float32), "v": np.full(count, 2.0, np.float32)}
    session.upload_parameters(tensors)
    (stepped, _) = session.step({"w": np.ones(count, np.float32), "v": np.ones(count, np.float32)})
    assert calls == ["/parameters", "/step"]
    assert stepped["w"][0] == 0.5 and stepped["v"][-1] == 1.5


@pytest.mark.parametrize("answer", [b"<html>not here</html>", b"[1, 2]"])
def test_a_limits_answer_that_is_no_json_object_means_no_advertised_limit(answer):
    """A server (an older daemon behind a proxy, a stub) may answer ``GET /v1/limits`` with a page
    or other JSON: the client then knows no limit instead of failing the step."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        with connection, connection.makefile("rb") as reader:
            while reader.readline() not in (b"\r\n", b""):
                pass
            head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(answer)}\r\n\r\n"
            connection.sendall(head.encode() + answer)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    session = optimizerd.Session(optimizerd.Client(url), "stub", "token")
    assert parts.daemon_body_limit(session) is None
    assert parts.body_limit(session, None) == sys.maxsize and parts.body_limit(session, 1000) == 1000
    server.join(10)
    listener.close()


def test_a_refused_step_in_parts_leaves_nothing_staged(client, rng):
    params = _params(rng)
    session = client.create_session("adam", lr=0.1)
    session.upload_parameters(params)
    # w and b are staged, then v's part is refused (its shape is wrong).
    bad = {
        name: np.ones(value.shape if name != "v" else value.size + 1, np.float32)
        for name, value in params.items()
    }
    with pytest.raises(optimizerd.errors.Unprocessable, match='"v"'):
        session.step(bad, part_bytes=300)
    # The parts staged before the refused one are gone: other gradients stage under the same number.
    grads = {name: np.full(value.shape, 2.0, np.float32) for name, value in params.items()}
    _, telemetry = session.step(grads, part_bytes=300)
    assert telemetry["step"] == 1 and session.summary()["step"] == 1


def test_a_step_in_parts_whose_commit_answer_was_lost_is_answered_when_called_again(daemon, proxy, rng):
    params = _params(rng)
    flaky = optimizerd.Client(proxy.url, retries=0).create_session("adam", lr=0.1)
    direct = optimizerd.Client(daemon.url).create_session("adam", lr=0.1)
    for session in (flaky, direct):
        session.upload_parameters(params)
    grads = {name: rng.standard_normal(value.shape).astype(np.float32) for name, value in params.items()}
    _dropping(flaky, proxy, "/commit")
    with pytest.raises(optimizerd.errors.ConnectionFailed):
        flaky.step(grads, part_bytes=300)
    # Applied but unconfirmed: the same call again re-sends the parts (409, step 1 is committed)
    # and then answers the applied step from the commit's retry path.
    got, telemetry = flaky.step(grads, part_bytes=300)
    expected, _ = direct.step(grads)
    assert telemetry["step"] == 1 and telemetry["retry"] is True
    for name in params:
        assert np.array_equal(got[name].view(np.uint32), expected[name].view(np.uint32)), name
    assert flaky.summary()["step"] == 1


def test_parts_left_by_an_attempt_that_never_committed_are_staged_anew(client, rng):
    params = _params(rng)
    session = client.create_session("adam", lr=0.1)
    session.upload_parameters(params)
    # A trainer staged part p0 of step 1 and died before committing.
    stale = save({"w": np.ones((8, 4), np.float32)})
    answer = requests.put(
        f"{client.url}/v1/sessions/{session.id}/steps/1/parts/p0",
        data=stale,
        headers={"Authorization": f"Bearer {session.token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    grads = {name: np.full(value.shape, 2.0, np.float32) for name, value in params.items()}
    expected_session = client.create_session("adam", lr=0.1)
    expected_session.upload_parameters(params)
    expected, _ = expected_session.step(grads)
    got, telemetry = session.step(grads, part_bytes=300)
    assert telemetry["step"] == 1
    for name in params:
        assert np.array_equal(got[name].view(np.uint32), expected[name].view(np.uint32)), name

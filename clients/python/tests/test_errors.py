"""Problem answers of the daemon become exceptions carrying the problem detail; the session is
unchanged after each of them."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import optimizerd
import pytest
from client_support import ADMIN_TOKEN, SMALL_BODY_LIMIT, daemon_binary
from optimizerd.testing import LocalDaemon, free_port


@pytest.fixture
def session(client):
    s = client.create_session("adam", lr=0.1)
    s.upload_parameters({"w": np.ones((2, 3), np.float32), "b": np.zeros(3, np.float32)})
    yield s
    s.delete()


def assert_unchanged(session, step=0):
    np.testing.assert_array_equal(session.parameters()["w"], np.ones((2, 3), np.float32))
    assert session.summary()["step"] == step


def test_unknown_optimizer_is_bad_request(client):
    with pytest.raises(optimizerd.BadRequest) as caught:
        client.create_session("rmsprop")
    error = caught.value
    assert error.status == 400 and error.title == "Bad Request"
    assert "rmsprop" in error.detail and error.type.startswith("urn:optimizerd:problem:")
    assert "rmsprop" in str(error) and str(error).startswith("400 Bad Request: ")


def test_bad_hyperparameter_names_the_field(client):
    with pytest.raises(optimizerd.BadRequest, match="lr"):
        client.create_session("adam", lr=-1)
    with pytest.raises(optimizerd.BadRequest, match="betas_typo"):
        client.create_session("adam", betas_typo=[0.9, 0.9])


def test_missing_and_wrong_tokens(client, session):
    anonymous = optimizerd.Session(client, session.id, None)
    with pytest.raises(optimizerd.Unauthorized) as caught:
        anonymous.summary()
    assert caught.value.status == 401 and isinstance(caught.value, optimizerd.AuthError)
    other = client.create_session("sgd")
    intruder = optimizerd.Session(client, session.id, other.token)
    with pytest.raises(optimizerd.Forbidden) as caught:
        intruder.step({"w": np.ones((2, 3))})
    assert caught.value.status == 403 and session.id in caught.value.detail
    assert_unchanged(session)


def test_unknown_session_is_not_found(client):
    ghost = optimizerd.Session(client, "00000000-0000-0000-0000-000000000000", "ozt_nothing")
    with pytest.raises(optimizerd.NotFound, match="no session"):
        ghost.summary()


def test_wrong_step_is_a_conflict_with_the_current_step(session):
    session.step({"w": np.ones((2, 3))})
    session.last_step = 5
    with pytest.raises(optimizerd.StepConflict) as caught:
        session.step({"w": np.ones((2, 3))})
    assert caught.value.status == 409 and caught.value.current_step == 1
    assert session.sync() == 1
    _, metadata = session.step({"w": np.ones((2, 3))})
    assert metadata["step"] == 2


@pytest.mark.parametrize(
    "gradients, mentioned",
    [
        ({"nope": np.ones(3)}, "nope"),
        ({"w": np.ones((3, 2))}, "w"),
        ({"w": np.array([[1, 2, np.nan], [0, 0, 0]])}, "w"),
    ],
    ids=["unknown-tensor", "wrong-shape", "nan"],
)
def test_bad_gradients_are_unprocessable(session, gradients, mentioned):
    with pytest.raises(optimizerd.Unprocessable) as caught:
        session.step(gradients)
    assert caught.value.status == 422 and f'"{mentioned}"' in caught.value.detail
    assert session.last_step == 0
    assert_unchanged(session)


def test_momo_without_loss_is_unprocessable(client):
    momo = client.create_session("momo")
    momo.upload_parameters({"w": np.ones(3, np.float32)})
    with pytest.raises(optimizerd.Unprocessable, match="loss"):
        momo.step({"w": np.ones(3)})


def test_nonfinite_skip_reports_a_skipped_step(client):
    session = client.create_session("adam", nonfinite="skip")
    session.upload_parameters({"w": np.ones(3, np.float32)})
    values, metadata = session.step({"w": np.array([1.0, np.inf, 0.0])})
    assert metadata["skipped"] is True and metadata["step"] == 1
    np.testing.assert_array_equal(values["w"], np.ones(3))


def test_malformed_safetensors_is_bad_request(client, session):
    with pytest.raises(optimizerd.BadRequest):
        client.transport.request(
            "POST", f"/v1/sessions/{session.id}/step", token=session.token,
            data=b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ",
            headers={"Content-Type": "application/octet-stream"},
        )  # fmt: skip
    assert_unchanged(session)


def test_unknown_content_encoding_is_unsupported_media_type(client, session):
    with pytest.raises(optimizerd.UnsupportedMediaType):
        client.transport.request(
            "POST", f"/v1/sessions/{session.id}/step", token=session.token, data=b"x",
            headers={"Content-Type": "application/octet-stream", "Content-Encoding": "br"},
        )  # fmt: skip


def test_admin_token_guards_creation_and_listing(admin_daemon):
    with optimizerd.Client(admin_daemon.url, retries=0) as anonymous:
        with pytest.raises(optimizerd.Unauthorized):
            anonymous.create_session("adam")
        with pytest.raises(optimizerd.Unauthorized):
            anonymous.list_sessions()
    with optimizerd.Client(admin_daemon.url, admin_token="wrong") as wrong:
        with pytest.raises(optimizerd.Forbidden):
            wrong.list_sessions()
    with optimizerd.Client(admin_daemon.url, admin_token=ADMIN_TOKEN) as admin:
        session = admin.create_session("sgd", lr=0.1)
        assert session.id in {entry["id"] for entry in admin.list_sessions()}
        # The admin token works on the session's routes too.
        as_admin = admin.session(session.id)
        assert as_admin.token == ADMIN_TOKEN and as_admin.summary()["optimizer"] == "sgd"


def test_body_over_the_limit_is_payload_too_large(admin_daemon):
    with optimizerd.Client(admin_daemon.url, admin_token=ADMIN_TOKEN) as admin:
        session = admin.create_session("sgd")
        size = SMALL_BODY_LIMIT // 4 + 100
        with pytest.raises(optimizerd.PayloadTooLarge) as caught:
            session.upload_parameters({"w": np.zeros(size, np.float32)})
        assert caught.value.status == 413
        # Zeros compress to almost nothing, but inflate past the limit: still 413.
        with pytest.raises(optimizerd.PayloadTooLarge):
            session.upload_parameters({"w": np.zeros(size, np.float32)}, compress=True)
        assert len(gzip.compress(np.zeros(size, np.float32).tobytes())) < SMALL_BODY_LIMIT
        # The connection and the daemon stay usable.
        session.upload_parameters({"w": np.zeros(10, np.float32)})
        assert session.summary()["parameter_count"] == 10


def test_unreachable_daemon_raises_connection_failed():
    port = free_port()
    with optimizerd.Client(f"http://127.0.0.1:{port}", retries=2, backoff=0.01) as nobody:
        with pytest.raises(optimizerd.ConnectionFailed) as caught:
            nobody.health()
    error = caught.value
    assert error.status is None and "after 3 attempt(s)" in error.detail
    assert nobody.transport.retry_count == 2
    assert error.__cause__ is not None


def test_exceptions_pickle():
    error = optimizerd.StepConflict(
        409, "Conflict", "the session is at step 7", "urn:optimizerd:problem:step-mismatch"
    )
    again = pickle.loads(pickle.dumps(error))
    assert (
        isinstance(again, optimizerd.StepConflict)
        and again.current_step == 7
        and again.kind == "step-mismatch"
    )
    lost = pickle.loads(pickle.dumps(optimizerd.ConnectionFailed("gone")))
    assert lost.detail == "gone" and lost.status is None


def test_a_parameter_upload_past_the_memory_budget_is_insufficient_storage():
    with LocalDaemon(daemon_binary(), args=["--max-memory", "64MiB", "--log-level", "warning"]) as small:
        with optimizerd.Client(small.url) as client:
            session = client.create_session("adam")
            # 8M float32 parameters and Adam's two moments: 96 MB, past a 64 MiB budget.
            with pytest.raises(optimizerd.InsufficientStorage) as caught:
                session.upload_parameters({"w": np.zeros(8 << 20, np.float32)})
            assert caught.value.status == 507 and caught.value.kind == "memory-budget-exceeded"
            assert "memory" in caught.value.detail
            # Nothing changed, and a small upload still fits.
            assert session.summary()["parameter_count"] == 0
            session.upload_parameters({"w": np.zeros(1000, np.float32)})
            assert session.summary()["parameter_count"] == 1000

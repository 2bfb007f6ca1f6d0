"""Every Client and Session call against the live daemon."""

from __future__ import annotations

import numpy as np
import optimizerd
import pytest
from client_reference import Adam
from optimizerd import wire
from optimizerd.body import build_body


def params_and_grads(rng, shapes=None):
    shapes = shapes or {"layer.weight": (4, 3), "layer.bias": (3,)}
    params = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    grads = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    return params, grads


def twin_sessions(client, params, optimizer="adam", **options):
    sessions = [client.create_session(optimizer, **options) for _ in range(2)]
    for session in sessions:
        session.upload_parameters(params)
    return sessions


# MARK: service routes


def test_health_ready_metrics(client):
    assert client.health() == {"status": "ok"}
    ready = client.ready()
    assert ready["status"] == "ready" and isinstance(ready["sessions"], int)
    assert "# TYPE" in client.metrics()


# MARK: sessions


@pytest.mark.parametrize("optimizer", optimizerd.OPTIMIZERS)
def test_create_session_for_every_optimizer(client, optimizer):
    options = {"terms": 2} if optimizer == "mtadam" else {}
    try:
        session = client.create_session(optimizer, name=f"test-{optimizer}", **options)
    except optimizerd.BadRequest as error:
        if "not implemented" in error.detail:
            pytest.skip(f"{optimizer} is not in this daemon build yet: {error}")
        raise
    try:
        assert session.id and session.token and session.last_step == 0
        assert session.optimizer == optimizer
        assert session.info["name"] == f"test-{optimizer}"
        assert isinstance(session.info["hyperparameters"], dict) and session.info["hyperparameters"]
        summary = session.summary()
        assert summary["optimizer"] == optimizer and summary["step"] == 0
        # One step end to end, with what each optimizer needs.
        params = {"w": np.full((3, 2), 0.5, np.float32), "b": np.zeros(2, np.float32)}
        session.upload_parameters(params)
        grads = {"w": np.full((3, 2), 0.1, np.float32), "b": np.ones(2, np.float32)}
        gradients = [grads, grads] if optimizer == "mtadam" else grads
        values, metadata = session.step(gradients, loss=0.5)
        assert metadata["step"] == 1 and metadata["skipped"] is False and metadata["update_norm"] > 0
        assert set(values) == {"w", "b"} and not np.array_equal(values["w"], params["w"])
    finally:
        session.delete()


def test_create_session_with_hyperparameters_options_and_groups(client):
    session = client.create_session(
        "adamw",
        {"lr": 0.01, "betas": (0.8, 0.99)},
        groups=[{"parameters": ["*.bias"], "hyperparameters": {"weight_decay": 0}}],
        name="groups",
        clip_grad_norm=1.0,
        nonfinite="skip",
    )
    effective = session.info["hyperparameters"]
    assert effective["lr"] == 0.01 and effective["betas"] == [0.8, 0.99]
    assert effective["clip_grad_norm"] == 1.0 and effective["nonfinite"] == "skip"
    session.upload_parameters({"fc.weight": np.ones((2, 2), np.float32), "fc.bias": np.ones(2, np.float32)})
    summary = session.summary()
    (group,) = summary["groups"]
    assert group["members"] == ["fc.bias"] and group["hyperparameters"]["weight_decay"] == 0
    by_name = {p["name"]: p for p in summary["parameters"]}
    assert by_name["fc.weight"]["group"] == 0 and by_name["fc.bias"]["group"] == 1
    assert by_name["fc.weight"]["shape"] == [2, 2] and by_name["fc.weight"]["numel"] == 4


def test_list_sessions_and_reattach(client, rng):
    params, grads = params_and_grads(rng)
    session = client.create_session("sgd", lr=0.1, name="listed")
    session.upload_parameters(params)
    session.step(grads)
    listed = {entry["id"]: entry for entry in client.list_sessions()}
    assert listed[session.id]["name"] == "listed" and listed[session.id]["step"] == 1
    again = client.session(session.id, session.token)
    assert again.last_step == 1 and again.optimizer == "sgd"
    _, metadata = again.step(grads)
    assert metadata["step"] == 2


def test_delete(client):
    session = client.create_session("sgd")
    session.delete()
    with pytest.raises(optimizerd.NotFound):
        session.summary()
    with pytest.raises(optimizerd.NotFound):
        session.delete()
    with client.create_session("sgd") as scoped:
        scoped_id = scoped.id
    assert scoped_id not in {entry["id"] for entry in client.list_sessions()}


def test_patch_changes_hyperparameters_and_groups(client):
    session = client.create_session("sgd", lr=0.1)
    session.upload_parameters({"w": np.zeros(2, np.float32), "b": np.zeros(2, np.float32)})
    summary = session.patch(lr=0.5, groups=[{"parameters": ["b"], "hyperparameters": {"lr": 0.25}}])
    assert summary["hyperparameters"]["lr"] == 0.5 and summary["groups"][0]["members"] == ["b"]
    values, _ = session.step({"w": np.ones(2, np.float32), "b": np.ones(2, np.float32)})
    np.testing.assert_allclose(values["w"], [-0.5, -0.5])
    np.testing.assert_allclose(values["b"], [-0.25, -0.25])
    assert session.patch({"lr": 1.0})["hyperparameters"]["lr"] == 1.0


# MARK: parameters


def test_upload_and_download_parameters_f32_exact(client, rng):
    params, _ = params_and_grads(rng, {"a": (5, 7), "b": (3,), "c": ()})
    session = client.create_session("adam")
    summary = session.upload_parameters(params)
    assert sorted(p["name"] for p in summary["parameters"]) == ["a", "b", "c"]
    norms = {p["name"]: p["norm"] for p in summary["parameters"]}
    assert norms["a"] == pytest.approx(float(np.linalg.norm(params["a"])), rel=1e-6)
    downloaded = session.parameters()
    for name, value in params.items():
        assert downloaded[name].shape == value.shape
        np.testing.assert_array_equal(downloaded[name], value)


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize("compress", [False, True])
def test_16_bit_and_gzip_parameter_round_trips(client, rng, dtype, compress):
    params, _ = params_and_grads(rng, {"a": (64, 33)})
    session = client.create_session("adam")
    session.upload_parameters(params, dtype=dtype, compress=compress)
    rounded = wire.round_to_wire_dtype(params["a"], dtype)
    np.testing.assert_array_equal(session.parameters(compress=compress)["a"], rounded)
    # Downloading in the 16-bit dtype rounds once more, which changes nothing here.
    np.testing.assert_array_equal(session.parameters(dtype=dtype, compress=compress)["a"], rounded)
    session.upload_parameters(params, compress=compress)  # re-sync in f32
    np.testing.assert_array_equal(session.parameters(dtype="f32")["a"], params["a"])
    np.testing.assert_array_equal(
        session.parameters(dtype=dtype)["a"], wire.round_to_wire_dtype(params["a"], dtype)
    )


def test_gzip_compressed_answers_are_decoded(client, daemon):
    session = client.create_session("sgd", lr=1.0)
    zeros = np.zeros((512, 512), np.float32)  # compresses well, so the daemon does gzip it
    session.upload_parameters({"w": zeros})
    response = client.transport.request(
        "GET",
        f"/v1/sessions/{session.id}/parameters",
        token=session.token,
        headers={"Accept-Encoding": "gzip"},
    )
    assert response.headers.get("Content-Encoding") == "gzip"
    np.testing.assert_array_equal(session.parameters(compress=True)["w"], zeros)
    values, _ = session.step({"w": zeros + 1}, compress=True)
    np.testing.assert_array_equal(values["w"], zeros - 1)


def test_parameters_download_reports_the_step(client, rng):
    params, grads = params_and_grads(rng)
    session = client.create_session("sgd", lr=0.1)
    session.upload_parameters(params)
    session.step(grads)
    other = optimizerd.Session(client, session.id, session.token)  # knows nothing yet
    other.parameters()
    assert other.last_step == 1


# MARK: steps


def test_dense_adam_steps_match_reference(client, rng):
    params, _ = params_and_grads(rng)
    session = client.create_session("adam", lr=0.01, betas=[0.9, 0.99])
    session.upload_parameters(params)
    reference = Adam(lr=0.01, betas=(0.9, 0.99))
    expected = {name: value.astype(np.float64) for name, value in params.items()}
    for step in range(1, 4):
        grads = {name: rng.standard_normal(value.shape).astype(np.float32) for name, value in params.items()}
        values, metadata = session.step(grads)
        expected = reference.step(expected, grads)
        assert metadata["step"] == step and session.last_step == step
        assert metadata["skipped"] is False and metadata["retry"] is False
        assert metadata["lr"] == 0.01
        norm = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
        assert metadata["grad_norm"] == pytest.approx(norm, rel=1e-6)
        for name in params:
            np.testing.assert_allclose(values[name], expected[name], rtol=1e-5, atol=1e-6)


def test_step_return_delta_and_none(client, rng):
    params, grads = params_and_grads(rng)
    a, b = twin_sessions(client, params, "adam", lr=0.1)
    after, _ = a.step(grads)
    delta, metadata = b.step(grads, return_="delta")
    for name in params:
        np.testing.assert_allclose(delta[name], after[name] - params[name], rtol=1e-6, atol=1e-7)
    nothing, metadata = b.step(grads, return_="none")
    assert nothing is None and metadata["step"] == 2
    with pytest.raises(ValueError):
        b.step(grads, return_="everything")


def test_step_response_dtype(client, rng):
    params, grads = params_and_grads(rng)
    a, b = twin_sessions(client, params, "adam", lr=0.1)
    exact, _ = a.step(grads)
    rounded, _ = b.step(grads, response_dtype="bf16")
    for name in params:
        np.testing.assert_array_equal(rounded[name], wire.round_to_wire_dtype(exact[name], "bf16"))


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_16_bit_gradients_equal_prerounded_f32(client, rng, dtype):
    params, grads = params_and_grads(rng)
    a, b = twin_sessions(client, params, "adam", lr=0.1)
    sent, _ = a.step(grads, dtype=dtype)
    rounded = {name: wire.round_to_wire_dtype(g, dtype) for name, g in grads.items()}
    expected, _ = b.step(rounded)
    for name in params:
        np.testing.assert_array_equal(sent[name], expected[name])


def test_gzip_step_equals_plain_step(client, rng):
    params, grads = params_and_grads(rng, {"big": (256, 64)})
    a, b = twin_sessions(client, params, "adam", lr=0.1)
    plain, _ = a.step(grads)
    gzipped, metadata = b.step(grads, compress=True)
    np.testing.assert_array_equal(plain["big"], gzipped["big"])
    gzipped9, _ = b.step(grads, compress=9, dtype="bf16")
    assert gzipped9["big"].shape == (256, 64)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_sparse_step_equals_dense_with_zeros(client, rng, index_dtype):
    params, _ = params_and_grads(rng, {"emb": (10, 4), "bias": (4,)})
    a, b = twin_sessions(client, params, "sgd", lr=0.5, momentum=0.9)
    indices = np.array([1, 7, 22, 39], dtype=index_dtype)
    values = rng.standard_normal(4).astype(np.float32)
    dense = np.zeros(40, np.float32)
    dense[indices] = values
    bias = rng.standard_normal(4).astype(np.float32)
    for _ in range(2):
        sparse_result, _ = a.step({"bias": bias}, sparse={"emb": (indices, values)})
        dense_result, _ = b.step({"emb": dense.reshape(10, 4), "bias": bias})
    for name in params:
        np.testing.assert_array_equal(sparse_result[name], dense_result[name])


def test_sparse_bf16_values(client, rng):
    params = {"emb": np.zeros((4, 4), np.float32)}
    a, b = twin_sessions(client, params, "sgd", lr=1.0)
    values = rng.standard_normal(3).astype(np.float32)
    sparse_result, _ = a.step(sparse={"emb": ([0, 5, 15], values)}, dtype="bf16")
    dense = np.zeros(16, np.float32)
    dense[[0, 5, 15]] = wire.round_to_wire_dtype(values, "bf16")
    dense_result, _ = b.step({"emb": dense.reshape(4, 4)})
    np.testing.assert_array_equal(sparse_result["emb"], dense_result["emb"])


def test_grad_scale_unscales_gradients(client, rng):
    params, grads = params_and_grads(rng)
    a, b = twin_sessions(client, params, "sgd", lr=0.1, momentum=0.5)
    for _ in range(2):
        scaled, metadata = a.step({n: g * 1024 for n, g in grads.items()}, grad_scale=1024)
        plain, _ = b.step(grads)
    for name in params:
        np.testing.assert_allclose(scaled[name], plain[name], rtol=1e-6)


def test_per_tensor_optimizer_may_omit_a_parameter(client, rng):
    params, grads = params_and_grads(rng)
    session = client.create_session("adam", lr=0.1)
    session.upload_parameters(params)
    values, _ = session.step({"layer.weight": grads["layer.weight"]})
    assert set(values) == {"layer.weight"}
    np.testing.assert_array_equal(session.parameters()["layer.bias"], params["layer.bias"])


def test_extra_metadata_is_sent_and_known_keys_win(client, rng):
    params, grads = params_and_grads(rng)
    session = client.create_session("sgd", lr=0.1)
    session.upload_parameters(params)
    _, metadata = session.step(grads, metadata={"label": "epoch 1", "step": "99"})
    assert metadata["step"] == 1


def test_history(client, rng):
    params, grads = params_and_grads(rng)
    session = client.create_session("sgd", lr=0.1)
    session.upload_parameters(params)
    for loss in (3.0, 2.0, 1.0):
        session.step(grads, loss=loss)
    page = session.history()
    assert page["id"] == session.id and page["step"] == 3
    assert [r["step"] for r in page["records"]] == [1, 2, 3]
    assert [r["loss"] for r in page["records"]] == [3.0, 2.0, 1.0]
    assert all(r["lr"] == 0.1 and r["skipped"] is False for r in page["records"])
    assert [r["step"] for r in session.history(since=1)["records"]] == [2, 3]
    assert [r["step"] for r in session.history(since=0, limit=1)["records"]] == [1]


def test_summary_reports_state_and_last_step(client, rng):
    params, grads = params_and_grads(rng)
    session = client.create_session("adam")
    session.upload_parameters(params)
    session.step(grads, loss=0.75)
    summary = session.summary()
    assert summary["step"] == 1 and "durable_step" in summary
    assert summary["last_step"]["loss"] == 0.75
    slots = {slot["name"] for p in summary["parameters"] for slot in p["state"]}
    assert {"exp_avg", "exp_avg_sq"} <= slots
    assert set(summary["state"]["norms"]) >= {"exp_avg", "exp_avg_sq"}


# MARK: checkpoints


def test_checkpoint_and_restore(client, rng, checkpoint_routes):
    params, grads = params_and_grads(rng)
    a, b = twin_sessions(client, params, "adam", lr=0.1)
    a.step(grads)
    blob = a.checkpoint()
    entries, metadata, _ = wire.read_header(blob)  # a safetensors file: parameters, state, config, step
    assert {"layer.weight", "layer.bias"} <= set(entries) or any("layer.weight" in name for name in entries)
    assert metadata
    continued, _ = a.step(grads)
    # Restore into another session, then make the same second step there.
    summary = b.restore(blob)
    assert summary["step"] == 1 and b.last_step == 1
    resumed, metadata = b.step(grads)
    assert metadata["step"] == 2
    for name in params:
        np.testing.assert_array_equal(resumed[name], continued[name])


def test_checkpoint_restore_on_another_daemon(client, admin_daemon, rng, checkpoint_routes):
    params, grads = params_and_grads(rng)
    source = client.create_session("adam", lr=0.1)
    source.upload_parameters(params)
    source.step(grads)
    blob = source.checkpoint(compress=True)
    with admin_daemon.client() as other:
        target = other.create_session("adam", lr=0.1)
        target.restore(blob, compress=True)
        np.testing.assert_array_equal(
            target.parameters()["layer.weight"], source.parameters()["layer.weight"]
        )


@pytest.mark.parametrize("response_dtype", ["f32", "bf16"])
def test_step_reads_the_answer_into_out_arrays(client, rng, response_dtype):
    w, b = rng.standard_normal((40, 30)).astype(np.float32), rng.standard_normal(30).astype(np.float32)
    session = client.create_session("sgd", lr=0.5)
    session.upload_parameters({"w": w, "b": b})
    grads = {"w": rng.standard_normal((40, 30)).astype(np.float32), "b": np.ones(30, np.float32)}
    out = {"w": np.full(1200, np.nan, np.float32)}  # any shape with as many elements
    arrays, telemetry = session.step(grads, response_dtype=response_dtype, out=out)
    assert arrays["w"] is out["w"] and telemetry["step"] == 1
    expected = wire.round_to_wire_dtype(w - 0.5 * grads["w"], response_dtype).reshape(-1)
    np.testing.assert_array_equal(out["w"], expected)
    np.testing.assert_array_equal(arrays["b"], wire.round_to_wire_dtype(b - 0.5, response_dtype))
    into = {"b": np.zeros(30, np.float32)}
    assert session.parameters(out=into)["b"] is into["b"]
    np.testing.assert_array_equal(into["b"], b - np.float32(0.5))
    with pytest.raises(ValueError, match="'w'"):
        session.parameters(out={"w": np.zeros(7, np.float32)})
    assert session.parameters()["w"].shape == (40, 30)  # the connection is usable after the error


def test_bodies_are_streamed_from_the_arrays(rng):
    grad = rng.standard_normal(1000).astype(np.float32)
    body = build_body({"g": grad, "i": np.arange(3, dtype=np.int64)}, {"step": 1})
    assert len(body) == len(body.tobytes())
    parts = list(body)[1:]
    # The I64 tensor first (alignment), then the float32 gradient as a view of its own memory.
    assert np.frombuffer(parts[1], np.float32).ctypes.data == grad.ctypes.data
    decoded, metadata = wire.decode(body.tobytes())
    np.testing.assert_array_equal(decoded["g"], grad)
    assert metadata == {"step": "1"}
    buffers = {}
    first = build_body({"g": grad}, dtype="bf16", buffers=buffers)
    second = build_body({"g": grad * 2}, dtype="bf16", buffers=buffers)
    addresses = [np.frombuffer(list(body)[1], np.uint16).ctypes.data for body in (first, second)]
    assert addresses[0] == addresses[1]  # the conversion buffer is reused


@pytest.mark.parametrize("dtype", ["bf16", "f16"])
def test_large_16_bit_steps_match_f32_steps_of_the_rounded_gradients(client, rng, dtype):
    """Tensors large enough to be converted on the body's worker thread while earlier ones are
    sent arrive as the rounded values, step after step (the conversion buffers are reused)."""
    params = {
        "big": rng.standard_normal(1 << 20).astype(np.float32),
        "small": rng.standard_normal(300).astype(np.float32),
        "other": rng.standard_normal((1 << 10, 1025)).astype(np.float32),
    }
    a, b = twin_sessions(client, params, "adam", lr=0.01)
    for _ in range(2):
        grads = {name: rng.standard_normal(p.shape).astype(np.float32) for name, p in params.items()}
        half, _ = a.step(grads, dtype=dtype)
        full, _ = b.step({name: wire.round_to_wire_dtype(g, dtype) for name, g in grads.items()})
        for name in params:
            np.testing.assert_array_equal(half[name], full[name])

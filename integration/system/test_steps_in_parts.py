"""Steps in parts with the real binary: a daemon whose body limit is far below one step's
gradients still trains, with the same bits as one-request steps, and kill -9 between the parts and
the commit, or after the commit, loses nothing acknowledged and applies nothing twice."""

from __future__ import annotations

import signal

import numpy as np
import requests
from harness import LocalDaemon, RawSession, assert_bit_identical, gradients, model, reference_run, wait_until
from optimizerd import Client
from safetensors.numpy import save

ADAMW = ("adamw", {"lr": 0.01, "weight_decay": 0.01, "clip_grad_norm": 0.5})


def test_a_256kib_body_limit_still_trains_megabytes_with_the_same_bits(binary, tmp_path):
    rng = np.random.default_rng(3)
    # 20 tensors of 200 KiB: 4 MB of float32 gradients per step, 16 bodies' worth of 256 KiB.
    initial = {f"block{i}.weight": rng.standard_normal((400, 128)).astype(np.float32) for i in range(20)}
    optimizer, hyperparameters = ADAMW
    steps = 4
    with LocalDaemon(binary, data_dir=tmp_path / "small", args=["--max-body-bytes", "256KiB"]) as daemon:
        with Client(daemon.url) as client:
            assert client.transport.request("GET", "/v1/limits").json()["max_body_bytes"] == 256 * 1024
            session = client.create_session(optimizer, **hyperparameters)
            session.upload_parameters(initial)
            for step in range(1, steps + 1):
                arrays, telemetry = session.step(gradients(initial, step), grad_scale=2.0)
                assert telemetry["step"] == step
            small = session.parameters()
    with LocalDaemon(binary, args=["--fsync", "never"]) as daemon:
        with Client(daemon.url) as client:
            session = client.create_session(optimizer, **hyperparameters)
            session.upload_parameters(initial)
            for step in range(1, steps + 1):
                session.step(gradients(initial, step), grad_scale=2.0)
            whole = session.parameters()
    assert_bit_identical(small, whole)


def _part(session: RawSession, step: int, part: str, tensors: dict):
    return requests.put(
        session.path(f"/steps/{step}/parts/{part}"), data=save(tensors), headers=session.headers, timeout=60
    )


def _commit(session: RawSession, step: int, scalars: dict):
    return requests.post(
        session.path(f"/steps/{step}/commit?return=none"), json=scalars, headers=session.headers, timeout=60
    )


def _in_parts(session: RawSession, step: int, grads: dict) -> dict:
    """Stages `grads` one tensor per part; returns the commit scalars (parameter order = upload order)."""
    total = 0.0
    for index, (name, value) in enumerate(grads.items()):
        answer = _part(session, step, f"t{index}", {name: value})
        assert answer.status_code == 200, answer.text
        total += answer.json()["tensors"][name]["sum_of_squares"]
    return {"term_squared_norms": [total], "parts": len(grads)}


def test_kill_9_between_parts_and_commit_and_after_the_commit(binary, tmp_path):
    initial = model(seed=4)
    optimizer, hyperparameters = "adam", {"lr": 0.01}
    steps = 6
    with LocalDaemon(binary, data_dir=tmp_path / "data", args=["--fsync", "always"]) as daemon:
        session = RawSession(daemon.url, optimizer, hyperparameters)
        assert session.upload(initial).status_code == 200
        for step in range(1, steps + 1):
            scalars = _in_parts(session, step, gradients(initial, step))
            if step % 2 == 1:
                # Killed between the parts and the commit: the staged parts are gone, the step is not
                # applied; sending the parts again and committing makes it.
                daemon.process.send_signal(signal.SIGKILL)
                daemon.process.wait()
                daemon.restart()
                assert session.summary()["step"] == step - 1
                assert "staged_step" not in session.summary()
                refused = _commit(session, step, scalars)
                assert (
                    refused.status_code == 422 and "parts" in refused.json()["detail"]
                )  # lost with the process
                scalars = _in_parts(session, step, gradients(initial, step))
            answer = _commit(session, step, scalars)
            assert answer.status_code == 200, answer.text
            if step % 2 == 0:
                # Killed after the commit: the step is there (replayed from the log), and the commit
                # retried answers it again without applying it twice.
                daemon.process.send_signal(signal.SIGKILL)
                daemon.process.wait()
                daemon.restart()
                assert session.summary()["step"] == step
                retry = _commit(session, step, scalars)
                assert retry.status_code == 200 and retry.headers["Optimizerd-Retry"] == "true"
                assert session.summary()["step"] == step
        final = session.parameters()
    assert_bit_identical(final, reference_run(binary, optimizer, hyperparameters, initial, steps))
    assert all(np.isfinite(value).all() for value in final.values())


def _staging_bytes(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=10).text
    line = next(
        line
        for line in text.splitlines()
        if line.startswith("optimizerd_memory_used_by_kind_bytes") and 'kind="staging"' in line
    )
    return float(line.rsplit(" ", 1)[1])


def test_staged_parts_past_their_ttl_give_their_memory_back_untouched(binary, tmp_path):
    # A trainer that stages a part and dies: no request names its session again, yet after
    # --staged-step-ttl the parts are dropped and their memory is the budget's again.
    with LocalDaemon(binary, data_dir=tmp_path / "d", args=["--staged-step-ttl", "1s"]) as daemon:
        session = RawSession(daemon.url, "sgd", {"lr": 0.1})
        assert session.upload({"w": np.zeros(1 << 20, np.float32)}).status_code == 200
        assert _part(session, 1, "p0", {"w": np.ones(1 << 20, np.float32)}).status_code == 200
        assert _staging_bytes(daemon.url) >= 4 << 20
        wait_until(lambda: _staging_bytes(daemon.url) == 0, "the expired parts' memory to come back")
        assert session.summary()["step"] == 0

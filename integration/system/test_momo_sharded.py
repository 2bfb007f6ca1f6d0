"""MoMo and MoMo-Adam over several daemons (DESIGN §9): each daemon's session holds some of the
tensors; a step stages every shard's gradients, folds the part answers into the global scalars,
asks every shard for its tensors' step size sums (``Session.momo_sums``), folds them in the global
parameter order (``parts.fold_momo_totals``) and commits them on every shard. The trajectory must be
the one-daemon, one-request trajectory bit for bit, also across kill -9 and a replay of the log."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import requests
from harness import LocalDaemon, assert_bit_identical
from optimizerd import Client, Session, Unprocessable, parts
from safetensors.numpy import load, load_file, save

CONFORMANCE = Path(
    os.environ.get("OPTIMIZERD_CONFORMANCE_DIR")
    or Path(__file__).resolve().parents[3] / "shared" / "conformance"
)
SHARDS = 3
CASES = ["momo", "momo_adam", "momo_wd_fstar_bc", "momo_adam_wd_fstar"]


def _case(name: str) -> tuple[dict, dict, list, list, int]:
    """(hyperparameters, initial parameters, per-step gradients, losses, steps) of a conformance case."""
    path = CONFORMANCE / f"{name}.safetensors"
    with open(path, "rb") as file:
        header_length = int.from_bytes(file.read(8), "little")
        metadata = json.loads(file.read(header_length))["__metadata__"]
    tensors = load_file(path)
    order = json.loads(metadata["parameters"])
    steps = int(metadata["steps"])
    initial = {p: tensors[f"init/{p}"] for p in order}
    grads = [{p: tensors[f"grad/{t}/{p}"] for p in order} for t in range(1, steps + 1)]
    return json.loads(metadata["hyperparameters"]), initial, grads, json.loads(metadata["losses"]), steps


def _placement(order: list) -> list:
    """Tensor i on shard i mod SHARDS: interleaved, so the global fold crosses shards."""
    return [[name for i, name in enumerate(order) if i % SHARDS == shard] for shard in range(SHARDS)]


def _sharded_step(
    shards: list, placement: list, order: list, step: int, grads: dict, loss: float, optimizer: str
) -> list:
    """One step over the shards; returns each shard's commit telemetry (the answer's metadata)."""
    sums = {}
    for session, names in zip(shards, placement):
        answer = requests.put(
            _url(session, f"/steps/{step}/parts/p0"),
            data=save({n: grads[n] for n in names}),
            headers=_auth(session),
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        sums.update(
            (name, (value["sum_of_squares"], value["finite"]))
            for name, value in answer.json()["tensors"].items()
        )
    scalars = parts.commit_scalars(
        sums, order, terms=1, optimizer=optimizer, loss=repr(loss), term_weights=None, grad_scale=None
    )
    scalars["parts"] = 1
    momo = {}
    for session in shards:
        first = session.momo_sums(step, scalars)
        assert session.momo_sums(step, scalars) == first  # read-only: the same answer again
        momo.update(first)
    totals = parts.fold_momo_totals(momo, order)
    telemetry = []
    for session in shards:
        answer = requests.post(
            _url(session, f"/steps/{step}/commit?return=none"),
            json={**scalars, "momo_totals": totals},
            headers=_auth(session),
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        telemetry.append(load_metadata(answer.content))
    return telemetry


def load_metadata(body: bytes) -> dict:
    length = int.from_bytes(body[:8], "little")
    return json.loads(body[8 : 8 + length]).get("__metadata__", {})


def _url(session: Session, suffix: str) -> str:
    return f"{session.client.transport.url}/v1/sessions/{session.id}{suffix}"


def _auth(session: Session) -> dict:
    return {"Authorization": f"Bearer {session.token}"}


def _shards(daemons: list, optimizer: str, hyperparameters: dict, initial: dict, placement: list) -> list:
    shards = []
    for daemon, names in zip(daemons, placement):
        session = Client(daemon.url).create_session(optimizer, **hyperparameters)
        session.upload_parameters({n: initial[n] for n in names})
        shards.append(session)
    return shards


def _assert_same(shards: list, placement: list, reference: dict) -> None:
    for session, names in zip(shards, placement):
        assert_bit_identical(session.parameters(), {n: reference[n] for n in names})


@pytest.mark.parametrize("case", CASES)
def test_a_conformance_case_over_three_daemons_follows_one_daemon_bit_for_bit(binary, case):
    hyperparameters, initial, grads, losses, steps = _case(case)
    optimizer = "momo_adam" if case.startswith("momo_adam") else "momo"
    order = list(initial)
    placement = _placement(order)
    daemons = [LocalDaemon(binary, args=["--fsync", "never"]).start() for _ in range(SHARDS)]
    try:
        whole = Client(daemons[0].url).create_session(optimizer, **hyperparameters)
        whole.upload_parameters(initial)
        shards = _shards(daemons, optimizer, hyperparameters, initial, placement)
        for t in range(steps):
            _, expected = whole.step(grads[t], loss=losses[t])
            telemetry = _sharded_step(shards, placement, order, t + 1, grads[t], losses[t], optimizer)
            # Every shard used the one-daemon step size τ, and holds the one-daemon parameters.
            assert {float(shard["lr"]) for shard in telemetry} == {expected["lr"]}, f"τ at step {t + 1}"
            _assert_same(shards, placement, whole.parameters())
    finally:
        for daemon in daemons:
            daemon.stop()


def test_a_shard_killed_after_its_commit_replays_the_given_totals(binary, tmp_path):
    """kill -9 of one shard after some commits: the restarted daemon replays its log, whose commit
    records carry the totals, so the shard continues on the one-daemon trajectory."""
    hyperparameters, initial, grads, losses, steps = _case("momo_adam_wd_fstar")
    order = list(initial)
    placement = _placement(order)
    # No background snapshot during the run: the killed shard's state comes back from the log.
    args = ["--fsync", "always", "--snapshot-interval", "3600s"]
    daemons = [LocalDaemon(binary, data_dir=tmp_path / f"shard{i}", args=args).start() for i in range(SHARDS)]
    try:
        reference = LocalDaemon(binary, args=["--fsync", "never"]).start()
        try:
            whole = Client(reference.url).create_session("momo_adam", **hyperparameters)
            whole.upload_parameters(initial)
            shards = _shards(daemons, "momo_adam", hyperparameters, initial, placement)
            for t in range(steps):
                whole.step(grads[t], loss=losses[t])
                _sharded_step(shards, placement, order, t + 1, grads[t], losses[t], "momo_adam")
                if t + 1 in (4, 9):
                    victim = daemons[(t + 1) % SHARDS]
                    victim.restart(kill=True)
                    _assert_same(shards, placement, whole.parameters())
            _assert_same(shards, placement, whole.parameters())
            for session in shards:
                assert session.summary()["step"] == steps
        finally:
            reference.stop()
    finally:
        for daemon in daemons:
            daemon.stop()


def test_fold_momo_totals_follows_the_order_and_refuses_gaps():
    sums = {
        "a": {"parameter_dot_average": 1e16, "gamma": 1.0, "average_squared_norm": 0.5},
        "b": {"parameter_dot_average": 1.0, "gamma": float("nan"), "average_squared_norm": 0.25},
        "c": {"parameter_dot_average": -1e16, "gamma": 2.0, "average_squared_norm": float("inf")},
    }
    # Floating-point addition is not associative: the order decides the bits.
    assert parts.fold_momo_totals(sums, ["a", "b", "c"])["parameter_dot_average"] == (1e16 + 1.0) + -1e16
    assert parts.fold_momo_totals(sums, ["a", "c", "b"])["parameter_dot_average"] == (1e16 + -1e16) + 1.0
    folded = parts.fold_momo_totals(sums, ["a", "b", "c"])
    assert folded["gamma"] == "NaN" and folded["average_squared_norm"] == "Infinity"
    with pytest.raises(ValueError, match="missing"):
        parts.fold_momo_totals(sums, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="unknown"):
        parts.fold_momo_totals(sums, ["a", "b"])


def test_momo_sums_name_the_bad_field(binary):
    with LocalDaemon(binary, args=["--fsync", "never"]) as daemon:
        client = Client(daemon.url)
        adam = client.create_session("adam")
        adam.upload_parameters({"w": np.ones(3, np.float32)})
        staged = requests.put(
            _url(adam, "/steps/1/parts/p0"),
            data=save({"w": np.ones(3, np.float32)}),
            headers=_auth(adam),
            timeout=60,
        )
        assert staged.status_code == 200
        with pytest.raises(Unprocessable, match="optimizer"):
            adam.momo_sums(1, {"term_squared_norms": [3.0], "parts": 1})
        assert load(requests.get(_url(adam, "/parameters"), headers=_auth(adam)).content)["w"].tolist() == [
            1,
            1,
            1,
        ]

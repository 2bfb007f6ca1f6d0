"""A sharded session over three daemons (default durability, `log`) survives `kill -9` of one shard
between the parts and the commit, after some shards committed, and at random moments of a step:
the client brings every shard to the same step and the final state is bit-identical to one daemon
that never stopped."""

from __future__ import annotations

import random
import threading
from contextlib import ExitStack

import numpy as np
import pytest
from harness import LocalDaemon, assert_bit_identical, gradients, model, reference_run
from optimizerd import ConnectionFailed, ShardedSession, ShardsDisagree

OPTIMIZER = "adamw"
HYPERPARAMETERS = {"lr": 0.01, "weight_decay": 0.1, "clip_grad_norm": 2.0}
STEPS = 8


@pytest.fixture
def shards(binary, tmp_path):
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                LocalDaemon(binary, data_dir=tmp_path / f"shard{k}", args=["--log-level", "warning"])
            )
            for k in range(3)
        ]


def _session(shards) -> tuple[ShardedSession, dict]:
    initial = model(seed=6)
    session = ShardedSession.create(
        [daemon.url for daemon in shards],
        OPTIMIZER,
        HYPERPARAMETERS,
        client_options={"retries": 8, "backoff": 0.1, "max_backoff": 1.0},
    )
    session.upload_parameters(initial)
    assert sorted(set(session.placement.tensors.values())) == [0, 1, 2]
    return session, initial


def _kill_and_restart(daemon: LocalDaemon) -> None:
    daemon.restart(kill=True)  # SIGKILL, then the same port and data directory


def _finish(session: ShardedSession, initial: dict, binary) -> None:
    summary = session.summary()
    assert [shard["step"] for shard in summary["shards"]] == [STEPS] * 3
    assert_bit_identical(
        session.parameters(), reference_run(binary, OPTIMIZER, HYPERPARAMETERS, initial, STEPS)
    )


def test_kill_9_between_parts_and_commit(shards, binary):
    session, initial = _session(shards)
    for step in range(1, STEPS + 1):
        grads = gradients(initial, step)
        splits = session.split_shards(grads)
        scalars = session.fold(session.stage_shards(step, splits, dtype="f32", compress=False), {})
        if step % 2 == 0:
            _kill_and_restart(shards[step % 3])  # its staged parts are lost: the commit resends them
        answers = session.commit_shards(step, scalars, splits, params={"return": "none"})
        assert session.merge(answers)[1]["step"] == step
        session.last_step = step
    _finish(session, initial, binary)


def test_kill_9_after_some_shards_committed(shards, binary):
    session, initial = _session(shards)
    for step in range(1, STEPS + 1):
        grads = gradients(initial, step)
        splits = session.split_shards(grads)
        scalars = session.fold(session.stage_shards(step, splits, dtype="f32", compress=False), {})
        if step % 3 == 1:
            session.commit_shards(step, scalars, splits, params={"return": "none"}, shards=[0, 1])
            assert [s.sync() for s in session.sessions] == [step, step, step - 1]
            _kill_and_restart(shards[2 if step % 2 else 0])
        answers = session.commit_shards(step, scalars, splits, params={"return": "none"})
        telemetry = session.merge(answers)[1]
        assert telemetry["step"] == step
        assert telemetry["retry"] == (step % 3 == 1)  # shards 0 and 1 answered the applied step again
        session.last_step = step
    _finish(session, initial, binary)


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_at_random_moments_of_steps(shards, binary, seed):
    """A killer thread SIGKILLs and restarts a random shard after a random pause while step() runs;
    whatever step() raises, calling it again with the same gradients finishes the step."""
    session, initial = _session(shards)
    chooser = random.Random(seed)
    kills = 0
    for step in range(1, STEPS + 1):
        grads = gradients(initial, step)
        victim = shards[chooser.randrange(3)]
        killer = threading.Timer(chooser.uniform(0.0, 0.05), _kill_and_restart, args=[victim])
        killer.start()
        for _attempt in range(5):
            try:
                _, telemetry = session.step(grads, return_="none")
                break
            except (ShardsDisagree, ConnectionFailed):
                killer.join()  # let the shard come back, then the same step again
        else:
            pytest.fail(f"step {step} never completed")
        killer.join()
        kills += 1
        assert telemetry["step"] == step
        assert [s.sync() for s in session.sessions] == [step] * 3
    assert kills == STEPS
    assert all(np.isfinite(v).all() for v in session.parameters().values())
    _finish(session, initial, binary)

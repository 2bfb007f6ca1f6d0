"""A sharded session's checkpoint (a file per shard plus the placement) restores onto another
number of daemons and continues bit-identically: per-tensor state moves with its tensor,
session-wide state (the step) is the same on every shard."""

from __future__ import annotations

import numpy as np
import optimizerd
import pytest
from optimizerd import ShardedCheckpoint, ShardedSession
from shard_support import Case, assert_same_bits


@pytest.mark.parametrize(
    ("name", "before", "after"),
    [("adam_amsgrad_l2", 3, 2), ("adafactor", 1, 3), ("mtadam", 3, 1), ("momo_wd_fstar_bc", 3, 2)],
)
def test_checkpoint_restores_onto_another_number_of_daemons(urls, tmp_path, name, before, after):
    case = Case(name)
    single = optimizerd.Client(urls[0]).create_session(case.optimizer, case.options())
    first = ShardedSession.create(urls[:before], case.optimizer, case.options())
    for session in (single, first):
        session.upload_parameters(case.initial())
    for step in range(1, 5):
        single.step(case.gradients(step), loss=case.loss(step))
        first.step(case.gradients(step), loss=case.loss(step))
    saved = first.checkpoint().save(tmp_path / "ckpt")
    assert sorted(p.name for p in saved.iterdir()) == ["placement.json"] + [
        f"shard-{k}.safetensors" for k in range(before)
    ]
    first.delete()
    second = ShardedSession.create(urls[:after], case.optimizer, case.options())
    summary = second.restore(ShardedCheckpoint.load(saved))
    assert summary["step"] == 4 and [s["step"] for s in summary["shards"]] == [4] * after
    assert second.placement.parameters == case.parameters
    assert sorted(set(second.placement.tensors.values())) == list(range(after))
    assert_same_bits(second.parameters(), single.parameters())
    for step in range(5, case.steps + 1):
        expected, _ = single.step(case.gradients(step), loss=case.loss(step))
        got, _ = second.step(case.gradients(step), loss=case.loss(step))
        assert_same_bits(got, expected, f"{name} step {step}")
        case.check_expected(step, got)


def test_a_restore_refuses_a_checkpoint_whose_shards_disagree(urls, rng):
    session = ShardedSession.create(urls[:2], "sgd", lr=0.1)
    session.upload_parameters({"a": np.ones(4, np.float32), "b": np.ones(3, np.float32)})
    early = session.checkpoint()
    session.step({"a": np.ones(4, np.float32), "b": np.ones(3, np.float32)})
    late = session.checkpoint()
    mixed = ShardedCheckpoint(early.placement, [early.shards[0], late.shards[1]])
    with pytest.raises(ValueError, match="different steps"):
        session.restore(mixed)
    assert session.summary()["step"] == 1

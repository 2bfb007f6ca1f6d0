"""RemoteOptimizer(urls=[...]) runs a sharded session: the same parameters as one daemon, bit for
bit, and its state dict restores onto another number of daemons."""

from __future__ import annotations

import torch
from optimizerd import ShardedSession
from optimizerd.torch import RemoteOptimizer


def _model(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def _train(model, optimizer, steps, seed=1):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 6, generator=generator)
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), x[:, :3]).backward()
        optimizer.step()


def test_remote_optimizer_over_three_daemons_matches_one(urls):
    one, three = _model(0), _model(0)
    single = RemoteOptimizer(
        one.named_parameters(), url=urls[0], optimizer="adamw", lr=0.01, clip_grad_norm=0.5
    )
    sharded = RemoteOptimizer(
        three.named_parameters(), urls=urls, optimizer="adamw", lr=0.01, clip_grad_norm=0.5
    )
    assert isinstance(sharded.session, ShardedSession)
    assert len(set(sharded.session.placement.tensors.values())) == 3
    _train(one, single, 5)
    _train(three, sharded, 5)
    for (name, a), (_, b) in zip(one.named_parameters(), three.named_parameters()):
        assert torch.equal(a, b), name
    assert sharded.last_metadata["grad_norm"] == single.last_metadata["grad_norm"]

    state = sharded.state_dict()
    moved = _model(5)
    two = RemoteOptimizer(
        moved.named_parameters(), urls=urls[1:], optimizer="adamw", lr=0.01, clip_grad_norm=0.5
    )
    two.load_state_dict(state)
    assert two.session.last_step == 5
    _train(one, single, 3, seed=2)
    _train(moved, two, 3, seed=2)
    for (name, a), (_, b) in zip(one.named_parameters(), moved.named_parameters()):
        assert torch.equal(a, b), name


def test_state_dicts_move_between_one_daemon_and_shards(urls):
    """A state dict made on one daemon loads into a sharded optimizer and the reverse (README:
    checkpoints restore onto another number of daemons); the runs then go on bit for bit as the
    uninterrupted one."""
    reference, model = _model(0), _model(0)
    reference_opt = RemoteOptimizer(reference.named_parameters(), url=urls[0], optimizer="adam", lr=0.01)
    single = RemoteOptimizer(model.named_parameters(), url=urls[0], optimizer="adam", lr=0.01)
    _train(reference, reference_opt, 2)
    _train(model, single, 2)
    onto_shards = _model(7)
    sharded = RemoteOptimizer(onto_shards.named_parameters(), urls=urls[1:], optimizer="adam", lr=0.01)
    sharded.load_state_dict(single.state_dict())
    assert sharded.session.last_step == 2
    _train(reference, reference_opt, 2, seed=2)
    _train(onto_shards, sharded, 2, seed=2)
    back = _model(8)
    again = RemoteOptimizer(back.named_parameters(), url=urls[1], optimizer="adam", lr=0.01)
    again.load_state_dict(sharded.state_dict())
    assert again.session.last_step == 4
    _train(reference, reference_opt, 2, seed=3)
    _train(back, again, 2, seed=3)
    for (name, a), (_, b) in zip(reference.named_parameters(), back.named_parameters()):
        assert torch.equal(a, b), name

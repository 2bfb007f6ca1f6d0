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

"""RemoteOptimizer(state_dtype="int8") follows bitsandbytes 0.50.2's CPU Adam8bit/AdamW8bit.

A small torch model with one layer above bitsandbytes' ``min_8bit_size`` (4096 elements: 8-bit
moments) and the rest below it (float32 moments, bitsandbytes' own 32-bit step) trains side by
side with ``bnb.optim.Adam8bit``/``AdamW8bit`` on the CPU. The daemon reproduces bitsandbytes'
codes bit for bit (Tests/ConformanceTests/LowBit); what differs is the square root (torch's MKL
``sqrt`` is faithfully rounded, the daemon's is IEEE: docs/lowbit-state.md), about one ulp of an
update per step, which through the loop also moves the next gradients by as little. The
tolerance is the golden cases' (docs/lowbit-state.md): |θ − θ_bnb| ≤ 2e-6 + 1e-5·|θ_bnb − θ0|
(2e-6 is ~8 ulps of a parameter of size 2; measured here: 3e-8 at most over 12 steps). float32
Adam misses the same tolerance by two orders of magnitude (checked in the same test, so the
comparison cannot pass by being loose).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
bnb = pytest.importorskip("bitsandbytes")

import optimizerd  # noqa: E402
from optimizerd.torch import RemoteOptimizer  # noqa: E402

STEPS = 12


def make_model(seed=0):
    torch.manual_seed(seed)
    # 64·96 = 6144 weights ≥ 4096: 8-bit state; the biases and the 96·3 head stay float32.
    return torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.Tanh(), torch.nn.Linear(96, 3))


def train(model, optimizer, steps=STEPS):
    generator = torch.Generator().manual_seed(7)
    x, y = torch.randn(48, 64, generator=generator), torch.randn(48, 3, generator=generator)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()


def worst_ratio(reference, other, initial):
    """max over elements of |other − reference| / (2e-6 + 1e-5·|reference − initial|)."""
    worst = 0.0
    for a, b, c in zip(reference.parameters(), other.parameters(), initial.parameters()):
        a, b, c = (t.detach().numpy().astype(np.float64) for t in (a, b, c))
        worst = max(worst, float(np.max(np.abs(b - a) / (2e-6 + 1e-5 * np.abs(a - c)))))
    return worst


@pytest.mark.parametrize(
    "optimizer, bnb_class, torch_class, hyperparameters",
    [
        ("adam", "Adam8bit", "Adam", {"lr": 1e-3}),
        (
            "adamw",
            "AdamW8bit",
            "AdamW",
            {"lr": 2e-3, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05},
        ),
    ],
    ids=["adam8bit", "adamw8bit"],
)
def test_int8_state_follows_bitsandbytes(daemon, optimizer, bnb_class, torch_class, hyperparameters):
    initial = make_model()
    reference, remote, float32 = (copy.deepcopy(initial) for _ in range(3))
    train(reference, getattr(bnb.optim, bnb_class)(reference.parameters(), **hyperparameters))
    remote_opt = RemoteOptimizer(
        remote.named_parameters(), url=daemon.url, optimizer=optimizer, state_dtype="int8", **hyperparameters
    )
    train(remote, remote_opt)
    train(float32, getattr(torch.optim, torch_class)(float32.parameters(), **hyperparameters))

    assert worst_ratio(reference, remote, initial) <= 1
    # float32 Adam is far outside the same tolerance: the test tells 8-bit state apart.
    assert worst_ratio(reference, float32, initial) > 20

    summary = remote_opt.session.summary()
    assert summary["state_dtype"] == "int8"
    state = {entry["name"]: entry for entry in summary["parameters"][0]["state"]}
    assert state["exp_avg"]["dtype"] == "u8" and state["exp_avg_absmax"]["dtype"] == "f32"
    assert {entry["dtype"] for entry in summary["parameters"][1]["state"] if "dtype" in entry} == {"f32"}
    remote_opt.session.delete()


def test_session_create_passes_state_dtype(client):
    session = client.create_session("adam", state_dtype="bf16", lr=1e-3)
    try:
        assert session.info["state_dtype"] == "bf16"
        assert session.summary()["state_dtype"] == "bf16"
    finally:
        session.delete()


def test_sharded_sessions_take_state_dtype(urls):
    """state_dtype goes into every shard's create body (it went into the hyperparameters, which the
    daemon refused: RemoteOptimizer(urls=..., state_dtype=...) could not be made)."""
    model = make_model()
    remote_opt = RemoteOptimizer(
        model.named_parameters(), urls=urls[:2], optimizer="adam", state_dtype="int8"
    )
    try:
        assert [shard.summary()["state_dtype"] for shard in remote_opt.session.sessions] == ["int8", "int8"]
    finally:
        remote_opt.session.delete()
    sharded = optimizerd.ShardedSession.create(urls[:2], "adam", state_dtype="bf16")
    try:
        assert [shard.info["state_dtype"] for shard in sharded.sessions] == ["bf16", "bf16"]
    finally:
        sharded.delete()

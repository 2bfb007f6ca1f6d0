"""The model, data and hyperparameters of the multi-rank trainer test, shared by the test (its
single-process references) and the ranks (``multirank_worker.py``)."""

from __future__ import annotations

import torch

#: AdamW with global-norm clipping (the clip coefficient needs every rank's gradient norms).
HYPERPARAMETERS = {"lr": 0.01, "weight_decay": 0.01, "clip_grad_norm": 0.5}
BATCH = 16
#: Parameters are clamped to ±CLAMP after every step (some of the loaded weights are beyond it).
CLAMP = 0.4


def make_model() -> torch.nn.Module:
    """The same initial values in every process: four tensors of different sizes."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))


def load_weights(model: torch.nn.Module) -> None:
    """Weights loaded into the model after its optimizer was made (in place, as
    ``model.load_state_dict`` loads them; on every rank alike): the optimizer must step these."""
    model.load_state_dict({name: 1.5 * value for name, value in model.state_dict().items()})


@torch.no_grad()
def clamp(model: torch.nn.Module) -> None:
    """An in-place change after every step (a WGAN-style clip), which the next step must start from."""
    for p in model.parameters():
        p.clamp_(-CLAMP, CLAMP)


def batch(rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank ``rank``'s share of the global batch (equal shares; ``world`` 1: all of it). The same
    batch at every step, so the loss falls as the model fits it."""
    generator = torch.Generator().manual_seed(100)
    x = torch.randn(BATCH, 8, generator=generator)
    y = torch.randn(BATCH, 4, generator=generator)
    share = BATCH // world
    return x[rank * share : (rank + 1) * share], y[rank * share : (rank + 1) * share]

"""Adam and AdamW with a small β1 against torch float64: torch's lerp computes the first moment as
g − (g − m)·β1 once its weight 1 − β1 reaches 0.5 (so exactly g for β1 = 0), and so does the
daemon; the other form, m + (1 − β1)·(g − m), rounds g at the old m's scale when the gradient
shrinks by orders of magnitude and missed the conformance criterion by ~1e-4."""

from __future__ import annotations

import numpy as np
import pytest
import torch

INIT = np.array([0.5, -0.25, 0.125], np.float32)
GRADIENTS = [np.array([g, -g, 3 * g], np.float32) for g in (1.0, 3.3e-6, 3.3e-6, 2.0, 1e-7)]


def _torch64(optimizer: str, betas: tuple[float, float]) -> list[np.ndarray]:
    p = torch.nn.Parameter(torch.tensor(INIT, dtype=torch.float64))
    make = torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW
    opt = make([p], lr=0.01, betas=betas, foreach=False)
    out = []
    for g in GRADIENTS:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        out.append(p.detach().numpy().copy())
    return out


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
@pytest.mark.parametrize("betas", [(0.0, 0.0), (0.0, 0.999), (0.3, 0.0), (0.5, 0.5)])
def test_a_small_beta1_follows_torch_within_the_conformance_criterion(client, optimizer, betas):
    session = client.create_session(optimizer, lr=0.01, betas=list(betas))
    session.upload_parameters({"w": INIT})
    for step, (gradient, expected) in enumerate(zip(GRADIENTS, _torch64(optimizer, betas)), 1):
        got = session.step({"w": gradient})[0]["w"].astype(np.float64)
        # The golden Adam cases' criterion: atol 2e-6, rtol 1e-3 of the displacement.
        excess = np.abs(got - expected) - (2e-6 + 1e-3 * np.abs(expected - INIT))
        assert excess.max() <= 0, (step, got, expected)

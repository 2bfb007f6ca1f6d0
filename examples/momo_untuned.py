#!/usr/bin/env python3
"""MoMo without tuning the learning rate: lr = 1 (its default) on scikit-learn's digits.

MoMo (Schaipp et al., ICML 2024) is SGD with momentum whose step size τ is chosen at every step
from the batch loss (a Polyak-type model, capped by lr). The script trains a small MLP with
RemoteOptimizer("momo", loss=...) at the default lr = 1, next to local torch.optim.SGD with momentum
at the same untuned lr = 1, and prints both losses with MoMo's adaptive τ from the daemon's
history.

    pip install ./clients/python torch scikit-learn
    python examples/momo_untuned.py               # starts a daemon (.build/debug/optimizerd)
    python examples/momo_untuned.py --url http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:
    import optimizerd  # noqa: F401
except ImportError:  # run from a checkout without installing the client
    sys.path.insert(0, str(REPO / "clients" / "python" / "src"))
    import optimizerd  # noqa: F401

import torch
from optimizerd.testing import daemon_url
from optimizerd.torch import RemoteOptimizer
from sklearn.datasets import load_digits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="daemon URL (default: start one)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, test = order[:1500], order[1500:]

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    sgd_model = copy.deepcopy(model)
    sgd = torch.optim.SGD(sgd_model.parameters(), lr=1.0, momentum=0.9)  # the same untuned lr

    with daemon_url(args.url, hints=[REPO / ".build" / "debug" / "optimizerd"]) as url:
        momo = RemoteOptimizer(model.named_parameters(), url=url, optimizer="momo", name="momo_untuned")
        hyperparameters = momo.session.info["hyperparameters"]
        print(f"session {momo.session.id}: momo with its defaults "
              f"(lr={hyperparameters['lr']}, beta={hyperparameters['beta']}, lb={hyperparameters['lb']})")  # fmt: skip
        print(f"{'step':>5} {'MoMo loss':>10} {'MoMo τ':>10} {'SGD(lr=1, momentum=0.9) loss':>30}")
        batches = torch.Generator().manual_seed(1)
        for step in range(1, args.steps + 1):
            batch = train[torch.randint(len(train), (args.batch_size,), generator=batches)]
            for m, opt in ((model, momo), (sgd_model, sgd)):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(m(x[batch]), y[batch])
                loss.backward()
                if opt is momo:
                    momo.step(loss=loss)  # MoMo needs the batch loss
                    momo_loss = loss.item()
                else:
                    sgd.step()
                    sgd_loss = loss.item()
            if step == 1 or step % 25 == 0:
                tau = momo.last_metadata["lr"]
                print(f"{step:5d} {momo_loss:10.4f} {tau:10.4g} {sgd_loss:30.4g}")

        records = momo.session.history()["records"]
        momo.session.delete()

    taus = [r["lr"] for r in records]
    with torch.no_grad():
        accuracy = {
            name: float((m(x[test]).argmax(1) == y[test]).float().mean())
            for name, m in (("MoMo", model), ("SGD", sgd_model))
        }
        final = {
            name: float(torch.nn.functional.cross_entropy(m(x[train]), y[train]))
            for name, m in (("MoMo", model), ("SGD", sgd_model))
        }
    print(f"\nτ over {len(taus)} steps (daemon history): first {taus[0]:.4g}, min {min(taus):.4g}, "
          f"median {sorted(taus)[len(taus) // 2]:.4g}, max {max(taus):.4g} (capped at lr = 1)")  # fmt: skip
    limited = sum(1 for tau in taus if tau < 1.0)
    print(f"the loss model chose τ < lr in {limited} of {len(taus)} steps; SGD at lr = 1 has no such brake")
    print(f"final training loss: MoMo {final['MoMo']:.4f}, SGD {final['SGD']:.4g}")
    print(f"test accuracy:       MoMo {accuracy['MoMo']:.4f}, SGD {accuracy['SGD']:.4f}")
    ok = math.isfinite(final["MoMo"]) and accuracy["MoMo"] > 0.9
    print("RESULT:", "MoMo trained well at the default lr = 1" if ok else "MoMo did not train well")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""MTAdam on three loss terms of very different scales, with RemoteOptimizer.step_terms.

A small network with a shared trunk and three heads learns three regression tasks at once whose
losses are weighted 1, 1000 and 0.001 (as when terms come in different units), so their
gradients differ by up to 10^6. Summed and fed to Adam, task B's gradient dominates the shared
layer; MTAdam rescales each term's gradient per layer to the magnitude of the first term's. The script prints the per-term losses, the daemon's
per-layer term weights from the session history, and the final losses next to Adam on the sum.

    pip install ./clients/python torch
    python examples/mtadam_terms.py               # starts a daemon (.build/debug/optimizerd)
    python examples/mtadam_terms.py --url http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import copy
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

SCALES = (1.0, 1000.0, 0.001)  # loss multipliers, e.g. terms in different units
TERMS = tuple(f"task {name} (×{scale:g})" for name, scale in zip("ABC", SCALES))


class ThreeHeads(torch.nn.Module):
    """A shared trunk and one linear head per task."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh())
        self.heads = torch.nn.ModuleList(torch.nn.Linear(32, 1) for _ in SCALES)

    def forward(self, x):
        h = self.trunk(x)
        return [head(h).squeeze(1) for head in self.heads]


def loss_terms(model, x, targets):
    outputs = model(x)
    return [scale * torch.nn.functional.mse_loss(out, t) for scale, out, t in zip(SCALES, outputs, targets)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="daemon URL (default: start one)")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=0.01)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=generator)
    targets = [torch.sin(x @ torch.randn(8, generator=generator)) for _ in SCALES]
    # The loss of always predicting the mean: results are shown as a fraction of it.
    baselines = [scale * float(t.var(unbiased=False)) for scale, t in zip(SCALES, targets)]

    torch.manual_seed(0)
    model = ThreeHeads()
    adam_model = copy.deepcopy(model)
    adam = torch.optim.Adam(adam_model.parameters(), lr=args.lr)

    with daemon_url(args.url, hints=[REPO / ".build" / "debug" / "optimizerd"]) as url:
        mtadam = RemoteOptimizer(
            model.named_parameters(),
            url=url,
            optimizer="mtadam",
            lr=args.lr,
            terms=len(TERMS),
            name="mtadam_terms",
        )
        print(f"session {mtadam.session.id}: mtadam, {len(TERMS)} terms, lr={args.lr}")
        print("per-term losses (MTAdam on the daemon):")
        print(f"{'step':>5}  " + "  ".join(f"{t:>22}" for t in TERMS))
        for step in range(1, args.steps + 1):
            values = mtadam.step_terms(loss_terms(model, x, targets))  # each term's gradients, as k/NAME

            adam.zero_grad()
            sum(loss_terms(adam_model, x, targets)).backward()  # the usual way: Adam on the sum
            adam.step()
            if step == 1 or step % 50 == 0:
                print(f"{step:5d}  " + "  ".join(f"{v:22.6g}" for v in values))

        record = mtadam.session.history()["records"][-1]
        print(f"\nper-layer term weights at step {record['step']} (daemon history; w_k = λ_k·n_anchor/n_k):")
        print(f"  {'layer':16s} " + " ".join(f"{'term ' + str(k):>10s}" for k in range(len(TERMS))))
        for name, weights in record["term_weights"].items():
            print(f"  {name:16s} " + " ".join(f"{w:10.4g}" for w in weights))
        print(
            "per-term gradient norms at that step:", ", ".join(f"{n:.4g}" for n in record["term_grad_norms"])
        )
        mtadam.session.delete()

    with torch.no_grad():
        final = {
            "MTAdam (daemon)": [float(t) / b for t, b in zip(loss_terms(model, x, targets), baselines)],
            "Adam on the sum": [float(t) / b for t, b in zip(loss_terms(adam_model, x, targets), baselines)],
        }
    print(f"\nfinal loss / loss of predicting the mean, after {args.steps} steps (lower is better):")
    print(f"  {'':22s} " + " ".join(f"{k:>16s}" for k in final))
    for index, name in enumerate(TERMS):
        print(f"  {name:22s} " + " ".join(f"{v[index]:16.4f}" for v in final.values()))
    worst = {k: max(v) for k, v in final.items()}
    print(
        f"RESULT: worst task: MTAdam {worst['MTAdam (daemon)']:.4f}, Adam on the sum {worst['Adam on the sum']:.4f}"
    )
    return 0 if worst["MTAdam (daemon)"] < min(0.2, worst["Adam on the sum"]) else 1


if __name__ == "__main__":
    sys.exit(main())

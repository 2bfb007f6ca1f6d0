#!/usr/bin/env python3
"""Train a small MLP on scikit-learn's bundled digits with RemoteOptimizer("adam") next to a local
torch.optim.Adam from the same initial weights, and show that both loss curves match step for step.

    pip install ./clients/python torch scikit-learn
    python examples/mlp_digits.py                 # starts a daemon (.build/debug/optimizerd)
    python examples/mlp_digits.py --url http://127.0.0.1:8080

Exits with status 1 if the curves differ by more than --tolerance (relative).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:
    import optimizerd  # noqa: F401
except ImportError:  # run from a checkout without installing the client
    sys.path.insert(0, str(REPO / "clients" / "python" / "src"))
    import optimizerd  # noqa: F401

import numpy as np
import torch
from optimizerd.testing import daemon_url
from optimizerd.torch import RemoteOptimizer
from sklearn.datasets import load_digits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="daemon URL (default: start one)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--wire-dtype", default="f32", choices=["f32", "bf16", "f16"],
        help="gradient dtype on the wire (the local run then rounds its gradients the same way)",
    )  # fmt: skip
    parser.add_argument(
        "--tolerance", type=float, default=1e-4, help="largest relative loss difference accepted"
    )
    args = parser.parse_args()

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, test = order[:1500], order[1500:]

    torch.manual_seed(0)
    local_model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    remote_model = copy.deepcopy(local_model)  # identical initial weights
    local_opt = torch.optim.Adam(local_model.parameters(), lr=args.lr)
    wire_torch_dtype = {"f32": None, "bf16": torch.bfloat16, "f16": torch.float16}[args.wire_dtype]

    with daemon_url(args.url, hints=[REPO / ".build" / "debug" / "optimizerd"]) as url:
        # The two-line change: this instead of torch.optim.Adam(model.parameters(), lr=...).
        remote_opt = RemoteOptimizer(
            remote_model.named_parameters(), url=url, optimizer="adam", lr=args.lr, wire_dtype=args.wire_dtype,
            name="mlp_digits",
        )  # fmt: skip
        print(f"session {remote_opt.session.id}: adam lr={args.lr}, wire dtype {args.wire_dtype}")
        print(f"{'step':>5} {'local Adam':>12} {'RemoteOptimizer':>16} {'|difference|':>13}")
        batches = torch.Generator().manual_seed(1)
        curves = []
        elapsed = {"local": 0.0, "remote": 0.0}
        for step in range(1, args.steps + 1):
            batch = train[torch.randint(len(train), (args.batch_size,), generator=batches)]
            losses = []
            for kind, model, opt in (("local", local_model, local_opt), ("remote", remote_model, remote_opt)):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
                loss.backward()
                if kind == "local" and wire_torch_dtype is not None:
                    # Round the local gradients as the wire does, so the curves stay comparable.
                    for p in model.parameters():
                        p.grad = p.grad.to(wire_torch_dtype).to(torch.float32)
                start = time.perf_counter()
                opt.step()
                elapsed[kind] += time.perf_counter() - start
                losses.append(loss.item())
            curves.append(losses)
            if step == 1 or step % 25 == 0 or step == args.steps:
                print(f"{step:5d} {losses[0]:12.6f} {losses[1]:16.6f} {abs(losses[0] - losses[1]):13.3e}")
        summary = remote_opt.session.summary()
        remote_opt.session.delete()

    curves = np.array(curves)
    relative = np.abs(curves[:, 0] - curves[:, 1]) / np.maximum(np.abs(curves[:, 0]), 1e-12)
    parameter_difference = max(
        float((a.detach() - b.detach()).abs().max())
        for a, b in zip(local_model.parameters(), remote_model.parameters())
    )
    with torch.no_grad():
        accuracy = [
            float((model(x[test]).argmax(1) == y[test]).float().mean())
            for model in (local_model, remote_model)
        ]
    print()
    print(f"steps: {args.steps} (daemon step counter: {summary['step']})")
    print(
        f"max |loss difference|: {np.abs(curves[:, 0] - curves[:, 1]).max():.3e} (relative {relative.max():.3e})"
    )
    print(f"max |parameter difference| at the end: {parameter_difference:.3e}")
    print(f"test accuracy: local {accuracy[0]:.4f}, remote {accuracy[1]:.4f}")
    print(f"optimizer step time: local {elapsed['local'] * 1e3 / args.steps:.2f} ms, "
          f"remote {elapsed['remote'] * 1e3 / args.steps:.2f} ms per step (round trip included)")  # fmt: skip
    matched = relative.max() <= args.tolerance
    print(
        "RESULT:", "curves match step for step" if matched else f"curves differ by more than {args.tolerance}"
    )
    return 0 if matched else 1


if __name__ == "__main__":
    sys.exit(main())

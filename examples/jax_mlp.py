#!/usr/bin/env python3
"""Train an MLP on scikit-learn's bundled digits in JAX with optimizerd.optax.remote("adamw") next
to a local optax.adamw from the same initial weights, and show that both loss curves match.

The remote transformation is used exactly as optax's own, inside a jitted training step:
``updates, state = tx.update(grads, state, params)`` then ``optax.apply_updates``.

    pip install ./clients/python "jax[cpu]" optax scikit-learn
    python examples/jax_mlp.py                    # starts a daemon (.build/debug/optimizerd)
    python examples/jax_mlp.py --url http://127.0.0.1:8080

Exits with status 1 if the losses differ by more than --tolerance (absolute) at any step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:
    import optimizerd  # noqa: F401
except ImportError:  # run from a checkout without installing the client
    sys.path.insert(0, str(REPO / "clients" / "python" / "src"))
    import optimizerd  # noqa: F401

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimizerd.optax
from optimizerd.testing import daemon_url
from sklearn.datasets import load_digits


def init_mlp(key: jax.Array, sizes: list[int]) -> dict:
    """{"layers": [{"w", "b"}, ...]}: the daemon names these ``layers.0.w``, ``layers.0.b``, ..."""
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        key, sub = jax.random.split(key)
        bound = 1.0 / np.sqrt(fan_in)
        layers.append(
            {
                "w": jax.random.uniform(sub, (fan_in, fan_out), minval=-bound, maxval=bound),
                "b": jnp.zeros(fan_out),
            }
        )
    return {"layers": layers}


def loss_fn(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    h = x
    for layer in params["layers"][:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    last = params["layers"][-1]
    return optax.softmax_cross_entropy_with_integer_labels(h @ last["w"] + last["b"], y).mean()


def accuracy(params: dict, x: jax.Array, y: jax.Array) -> float:
    h = x
    for layer in params["layers"][:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    last = params["layers"][-1]
    return float(((h @ last["w"] + last["b"]).argmax(1) == y).mean())


def make_step(tx: optax.GradientTransformation):
    """One jitted training step for ``tx``; the remote one calls the daemon from inside jit."""

    @jax.jit
    def step(params, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="daemon URL (default: start one)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="optax.adamw's default")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest loss difference accepted")
    args = parser.parse_args()

    digits = load_digits()
    x_all = jnp.asarray(digits.data / 16.0, jnp.float32)
    y_all = jnp.asarray(digits.target)
    order = np.random.default_rng(0).permutation(len(x_all))
    train, test = order[:1500], order[1500:]
    start = init_mlp(jax.random.key(0), [64, 64, 10])

    local_tx = optax.adamw(args.lr, weight_decay=args.weight_decay)
    with daemon_url(args.url, hints=[REPO / ".build" / "debug" / "optimizerd"]) as url:
        remote_tx = optimizerd.optax.remote(
            url, optimizer="adamw", lr=args.lr, weight_decay=args.weight_decay, name="jax_mlp"
        )
        runs = {"local": [start, local_tx.init(start), make_step(local_tx)]}
        runs["remote"] = [start, remote_tx.init(start), make_step(remote_tx)]
        session = optimizerd.optax.session(runs["remote"][1])
        print(f"session {session.id}: adamw lr={args.lr} weight_decay={args.weight_decay}")
        print(f"{'step':>5} {'optax.adamw':>12} {'remote adamw':>13} {'|difference|':>13}")
        batches = np.random.default_rng(1)
        curves = []
        for step in range(1, args.steps + 1):
            batch = train[batches.integers(len(train), size=args.batch_size)]
            losses = []
            for run in runs.values():
                params, state, train_step = run
                params, state, loss = train_step(params, state, x_all[batch], y_all[batch])
                run[:2] = params, state
                losses.append(float(loss))
            curves.append(losses)
            if step == 1 or step % 25 == 0 or step == args.steps:
                print(f"{step:5d} {losses[0]:12.6f} {losses[1]:13.6f} {abs(losses[0] - losses[1]):13.3e}")
        daemon_params = optimizerd.optax.parameters(runs["remote"][1])
        final_step = session.summary()["step"]
        session.delete()

    curves = np.array(curves)
    difference = float(np.abs(curves[:, 0] - curves[:, 1]).max())
    # apply_updates(params, new - params) is the daemon's value exactly unless new - params rounds
    # (a coordinate crossing zero): then it is within one rounding of it, never drifting further.
    caller, daemon = (
        np.concatenate([np.ravel(a) for a in jax.tree.leaves(t)]) for t in (runs["remote"][0], daemon_params)
    )
    parameter_difference = max(
        float(jnp.abs(a - b).max())
        for a, b in zip(jax.tree.leaves(runs["local"][0]), jax.tree.leaves(runs["remote"][0]))
    )
    print()
    print(f"steps: {args.steps} (daemon step counter: {final_step})")
    print(f"max |loss difference|: {difference:.3e}")
    print(f"max |parameter difference| local vs remote at the end: {parameter_difference:.3e}")
    print(f"trainer's parameters equal to the daemon's bit for bit: {int((caller == daemon).sum())} of "
          f"{caller.size}, the rest within {float(np.abs(caller - daemon).max()):.1e}")  # fmt: skip
    print(f"test accuracy: local {accuracy(runs['local'][0], x_all[test], y_all[test]):.4f}, "
          f"remote {accuracy(runs['remote'][0], x_all[test], y_all[test]):.4f}")  # fmt: skip
    matched = difference <= args.tolerance
    print("RESULT:", "losses match" if matched else f"losses differ by more than {args.tolerance}")
    return 0 if matched else 1


if __name__ == "__main__":
    sys.exit(main())

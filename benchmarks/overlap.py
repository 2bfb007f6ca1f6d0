"""Iterations per second of a real training loop with the step local or on the daemon.

    swift build -c release --product optimizerd --scratch-path .build-release
    python3 benchmarks/overlap.py [--binary .build-release/release/optimizerd] [--steps 30]

A small character-level transformer (``torch.nn.TransformerEncoder``, causal mask) learns to
predict the next character of text that ships with Python (the standard library's own sources), on
the CPU. Four copies of the same model, data and seed train in one process: ``torch.optim.AdamW``
locally (the baseline), ``RemoteOptimizer`` without overlap, with ``overlap="backward"`` and with
``overlap="delayed"``, against one release daemon (a temporary data directory, ``--fsync never``).
They take turns, a few steps each per round, so that a busy machine slows them alike. Printed:
iterations/s of each, the local loop's rate over it, and the last loss. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import copy
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "clients" / "python" / "src"))
from optimizerd.testing import LocalDaemon  # noqa: E402
from optimizerd.torch import RemoteOptimizer  # noqa: E402


def corpus(limit: int = 2_000_000) -> torch.Tensor:
    """Bytes of the standard library's Python sources (no download), as a tensor of byte values."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text = bytearray()
    for path in sorted(stdlib.glob("*.py")):
        text += path.read_bytes()
        if len(text) >= limit:
            break
    return torch.tensor(list(text[:limit]), dtype=torch.long)


class CharTransformer(torch.nn.Module):
    def __init__(self, width: int, layers: int, context: int) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(256, width)
        self.position = torch.nn.Parameter(torch.zeros(context, width))
        layer = torch.nn.TransformerEncoderLayer(width, 4, 4 * width, dropout=0.0, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(width, 256)
        self.register_buffer("mask", torch.nn.Transformer.generate_square_subsequent_mask(context))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.position
        return self.head(self.encoder(x, mask=self.mask, is_causal=True))


def batches(data: torch.Tensor, count: int, batch: int, context: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        starts = torch.randint(0, len(data) - context - 1, (batch,), generator=generator)
        window = torch.stack([data[s : s + context + 1] for s in starts])
        yield window[:, :-1], window[:, 1:]


class Loop:
    """One model and optimizer stepping through the batches; accumulates its timed seconds."""

    def __init__(self, label: str, model, opt, data, args) -> None:
        self.label, self.model, self.opt = label, model, opt
        self.batches = batches(data, args.warmup + args.steps, args.batch, args.context)
        self.seconds = 0.0
        self.loss = float("nan")

    def run(self, count: int, timed: bool) -> None:
        started = time.perf_counter()
        for _ in range(count):
            x, y = next(self.batches)
            self.opt.zero_grad()
            logits = self.model(x)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), y.reshape(-1))
            loss.backward()
            self.opt.step()
            self.loss = loss.item()
        if timed:
            self.seconds += time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--binary", default=str(REPO / ".build-release" / "release" / "optimizerd"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--round", type=int, default=5, help="steps of each loop per turn")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--wire-dtype", default="f32")
    args = parser.parse_args()
    torch.manual_seed(0)
    base = CharTransformer(args.width, args.layers, args.context)
    data = corpus()
    parameters = sum(p.numel() for p in base.parameters())
    print(
        f"model: {parameters / 1e6:.2f}M parameters, batch {args.batch}x{args.context}, {args.steps} timed steps"
    )
    hyperparameters = {"lr": 3e-4, "weight_decay": 0.01}
    with (
        tempfile.TemporaryDirectory() as data_dir,
        LocalDaemon(
            args.binary, args=["--data-dir", data_dir, "--fsync", "never", "--log-level", "warning"]
        ) as daemon,
    ):
        model = copy.deepcopy(base)
        local = torch.optim.AdamW(model.parameters(), **hyperparameters)
        loops = [Loop("local torch.optim.AdamW", model, local, data, args)]
        for label, overlap in (
            ("RemoteOptimizer", None),
            ('overlap="backward"', "backward"),
            ('overlap="delayed"', "delayed"),
        ):
            model = copy.deepcopy(base)
            opt = RemoteOptimizer(
                model.named_parameters(), url=daemon.url, optimizer="adamw", overlap=overlap,
                wire_dtype=args.wire_dtype, **hyperparameters,
            )  # fmt: skip
            loops.append(Loop(label, model, opt, data, args))
        for loop in loops:
            loop.run(args.warmup, timed=False)
        done = 0
        while done < args.steps:
            count = min(args.round, args.steps - done)
            for loop in loops:
                loop.run(count, timed=True)
            done += count
        for loop in loops[1:]:
            loop.opt.flush()
            loop.opt.session.delete()
    baseline = args.steps / loops[0].seconds
    print(f"{'loop':<26} {'it/s':>7} {'local/this':>10} {'last loss':>10}")
    for loop in loops:
        rate = args.steps / loop.seconds
        print(f"{loop.label:<26} {rate:7.2f} {baseline / rate:10.2f} {loop.loss:10.4f}")


if __name__ == "__main__":
    main()

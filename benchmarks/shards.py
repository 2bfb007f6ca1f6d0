"""Step time of a sharded session over 1, 2 and 3 loopback daemons, next to the one-request step
of the same model on one daemon, and the largest model each setup can step.

    swift build -c release --product optimizerd --scratch-path .build-release
    python3 benchmarks/shards.py [--binary .build-release/release/optimizerd] [--parameters 16M]
                                 [--repeats 5] [--largest] [--max-memory 512MiB]

Three release daemons on loopback (temporary data directories, default durability ``log``,
``--fsync never``). A transformer-shaped float32 model (an embedding, then per layer q/k/v/o,
two MLP matrices and two norm vectors) steps with Adam; the four setups take turns, one step each
per round, so a busy machine slows them alike. Printed: the median step time of each setup and
its ratio to the one-request step.

``--largest``: restarts the daemons with ``--max-memory`` each (the machine is shared: a budget
per daemon stands in for a machine's memory) and finds, per setup, the largest model whose
session can be created, uploaded and stepped: the parameter count doubles from 1M until the
daemon refuses (507 memory budget, or 413 for a body over the limit), then is bisected to 5 %.
A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "clients" / "python" / "src"))
import optimizerd  # noqa: E402
from optimizerd import InsufficientStorage, PayloadTooLarge, ShardedSession  # noqa: E402
from optimizerd.testing import LocalDaemon  # noqa: E402

WIDTH = 512
ONE_REQUEST = 1 << 40  # part_bytes that never splits: the step is one request


def count(text: str) -> int:
    units = {"K": 10**3, "M": 10**6, "G": 10**9}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def model(parameters: int, seed: int = 0) -> dict[str, np.ndarray]:
    """About ``parameters`` float32 values shaped like a transformer of width 512."""
    rng = np.random.default_rng(seed)
    shapes: dict[str, tuple[int, ...]] = {}
    vocabulary = max(1, min(8192, parameters // (4 * WIDTH)))
    shapes["embed.weight"] = (vocabulary, WIDTH)
    remaining = parameters - vocabulary * WIDTH
    layer = 0
    while remaining >= 12 * WIDTH * WIDTH:
        for name, shape in (
            ("q", (WIDTH, WIDTH)), ("k", (WIDTH, WIDTH)), ("v", (WIDTH, WIDTH)), ("o", (WIDTH, WIDTH)),
            ("fc1", (4 * WIDTH, WIDTH)), ("fc2", (WIDTH, 4 * WIDTH)), ("norm1", (WIDTH,)), ("norm2", (WIDTH,)),
        ):  # fmt: skip
            shapes[f"layers.{layer}.{name}"] = shape
        remaining -= 12 * WIDTH * WIDTH + 2 * WIDTH
        layer += 1
    if remaining > 0:
        shapes["head.weight"] = (remaining,)
    return {name: rng.standard_normal(shape, dtype=np.float32) * 0.02 for name, shape in shapes.items()}


def gradients(params: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(value.shape, dtype=np.float32) * 1e-3 for name, value in params.items()}


SETUPS = ("one request, 1 daemon", "sharded, 1 daemon", "sharded, 2 daemons", "sharded, 3 daemons")


def create(urls: list[str], setup: str):
    """A new Adam session for ``setup`` (one of :data:`SETUPS`)."""
    if setup == SETUPS[0]:
        return optimizerd.Client(urls[0], timeout=600).create_session("adam", lr=1e-3)
    shards = int(setup.split(", ")[1].split()[0])
    return ShardedSession.create(urls[:shards], "adam", lr=1e-3, client_options={"timeout": 600})


def step(session, grads) -> None:
    session.step(grads, part_bytes=ONE_REQUEST if isinstance(session, optimizerd.Session) else 64 << 20)


def timing(urls: list[str], parameters: int, repeats: int) -> None:
    params = model(parameters)
    grads = [gradients(params, seed) for seed in range(2)]
    setups = {setup: create(urls, setup) for setup in SETUPS}
    for session in setups.values():
        session.upload_parameters(params)
        step(session, grads[0])  # warm-up: connections, state allocation
    times: dict[str, list[float]] = {name: [] for name in setups}
    for round_ in range(repeats):
        for name, session in setups.items():
            start = time.perf_counter()
            step(session, grads[round_ % 2])
            times[name].append(time.perf_counter() - start)
    baseline = statistics.median(times[SETUPS[0]])
    total = sum(value.size for value in params.values())
    print(f"\nAdam step, {total / 1e6:.1f}M parameters in {len(params)} tensors, median of {repeats}")
    print("| Setup | ms | ÷ one request |\n|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median * 1e3:.0f} | {median / baseline:.2f} |")
    for session in setups.values():
        session.delete()


def fits(urls: list[str], setup: str, parameters: int) -> bool:
    """Whether a session of ``parameters`` can be created, uploaded and stepped in ``setup``."""
    session = create(urls, setup)
    try:
        params = model(parameters)
        session.upload_parameters(params)
        step(session, gradients(params, 1))
        return True
    except (InsufficientStorage, PayloadTooLarge):
        return False
    finally:
        session.delete()
        gc.collect()


def largest(urls: list[str]) -> None:
    print("\n| Setup | largest Adam model stepped |\n|---|---|")
    for setup in SETUPS:
        low, high = 0, 1_000_000
        while fits(urls, setup, high):
            low, high = high, high * 2
        while high - low > low * 0.05:
            middle = (low + high) // 2
            low, high = (middle, high) if fits(urls, setup, middle) else (low, middle)
        print(f"| {setup} | {low / 1e6:.1f}M parameters |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--binary", default=str(REPO / ".build-release" / "release" / "optimizerd"))
    parser.add_argument("--parameters", default="16M")
    parser.add_argument("--repeats", type=int, default=5, help="0: no timing (with --largest)")
    parser.add_argument("--largest", action="store_true")
    parser.add_argument("--max-memory", default="512MiB")
    options = parser.parse_args()
    common = ["--log-level", "warning", "--fsync", "never"]
    with ExitStack() as stack:
        daemons = [stack.enter_context(LocalDaemon(options.binary, args=common)) for _ in range(3)]
        if options.repeats > 0:
            timing([d.url for d in daemons], count(options.parameters), options.repeats)
    if options.largest:
        with ExitStack() as stack:
            limited = [*common, "--max-memory", options.max_memory]
            daemons = [stack.enter_context(LocalDaemon(options.binary, args=limited)) for _ in range(3)]
            print(f"\n--max-memory {options.max_memory} per daemon")
            largest([d.url for d in daemons])


if __name__ == "__main__":
    main()

"""How long a background snapshot holds a session's lock (a step arriving then waits that long).

    swift build -c release --product optimizerd
    python3 benchmarks/snapshot_lock.py [--binary A --binary B] [--parameters 8M] [--steps 24] [--rounds 2]

Each binary in turn (binaries take turns, `--rounds` times, so all see the same machine) runs one
Adam session of `--parameters` with `--snapshot-every 3 --log-level info`, takes `--steps` f32 steps,
and the daemon's own "snapshot written" log lines are read: the time under the session's lock
(`snapshot.copy_ms`; `snapshot.encode_ms` in daemons before the staged snapshots) and the time
written without it (`snapshot.write_ms`). Compare an older build with `--binary old --binary new`.

A benchmark, not a test: read the ratio between binaries within one run.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback import DEFAULT_BINARY, LocalDaemon, parse_count, wire  # noqa: E402

UNDER_LOCK = re.compile(r"snapshot\.(?:copy|encode)_ms[\"=: ]+([0-9.]+)")
WRITTEN = re.compile(r"snapshot\.write_ms[\"=: ]+([0-9.]+)")


def lock_times(
    binary: Path, count: int, steps: int, every: int, data_root: Path
) -> Tuple[List[float], List[float]]:
    """Runs one session through `steps` steps; returns (ms under the lock, ms written) per snapshot."""
    rng = np.random.default_rng(0)
    params = wire.encode({"w": rng.standard_normal(count).astype(np.float32)})
    gradient = wire.encode({"w": (rng.standard_normal(count) * 1e-2).astype(np.float32)})
    with tempfile.TemporaryDirectory(prefix="optimizerd-lock-", dir=data_root) as root:
        args = ["--snapshot-every", str(every), "--log-level", "info"]
        with (
            LocalDaemon(binary, data_dir=Path(root) / "data", args=args) as daemon,
            requests.Session() as http,
        ):
            created = http.post(f"{daemon.url}/v1/sessions", json={"optimizer": "adam"}, timeout=60).json()
            headers = {"Authorization": f"Bearer {created['token']}"}
            base = f"{daemon.url}/v1/sessions/{created['id']}"
            http.put(f"{base}/parameters", data=params, headers=headers, timeout=600).raise_for_status()
            for _ in range(steps):
                http.post(f"{base}/step", data=gradient, headers=headers, timeout=600).raise_for_status()
                time.sleep(0.05)  # room for the snapshot thread to take its turn
            expected = steps // every
            deadline = time.monotonic() + 60
            while len(UNDER_LOCK.findall(daemon.log())) < expected and time.monotonic() < deadline:
                time.sleep(0.2)
            text = daemon.log()
    return [float(x) for x in UNDER_LOCK.findall(text)], [float(x) for x in WRITTEN.findall(text)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--binary", type=Path, action="append", help="repeatable; default the release build")
    parser.add_argument("--parameters", default="8M")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--snapshot-every", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data-root", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    binaries = args.binary or [Path(os.environ.get("OPTIMIZERD_BIN", DEFAULT_BINARY))]
    count = parse_count(args.parameters)
    print(
        f"== snapshot lock window: {count / 1e6:g}M Adam, --snapshot-every {args.snapshot_every}, {args.steps} steps =="
    )
    for _ in range(args.rounds):
        for binary in binaries:
            under, written = lock_times(binary, count, args.steps, args.snapshot_every, args.data_root)
            if not under:
                print(f"{binary}: no snapshot was logged")
                continue
            print(
                f"{binary}: {len(under)} snapshots; under the lock median {statistics.median(under):.1f} ms,"
                f" max {max(under):.1f} ms; written without it median {statistics.median(written):.1f} ms",
                flush=True,
            )
    print(f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores, shared)")


if __name__ == "__main__":
    main()

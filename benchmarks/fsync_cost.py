"""What durability costs: step throughput of a 10M-parameter Adam session with --fsync always,
periodic and never, side by side in one run (ratios; absolute times vary on shared machines).

    swift build -c release --product optimizerd
    python3 benchmarks/fsync_cost.py [--parameters 10000000] [--steps 12]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import requests
from safetensors.numpy import save

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "clients" / "python" / "src"))
from optimizerd.testing import LocalDaemon  # noqa: E402


def run(binary: Path, policy: str, count: int, steps: int) -> float:
    """Median seconds per acknowledged step (upload + log + step, return=none)."""
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal(count).astype(np.float32)}
    bodies = [
        save({"w": rng.standard_normal(count).astype(np.float32)}, metadata={"step": str(k)})
        for k in range(1, steps + 1)
    ]
    with LocalDaemon(binary, args=["--fsync", policy, "--snapshot-every", "100000"]) as daemon:
        created = requests.post(f"{daemon.url}/v1/sessions", json={"optimizer": "adam"}).json()
        headers = {"Authorization": f"Bearer {created['token']}"}
        base = f"{daemon.url}/v1/sessions/{created['id']}"
        with requests.Session() as http:
            http.put(f"{base}/parameters", data=save(params), headers=headers).raise_for_status()
            times = []
            for body in bodies:
                start = time.perf_counter()
                http.post(f"{base}/step?return=none", data=body, headers=headers).raise_for_status()
                times.append(time.perf_counter() - start)
    return float(np.median(times[2:]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parameters", type=int, default=10_000_000)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--binary", type=Path, default=REPO / ".build" / "release" / "optimizerd")
    args = parser.parse_args()
    results = {
        policy: run(args.binary, policy, args.parameters, args.steps)
        for policy in ("never", "periodic", "always")
    }
    baseline = results["never"]
    print(
        f"Adam, {args.parameters:,} parameters, {args.steps} steps each, median step round trip (return=none)"
    )
    for policy, seconds in results.items():
        rate = args.parameters / seconds / 1e6
        print(
            f"  --fsync {policy:<8} {seconds * 1e3:8.1f} ms/step  {rate:7.1f} M params/s  {baseline / seconds:5.2f}x of never"
        )


if __name__ == "__main__":
    main()

"""torch's CPU Adam on one float32 tensor: the default implementation and fused=True.

    python3 benchmarks/torch_adam.py [--sizes 1M,8M,32M] [--repeats 5] [--json torch.json]

Run by scripts/bench.sh next to optimizerd-bench (same sizes, same machine, same run). Prints
"torch not installed" and writes nothing when torch is missing: it is optional.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback import parse_count  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1M,8M,32M")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("torch not installed: skipping the torch comparison (pip install torch to include it)")
        return

    rows: List[Dict[str, Any]] = []
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; best of {args.repeats} steps after 2 warm-up steps"
    )
    for count in (parse_count(s) for s in args.sizes.split(",")):
        for label, options in (
            ("default", {}),
            ("fused", {"fused": True}),
            ("foreach=False", {"foreach": False}),
        ):
            generator = torch.Generator().manual_seed(0)
            parameter = torch.nn.Parameter(torch.randn(count, generator=generator))
            parameter.grad = torch.randn(count, generator=generator) * 1e-2
            try:
                optimizer = torch.optim.Adam([parameter], lr=1e-3, **options)
                optimizer.step()
            except (RuntimeError, TypeError) as error:
                print(f"{count / 1e6:5.1f}M  torch Adam {label:<14} unavailable: {error}")
                continue
            optimizer.step()
            best = float("inf")
            with torch.no_grad():
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    optimizer.step()
                    best = min(best, time.perf_counter() - start)
            rate = count / best
            rows.append(
                {"parameters": count, "implementation": label, "seconds": best, "params_per_second": rate}
            )
            print(
                f"{count / 1e6:5.1f}M  torch Adam {label:<14} {rate / 1e6:9.1f} M params/s  {rate * 28 / 1e9:6.2f} GB/s"
            )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}, indent=2
            )
        )


if __name__ == "__main__":
    sys.exit(main())

"""bitsandbytes' CPU Adam8bit (the user's alternative to state_dtype int8) next to torch's Adam.

    python3 benchmarks/bnb_adam8bit.py [--sizes 1M,8M] [--repeats 5] [--json bnb.json]

One float32 tensor per size, gradients of size 1e-2, best of ``--repeats`` steps after two warm-up
steps, in this process (no network). Compare with ``optimizerd-bench --lowbit`` at the same sizes in
the same run (BENCHMARKS.md). Prints "bitsandbytes not installed" and writes nothing without it.
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


def best_step_seconds(optimizer: Any, repeats: int) -> float:
    optimizer.step()
    optimizer.step()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        optimizer.step()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1M,8M")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    try:
        import bitsandbytes as bnb
        import torch
    except ImportError:
        print("bitsandbytes not installed: skipping (pip install bitsandbytes==0.50.2 torch)")
        return

    print(
        f"bitsandbytes {bnb.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"best of {args.repeats} steps after 2 warm-up steps"
    )
    rows: List[Dict[str, Any]] = []
    for count in (parse_count(s) for s in args.sizes.split(",")):
        for label, make in (
            ("torch Adam", lambda p: torch.optim.Adam([p], lr=1e-3)),
            ("bnb Adam8bit", lambda p: bnb.optim.Adam8bit([p], lr=1e-3)),
        ):
            generator = torch.Generator().manual_seed(0)
            parameter = torch.nn.Parameter(torch.randn(count, generator=generator))
            parameter.grad = torch.randn(count, generator=generator) * 1e-2
            optimizer = make(parameter)
            with torch.no_grad():
                seconds = best_step_seconds(optimizer, args.repeats)
            state = optimizer.state[parameter]
            state_bytes = sum(
                v.numel() * v.element_size()
                for k, v in state.items()
                if torch.is_tensor(v) and not k.startswith("qmap")
            )
            rows.append(
                {
                    "parameters": count,
                    "implementation": label,
                    "seconds": seconds,
                    "params_per_second": count / seconds,
                    "state_bytes_per_parameter": state_bytes / count,
                }
            )
            print(
                f"{count / 1e6:5.1f}M  {label:<13} {count / seconds / 1e6:9.1f} M params/s  state {state_bytes / count:5.2f} B/param"
            )
    if args.json:
        args.json.write_text(json.dumps({"bitsandbytes": bnb.__version__, "rows": rows}, indent=2))


if __name__ == "__main__":
    sys.exit(main())

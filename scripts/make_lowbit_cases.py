"""Golden cases for `state_dtype: "int8"` from bitsandbytes' CPU Adam8bit/AdamW8bit.

Writes Tests/Fixtures/lowbit/<case>.safetensors in the shared conformance format
(../shared/conformance/README.md: init/<p>, grad/<t>/<p>, expect/<t>/<p>, metadata) plus, for the
first `CODE_STEPS` steps and every 8-bit tensor, the quantized state after the step as float32
tensors: `codes1/<t>/<p>`, `codes2/<t>/<p>` (the uint8 codes 0…255) and `absmax1/<t>/<p>`,
`absmax2/<t>/<p>` (one float per block of 256). Needs torch and bitsandbytes==0.50.2.

    python3 scripts/make_lowbit_cases.py
"""

import json
import pathlib

import bitsandbytes as bnb
import numpy as np
import torch
from safetensors.numpy import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "Fixtures" / "lowbit"
STEPS = 8
CODE_STEPS = 3
# A tensor of 18 blocks and a partial one (8-bit), and one below min_8bit_size (kept in float32
# by bitsandbytes).
SHAPES = {"w": (30, 150), "b": (300,)}

CASES = {
    "adam8bit": ("adam", bnb.optim.Adam8bit, {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8}),
    "adamw8bit": (
        "adamw",
        bnb.optim.AdamW8bit,
        {"lr": 2e-3, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.05},
    ),
}


def gradient(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Normal values spread over ten decades, so every part of the dynamic map is used."""
    n = int(np.prod(shape))
    scale = 10.0 ** rng.uniform(-7, 1, n)
    return (rng.standard_normal(n) * scale).astype(np.float32).reshape(shape)


def make(name: str, optimizer: str, cls, hyper: dict, seed: int) -> None:
    rng = np.random.default_rng(seed)
    params = {
        k: torch.nn.Parameter(torch.from_numpy(rng.standard_normal(s).astype(np.float32)))
        for k, s in SHAPES.items()
    }
    tensors = {f"init/{k}": p.detach().numpy().copy() for k, p in params.items()}
    kwargs = dict(hyper)
    kwargs["betas"] = tuple(kwargs["betas"])
    opt = cls(list(params.values()), **kwargs)
    for t in range(1, STEPS + 1):
        for k, p in params.items():
            g = gradient(rng, SHAPES[k])
            tensors[f"grad/{t}/{k}"] = g
            p.grad = torch.from_numpy(g.copy())
        opt.step()
        for k, p in params.items():
            tensors[f"expect/{t}/{k}"] = p.detach().numpy().copy()
            state = opt.state[p]
            if t <= CODE_STEPS and state["state1"].dtype == torch.uint8:
                for slot in ("1", "2"):
                    tensors[f"codes{slot}/{t}/{k}"] = (
                        state[f"state{slot}"].numpy().astype(np.float32).reshape(-1)
                    )
                    tensors[f"absmax{slot}/{t}/{k}"] = state[f"absmax{slot}"].numpy().copy()
    metadata = {
        "optimizer": optimizer,
        "hyperparameters": json.dumps(hyper),
        "state_dtype": "int8",
        "steps": str(STEPS),
        "code_steps": str(CODE_STEPS),
        "terms": "1",
        "parameters": json.dumps(list(SHAPES)),
        # bitsandbytes' CPU step takes sqrt through torch (MKL's vsSqrt: faithful, not correctly
        # rounded), optimizerd's is IEEE: the update can differ by an ulp per step (docs/lowbit-state.md).
        "atol": "2e-6",
        "rtol": "1e-5",
        "source": f"bitsandbytes {bnb.__version__} {cls.__name__} on CPU, torch {torch.__version__}",
    }
    OUT.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(OUT / f"{name}.safetensors"), metadata=metadata)
    print(f"wrote {OUT / name}.safetensors")


if __name__ == "__main__":
    for index, (case, (optimizer, cls, hyper)) in enumerate(sorted(CASES.items())):
        make(case, optimizer, cls, hyper, seed=1000 + index)

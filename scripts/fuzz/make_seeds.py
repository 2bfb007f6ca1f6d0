#!/usr/bin/env python3
"""Writes the fuzzers' seed inputs: real payloads, as clients and the conformance cases send them.

    python3 scripts/fuzz/make_seeds.py [output folder]   # default Tests/FuzzCorpus/seeds

One folder per fuzz target (see Sources/OptimizerFuzzing):
  safetensors/  safetensors buffers: dense F32/F16/BF16 steps, MTAdam k/P terms, sparse pairs,
                metadata, scalars, empty tensors, checkpoints, cuts of the conformance cases
  request/      session-creation JSON, parameter upload and step bodies, joined by the separator
                (an empty step body repeats the upload as gradients)
  json/         session configurations and safetensors headers as text

Deterministic (fixed random seed), so regenerating changes nothing. Needs numpy and safetensors.
"""

import json
import pathlib
import sys

import numpy as np
from safetensors.numpy import load_file, save

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFORMANCE = ROOT.parent / "shared" / "conformance"
SEPARATOR = b"\n--8<--\n"  # RequestFuzz.separator
rng = np.random.default_rng(20261122)


def floats(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def body(tensors, **metadata):
    return save(tensors, metadata={k: str(v) for k, v in metadata.items()} or None)


def request(config, parameters, *steps):
    return SEPARATOR.join([json.dumps(config).encode(), parameters, *steps])


def model(dtype=np.float32):
    return {"layer.weight": floats(4, 3, dtype=dtype), "layer.bias": floats(4, dtype=dtype)}


def sparse(name, size, k, index_dtype=np.int64, value_dtype=np.float32):
    indices = np.sort(rng.choice(size, k, replace=False)).astype(index_dtype)
    return {f"{name}.indices": indices, f"{name}.values": floats(k, dtype=value_dtype)}


def safetensors_seeds():
    seeds = {
        "dense-f32": body(model(), step=1),
        "dense-f16": body(model(np.float16), step=2, loss=0.75),
        "dense-bf16": bf16_body({"w": floats(2, 2), "b": floats(2)}, step=3),
        "mtadam-terms": body(
            {f"{k}/{p}": v for k in range(2) for p, v in model().items()}, term_weights="[1, 0.5]"
        ),
        "sparse-i64-f32": body({**sparse("layer.weight", 12, 3), "layer.bias": floats(4)}, step=1),
        "sparse-i32-f16": body(sparse("emb", 100, 5, np.int32, np.float16)),
        "metadata-all": body(model(), step=7, loss="[0.5, 0.25]", term_weights="[1, 2]", grad_scale=65536.0),
        "metadata-python-specials": body({"w": floats(3)}, loss="nan", grad_scale="inf"),
        "empty": body({}),
        "metadata-only": body({}, note="hello"),
        "scalar": body({"s": np.array(2.5, dtype=np.float32)}),
        "zero-size": body({"z": np.zeros((0, 3), np.float32), "w": floats(2)}),
        "checkpoint-like": body(
            {
                "param/w": floats(2, 2),
                "state/w/exp_avg": floats(2, 2),
                "step": np.array([3], np.int64),
                "global/d": np.array([1.5], np.float64),
            },
            format="optimizerd-checkpoint",
        ),
        "unicode-names": body({"é/ü.weight": floats(2), "layer.0.attn.q_proj.weight": floats(1, 2)}),
    }
    seeds["sparse-bf16-values"] = bf16_sparse()
    for case in ("adam", "mtadam", "adafactor"):
        seeds[f"conformance-{case}"] = conformance_cut(case)
    return seeds


def bf16_body(tensors, **metadata):
    """A BF16 safetensors buffer written by hand (numpy has no bfloat16 dtype)."""
    header, data, offset = {}, b"", 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, value in tensors.items():
        raw = (value.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        header[name] = {
            "dtype": "BF16",
            "shape": list(value.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        data, offset = data + raw, offset + len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data


def bf16_sparse():
    indices = np.array([0, 5], np.int64).tobytes()
    values = (np.array([1.5, -2], np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
    header = {
        "w.indices": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]},
        "w.values": {"dtype": "BF16", "shape": [2], "data_offsets": [16, 20]},
    }
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + indices + values


def conformance_case(case):
    path = CONFORMANCE / f"{case}.safetensors"
    with open(path, "rb") as f:
        raw = f.read()
    length = int.from_bytes(raw[:8], "little")
    metadata = json.loads(raw[8 : 8 + length])["__metadata__"]
    return load_file(str(path)), metadata


def conformance_cut(case, steps=1):
    """The first steps of a conformance case (the whole file is 16-33 KB, too big for a seed)."""
    tensors, metadata = conformance_case(case)
    keep = ("init/",) + tuple(f"{kind}/{t}/" for kind in ("grad", "expect") for t in range(1, steps + 1))
    return save({k: v for k, v in tensors.items() if k.startswith(keep)}, metadata=metadata)


def conformance_request(case, steps=2):
    """A conformance case as the daemon receives it: its configuration, init/*, then grad/t/* steps."""
    tensors, metadata = conformance_case(case)
    hyperparameters = json.loads(metadata["hyperparameters"])
    losses = json.loads(metadata.get("losses", "[]"))
    if metadata["optimizer"] == "mtadam":
        hyperparameters["terms"] = int(metadata["terms"])
    config = {"optimizer": metadata["optimizer"], "hyperparameters": hyperparameters}
    parameters = save({k[len("init/") :]: v for k, v in tensors.items() if k.startswith("init/")})
    bodies = []
    for t in range(1, steps + 1):
        prefix = f"grad/{t}/"
        step_metadata = {"step": t}
        if losses:
            step_metadata["loss"] = json.dumps(losses[t - 1])
        bodies.append(
            body({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}, **step_metadata)
        )
    return request(config, parameters, *bodies)


def request_seeds():
    params = body(model())
    grads = body(model(), step=1)
    seeds = {
        "adam": request(
            {"optimizer": "adam", "hyperparameters": {"lr": 0.001}}, params, grads, body(model(), step=2)
        ),
        "adamw-groups": request(
            {
                "optimizer": "adamw",
                "hyperparameters": {"lr": 0.01, "betas": [0.9, 0.99]},
                "groups": [{"parameters": ["*.bias"], "hyperparameters": {"weight_decay": 0}}],
            },
            params,
            grads,
        ),
        "sgd-nesterov": request(
            {"optimizer": "sgd", "hyperparameters": {"lr": 0.1, "momentum": 0.9, "nesterov": True}},
            params,
            grads,
        ),
        "adafactor": request(
            {"optimizer": "adafactor"},
            body({"w": floats(3, 4, 2), "b": floats(2)}),
            body({"w": floats(3, 4, 2), "b": floats(2)}),
        ),
        "momo-loss": request({"optimizer": "momo"}, params, body(model(), step=1, loss=0.5)),
        "momo-adam": request(
            {"optimizer": "momo_adam", "hyperparameters": {"use_fstar": True}},
            params,
            body(model(), loss=1.25),
        ),
        "mtadam-two-terms": request(
            {"optimizer": "mtadam", "hyperparameters": {"terms": 2, "term_weights": [1, 0.5]}},
            params,
            body({f"{k}/{p}": v for k in range(2) for p, v in model().items()}, loss="[0.5, 0.25]"),
        ),
        "acclip": request({"optimizer": "acclip", "hyperparameters": {"alpha": 1.5}}, params, grads),
        "sparse-step": request(
            {"optimizer": "adam"}, params, body({**sparse("layer.weight", 12, 3), "layer.bias": floats(4)})
        ),
        "sparse-i32-f16": request(
            {"optimizer": "sgd"}, params, body(sparse("layer.weight", 12, 4, np.int32, np.float16))
        ),
        "sparse-indices-alone": request(
            {"optimizer": "adam"}, params, body({"layer.weight.indices": np.array([1], np.int64)})
        ),
        "f16-step": request({"optimizer": "adam"}, params, body(model(np.float16), grad_scale=1024)),
        "bf16-step": request({"optimizer": "adamw"}, params, bf16_body(model(), step=1)),
        "nonfinite-skip-clip": request(
            {"optimizer": "adam", "hyperparameters": {"nonfinite": "skip", "clip_grad_norm": 1.0}},
            params,
            body({"layer.weight": np.full((4, 3), np.inf, np.float32), "layer.bias": floats(4)}),
            grads,
        ),
        "scalar-and-empty": request(
            {"optimizer": "adam"},
            body({"s": np.array(1, np.float32), "e": np.zeros((0, 2), np.float32)}),
            body({"s": np.array(0.5, np.float32), "e": np.zeros((0, 2), np.float32)}),
        ),
        "adafactor-empty-matrix": request(
            {"optimizer": "adafactor"},
            body({"e": np.zeros((0, 3), np.float32), "w": floats(2, 2)}),
            body({"e": np.zeros((0, 3), np.float32), "w": floats(2, 2)}),
        ),
    }
    # An empty step section sends the upload again as gradients (RequestFuzz).
    seeds["adafactor-repeat-upload"] = request(
        {"optimizer": "adafactor"}, body({"w": floats(2, 3), "e": np.zeros((0, 3), np.float32)}), b"", b""
    )
    seeds["sgd-repeat-upload"] = request(
        {"optimizer": "sgd", "hyperparameters": {"momentum": 0.5}}, params, b"", b""
    )
    for case in ("adam", "adafactor", "momo", "mtadam", "acclip", "sgd_nesterov"):
        seeds[f"conformance-{case}"] = conformance_request(case)
    return seeds


def json_seeds(request_seeds):
    seeds = {f"config-{name}": data.split(SEPARATOR)[0] for name, data in request_seeds.items()}
    seeds.update(
        {
            "header": b'{"__metadata__":{"step":"3"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}',
            "escapes": b'{"a\\u00e9\\ud83d\\ude00":["\\n\\t\\"\\\\\\/", -0, 1.5e-300, 12345678901234567890, true, false, null]}',
            "nested": b'{"optimizer":"adam","hyperparameters":{"betas":[[0.9],[0.999]],"lr":{"x":1}}}',
            "unicode": '{"optimizer":"adam","name":"\u00e9t\u00e9 \u6f22\u5b57"}'.encode(),
        }
    )
    return seeds


def main():
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "Tests" / "FuzzCorpus" / "seeds"
    requests = request_seeds()
    for target, seeds in (
        ("safetensors", safetensors_seeds()),
        ("request", requests),
        ("json", json_seeds(requests)),
    ):
        folder = out / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (folder / name).write_bytes(data)
        print(f"{folder}: {len(seeds)} seeds, {sum(len(d) for d in seeds.values())} bytes")


if __name__ == "__main__":
    main()

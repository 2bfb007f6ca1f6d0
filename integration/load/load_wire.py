"""Bodies for the load run: safetensors written and read by hand (so a step's body can be rebuilt
cheaply with a new `step` in its metadata), bf16, gzip, the models and their gradients.

Every float32 gradient starts with MARKER: sixteen bytes that spell an ASCII string and are also
harmless gradient values (four floats of about 0.05), so the daemon's log can be searched for
gradient bytes without the marker upsetting any optimizer.
"""

from __future__ import annotations

import gzip
import json
import struct
from dataclasses import dataclass

import numpy as np

#: Little-endian float32 values 0.0499…0.0519: '=' (0x3D) is each value's high byte.
MARKER = b"ZOL=MRK=GRD=ADM="
MARKER_FLOATS = np.frombuffer(MARKER, dtype="<f4")

#: name -> shape. "small" is a 1k-parameter MLP, "medium" ~200k parameters (~0.8 MB a step),
#: "large" ~2.1M parameters (~8.4 MB a step, for release-build runs).
MODELS: dict[str, dict[str, tuple[int, ...]]] = {
    "small": {"fc1.weight": (32, 16), "fc1.bias": (32,), "fc2.weight": (8, 32), "fc2.bias": (8,)},
    "medium": {
        "embed.weight": (512, 128),
        "block.0.weight": (256, 256),
        "block.0.bias": (256,),
        "block.1.weight": (256, 256),
        "norm.weight": (256,),
        "head.weight": (64, 256),
    },
    "large": {
        "embed.weight": (4096, 256),
        "block.0.weight": (1024, 1024),
        "block.0.bias": (1024,),
        "head.weight": (256, 1024),
    },
}


@dataclass(frozen=True)
class Tensor:
    """One tensor as it goes on the wire: dtype name, shape and raw little-endian bytes."""

    dtype: str
    shape: tuple[int, ...]
    data: bytes


def f32(array: np.ndarray) -> Tensor:
    return Tensor("F32", tuple(array.shape), np.ascontiguousarray(array, dtype="<f4").tobytes())


def bf16(array: np.ndarray) -> Tensor:
    """float32 -> bfloat16 with round-to-nearest-even (what torch does)."""
    bits = np.ascontiguousarray(array, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
    return Tensor("BF16", tuple(array.shape), rounded.tobytes())


def i64(values: np.ndarray) -> Tensor:
    return Tensor("I64", tuple(values.shape), np.ascontiguousarray(values, dtype="<i8").tobytes())


def encode(tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors buffer: u64 header length, JSON header padded to 8 bytes, tensor bytes."""
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, tensor in tensors.items():
        header[name] = {
            "dtype": tensor.dtype,
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(tensor.data)],
        }
        offset += len(tensor.data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return b"".join([struct.pack("<Q", len(text)), text, *(tensor.data for tensor in tensors.values())])


def decode(body: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors of a safetensors buffer as float32 arrays (F32, F16 and BF16), and its metadata."""
    (length,) = struct.unpack_from("<Q", body)
    header = json.loads(body[8 : 8 + length])
    metadata = header.pop("__metadata__", {}) or {}
    base = 8 + length
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        raw = body[base + begin : base + end]
        if entry["dtype"] == "F32":
            values = np.frombuffer(raw, dtype="<f4")
        elif entry["dtype"] == "F16":
            values = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif entry["dtype"] == "BF16":
            values = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"unexpected dtype {entry['dtype']} for {name}")
        tensors[name] = values.reshape(entry["shape"])
    return tensors, metadata


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=1, mtime=0)


def initial_parameters(model: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        name: (rng.standard_normal(shape) * 0.1).astype(np.float32) for name, shape in MODELS[model].items()
    }


def gradient_sets(model: str, seed: int, count: int = 4) -> list[dict[str, np.ndarray]]:
    """`count` different gradients for the model (a client cycles through them), each starting with MARKER."""
    rng = np.random.default_rng(seed + 7919)
    sets = []
    for _ in range(count):
        grads = {
            name: (rng.standard_normal(shape) * 0.1).astype(np.float32)
            for name, shape in MODELS[model].items()
        }
        first = next(iter(grads.values())).reshape(-1)
        first[: MARKER_FLOATS.size] = MARKER_FLOATS
        sets.append(grads)
    return sets

"""Wire dtypes: the API's names, and float32 ↔ bfloat16 conversion done with NumPy bit operations.

NumPy has no bfloat16, so BF16 tensors are carried as their raw 16-bit patterns (``uint16``); the
conversion rounds to nearest, ties to even, as torch and the daemon do.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import numpy as np

__all__ = [
    "WIRE_DTYPES",
    "NUMPY_DTYPES",
    "wire_dtype_tag",
    "contiguous",
    "float32_to_bfloat16_bits",
    "bfloat16_bits_to_float32",
    "round_to_wire_dtype",
]

#: The API's dtype names (query ``dtype=`` values) → safetensors dtype tags.
WIRE_DTYPES = {"f32": "F32", "f16": "F16", "bf16": "BF16"}

#: safetensors dtype tag → NumPy dtype, for everything that may appear in a payload.
NUMPY_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U64": np.uint64,
    "U32": np.uint32,
    "U16": np.uint16,
    "U8": np.uint8,
    "BOOL": np.bool_,
}

# Elements per block of the bfloat16 conversion (256 KiB of uint32: stays in L2).
_BLOCK = 1 << 16
# Index of a uint32's high 16 bits when it is viewed as two uint16s.
_HIGH_HALF = 1 if sys.byteorder == "little" else 0


def wire_dtype_tag(dtype: str) -> str:
    """``"f32"|"f16"|"bf16"`` (any case) → ``"F32"|"F16"|"BF16"``; raises ``ValueError`` otherwise."""
    tag = WIRE_DTYPES.get(str(dtype).lower())
    if tag is None:
        raise ValueError(f"dtype must be one of f32, f16, bf16; got {dtype!r}")
    return tag


def contiguous(values: Any, dtype: Any) -> np.ndarray:
    """``values`` as a C-contiguous array of ``dtype``, keeping its shape (0-d included)."""
    array = np.asarray(values, dtype=dtype)
    return array if array.flags.c_contiguous else np.array(array, order="C")


# MARK: bfloat16


def float32_to_bfloat16_bits(values: Any, out: Optional[np.ndarray] = None) -> np.ndarray:
    """The bfloat16 bit patterns (``uint16``) of ``values``, rounded to nearest, ties to even.

    NaN stays NaN (quiet, sign kept), ±inf stays ±inf, and finite values too large for bfloat16
    round to ±inf, as an IEEE conversion does.

    Args:
        values: float32 values (anything ``np.asarray`` takes).
        out: a ``uint16`` array of as many elements to write the patterns into (reused buffers
            avoid a fresh allocation per call); a new array of the values' shape when ``None``.

    The work is done in blocks that stay in the cache, a few NumPy bit operations per block, so
    the conversion costs about one pass over memory.
    """
    x = contiguous(values, np.float32)
    if out is None:
        out = np.empty(x.shape, np.uint16)
    elif out.dtype != np.uint16 or out.size != x.size or not out.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous uint16 array of {x.size} elements")
    flat = x.reshape(-1)
    bits = flat.view(np.uint32)
    target = out.reshape(-1)
    block = np.empty(min(_BLOCK, flat.size), np.uint32)
    high_halves = block.view(np.uint16)[_HIGH_HALF::2]
    for start in range(0, flat.size, _BLOCK):
        chunk = bits[start : start + _BLOCK]
        rounded = block[: chunk.size]
        # Adding 0x7FFF plus the lowest kept bit rounds to nearest, ties to even; the high half is
        # the result. The uint32 sum wraps only for patterns ≥ 0xFFFF8001, which are NaNs, fixed below.
        np.right_shift(chunk, 16, out=rounded)
        np.bitwise_and(rounded, 1, out=rounded)
        rounded += np.uint32(0x7FFF)
        rounded += chunk
        np.copyto(target[start : start + chunk.size], high_halves[: chunk.size])
        nan = np.isnan(flat[start : start + chunk.size])
        if nan.any():
            target[start : start + chunk.size][nan] = (
                (chunk[nan] >> np.uint32(16)) | np.uint32(0x0040)
            ).astype(np.uint16)
    return out


def bfloat16_bits_to_float32(bits: Any) -> np.ndarray:
    """float32 values of bfloat16 bit patterns (exact: every bfloat16 is a float32)."""
    b = contiguous(bits, np.uint16)
    return (b.astype(np.uint32) << np.uint32(16)).view(np.float32)


def round_to_wire_dtype(values: Any, dtype: str) -> np.ndarray:
    """``values`` as float32 after a round trip through the wire dtype (what the daemon receives)."""
    tag = wire_dtype_tag(dtype)
    x = np.asarray(values, dtype=np.float32)
    if tag == "F32":
        return x.copy()
    if tag == "F16":
        return x.astype(np.float16).astype(np.float32)
    return bfloat16_bits_to_float32(float32_to_bfloat16_bits(x))

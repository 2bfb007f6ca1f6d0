"""The wire format: safetensors buffers (DESIGN §2), with F32, F16 and BF16 floats.

:func:`encode` and :func:`decode` work on whole buffers in memory. The client's requests and
answers take faster paths that never hold a whole buffer: :mod:`optimizerd.body` sends a request
from its parts, :mod:`optimizerd.answer` reads an answer straight into the caller's arrays. NumPy
has no bfloat16, so BF16 tensors are carried as their raw 16-bit patterns (``uint16``) and
converted by :mod:`optimizerd.dtypes` (round to nearest, ties to even, as torch and the daemon do).

Decoded float tensors are returned as writable, C-contiguous ``float32`` arrays by default.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any, Optional, Union

import numpy as np

from .answer import read_answer
from .body import build_body
from .dtypes import (
    NUMPY_DTYPES,
    WIRE_DTYPES,
    bfloat16_bits_to_float32,
    float32_to_bfloat16_bits,
    round_to_wire_dtype,
    wire_dtype_tag,
)

__all__ = [
    "WIRE_DTYPES",
    "wire_dtype_tag",
    "float32_to_bfloat16_bits",
    "bfloat16_bits_to_float32",
    "round_to_wire_dtype",
    "encode",
    "decode",
    "read_header",
    "NUMPY_DTYPES",
]

Bytes = Union[bytes, bytearray, memoryview]


# MARK: encoding


def encode(
    tensors: Mapping[str, Any],
    metadata: Optional[Mapping[str, Any]] = None,
    dtype: str = "f32",
    keep_order: bool = False,
) -> bytes:
    """A safetensors buffer holding ``tensors`` with float values in ``dtype``.

    Args:
        tensors: name → array (anything ``np.asarray`` takes). Float arrays are converted to the
            wire dtype; integer arrays (sparse indices) are sent as I32 or I64.
        metadata: ``__metadata__`` entries; values are converted with ``str``.
        dtype: ``"f32"``, ``"f16"`` or ``"bf16"``.
        keep_order: lay the tensors out in the order given; otherwise by name, as
            ``safetensors`` does (widest dtype first either way). The daemon lists a session's
            parameters in upload order.
    """
    if not keep_order:
        tensors = {name: tensors[name] for name in sorted(tensors)}
    return build_body(tensors, metadata, dtype).tobytes()


# MARK: decoding


def read_header(data: Bytes) -> tuple[dict[str, Any], dict[str, str], int]:
    """(tensor entries, ``__metadata__``, offset of the data section) of a safetensors buffer."""
    view = memoryview(data)
    if len(view) < 8:
        raise ValueError(f"not a safetensors buffer: {len(view)} bytes")
    (length,) = struct.unpack("<Q", bytes(view[:8]))
    if 8 + length > len(view):
        raise ValueError(f"not a safetensors buffer: header length {length} past the end ({len(view)} bytes)")
    header = json.loads(bytes(view[8 : 8 + length]).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("not a safetensors buffer: the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    return header, {str(k): str(v) for k, v in metadata.items()}, 8 + length


def decode(data: Bytes, float32: bool = True) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and ``__metadata__`` of a safetensors buffer.

    Args:
        data: the buffer.
        float32: convert F16 and BF16 tensors to float32 (default). With ``False``, F16 stays
            ``float16`` and BF16 is returned as its ``uint16`` bit patterns.

    Returns:
        (name → writable array, metadata strings), tensors in the order of their data.
    """
    read_header(data)  # the clear errors for a short buffer or a header past the end
    view = memoryview(data).cast("B")
    position = 0

    def read(buffer: memoryview) -> None:
        nonlocal position
        size = buffer.nbytes
        if position + size > len(view):
            raise ValueError(f"not a safetensors buffer: {len(view)} bytes, a tensor ends past them")
        buffer[:] = view[position : position + size]
        position += size

    return read_answer(read, len(view), widen=float32)

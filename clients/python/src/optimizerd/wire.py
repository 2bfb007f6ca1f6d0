"""The wire format: safetensors buffers (DESIGN §2), with F32, F16 and BF16 floats.

Encoding and decoding go through ``safetensors.numpy`` where it can represent the dtypes. NumPy
has no bfloat16, so BF16 tensors are carried as their raw 16-bit patterns (``uint16``): this module
converts float32 ↔ bfloat16 bits itself (round to nearest, ties to even, as torch and the daemon
do) and writes or reads buffers that contain BF16 tensors by hand, in the same layout.

Decoded float tensors are returned as writable, C-contiguous ``float32`` arrays by default.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any, Optional, Union

import numpy as np
import safetensors.numpy as safetensors_numpy

__all__ = [
    "WIRE_DTYPES",
    "float32_to_bfloat16_bits",
    "bfloat16_bits_to_float32",
    "round_to_wire_dtype",
    "encode",
    "decode",
    "read_header",
]

#: The API's dtype names (query ``dtype=`` values) → safetensors dtype tags.
WIRE_DTYPES = {"f32": "F32", "f16": "F16", "bf16": "BF16"}

# safetensors dtype tag → NumPy dtype, for everything that may appear in a payload.
_NUMPY_DTYPES = {
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

Bytes = Union[bytes, bytearray, memoryview]


def wire_dtype_tag(dtype: str) -> str:
    """``"f32"|"f16"|"bf16"`` (any case) → ``"F32"|"F16"|"BF16"``; raises ``ValueError`` otherwise."""
    tag = WIRE_DTYPES.get(str(dtype).lower())
    if tag is None:
        raise ValueError(f"dtype must be one of f32, f16, bf16; got {dtype!r}")
    return tag


def _contiguous(values: Any, dtype: Any) -> np.ndarray:
    """``values`` as a C-contiguous array of ``dtype``, keeping its shape (0-d included)."""
    array = np.asarray(values, dtype=dtype)
    return array if array.flags.c_contiguous else np.array(array, order="C")


# MARK: bfloat16


def float32_to_bfloat16_bits(values: Any) -> np.ndarray:
    """The bfloat16 bit patterns (``uint16``) of ``values``, rounded to nearest, ties to even.

    NaN stays NaN (quiet, sign kept), ±inf stays ±inf, and finite values too large for bfloat16
    round to ±inf, as an IEEE conversion does.
    """
    x = _contiguous(values, np.float32)
    bits = x.view(np.uint32)
    # Adding 0x7FFF plus the lowest kept bit and truncating rounds to nearest, ties to even. The
    # uint32 sum wraps only for patterns ≥ 0xFFFF8001, which are NaNs, fixed below.
    rounded = (
        (bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))) >> np.uint32(16)
    ).astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        rounded[nan] = ((bits[nan] >> np.uint32(16)) | np.uint32(0x0040)).astype(np.uint16)
    return rounded


def bfloat16_bits_to_float32(bits: Any) -> np.ndarray:
    """float32 values of bfloat16 bit patterns (exact: every bfloat16 is a float32)."""
    b = _contiguous(bits, np.uint16)
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


# MARK: encoding


def _wire_array(name: str, value: Any, float_tag: str) -> tuple[str, np.ndarray]:
    """(dtype tag, contiguous little-endian array) for one tensor of a request."""
    array = np.asarray(value)
    if array.dtype.kind in "iu":  # sparse indices (and any other integer tensor): I32 or I64
        if array.dtype == np.int32:
            return "I32", _contiguous(array, "<i4")
        return "I64", _contiguous(array, "<i8")
    if array.dtype.kind not in "fb":
        raise TypeError(f"tensor {name!r}: expected a float array, got dtype {array.dtype}")
    if float_tag == "F32":
        return "F32", _contiguous(array, "<f4")
    if float_tag == "F16":
        return "F16", _contiguous(array, "<f2")
    return "BF16", _contiguous(float32_to_bfloat16_bits(array), "<u2")


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
        keep_order: lay the tensors out in the order given (``safetensors`` sorts them by dtype
            and name). The daemon lists a session's parameters in upload order.
    """
    float_tag = wire_dtype_tag(dtype)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    prepared = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"invalid tensor name {name!r}")
        prepared[name] = _wire_array(name, value, float_tag)
    if float_tag != "BF16" and not keep_order:
        arrays = {name: array for name, (_, array) in prepared.items()}
        return safetensors_numpy.save(arrays, metadata=meta or None)
    return _encode_by_hand(prepared, meta)


def _encode_by_hand(prepared: Mapping[str, tuple[str, np.ndarray]], metadata: Mapping[str, str]) -> bytes:
    """A safetensors buffer in the reference layout: header padded with spaces to 8 bytes."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    chunks = []
    # Widest dtypes first (as safetensors does), so every tensor's data stays naturally aligned;
    # otherwise in the order given (a stable sort).
    ordered = sorted(prepared.items(), key=lambda item: -item[1][1].dtype.itemsize)
    for name, (tag, array) in ordered:
        size = array.nbytes
        header[name] = {"dtype": tag, "shape": list(array.shape), "data_offsets": [offset, offset + size]}
        chunks.append(array)
        offset += size
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    out = bytearray(8 + len(text) + offset)
    out[:8] = struct.pack("<Q", len(text))
    out[8 : 8 + len(text)] = text
    position = 8 + len(text)
    view = memoryview(out)
    for array in chunks:
        size = array.nbytes
        view[position : position + size] = array.reshape(-1).view(np.uint8).data
        position += size
    return bytes(out)


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
    entries, metadata, start = read_header(data)
    if all(entry.get("dtype") in _NUMPY_DTYPES for entry in entries.values()):
        loaded = safetensors_numpy.load(bytes(data))
        tensors = {name: loaded[name] for name in entries}
    else:
        tensors = _decode_by_hand(data, entries, start)
    result = {}
    for name, array in tensors.items():
        tag = entries[name]["dtype"]
        if tag == "BF16" and float32:
            array = bfloat16_bits_to_float32(array).reshape(array.shape)
        elif array.dtype.kind == "f" and float32 and array.dtype != np.float32:
            array = array.astype(np.float32)
        if not array.flags.writeable or not array.flags.c_contiguous:
            array = np.array(array, order="C")
        result[name] = array
    order = sorted(result, key=lambda n: entries[n]["data_offsets"][0])
    return {name: result[name] for name in order}, metadata


def _decode_by_hand(data: Bytes, entries: Mapping[str, Any], start: int) -> dict[str, np.ndarray]:
    """Reads tensors of any dtype this client knows, BF16 included (as uint16 bit patterns)."""
    buffer = bytes(data)
    result = {}
    for name, entry in entries.items():
        tag = entry["dtype"]
        np_dtype: np.dtype[Any]
        if tag == "BF16":
            np_dtype = np.dtype("<u2")
        elif tag in _NUMPY_DTYPES:
            np_dtype = np.dtype(_NUMPY_DTYPES[tag]).newbyteorder("<")
        else:
            raise ValueError(f"tensor {name!r}: unsupported dtype {tag}")
        begin, end = entry["data_offsets"]
        shape = tuple(int(n) for n in entry["shape"])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if end - begin != count * np_dtype.itemsize or start + end > len(buffer):
            raise ValueError(
                f"tensor {name!r}: data_offsets [{begin}, {end}] do not match shape {list(shape)} {tag}"
            )
        array = np.frombuffer(buffer, dtype=np_dtype, count=count, offset=start + begin).reshape(shape)
        result[name] = array.astype(np_dtype.newbyteorder("="))
    return result

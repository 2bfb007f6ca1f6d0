"""Reading a safetensors answer from a stream, each tensor straight into its destination.

The daemon's answer to a step (or a parameter download) is read piece by piece from the socket:
the 8-byte header length, the JSON header, then every tensor's bytes directly into the array the
caller gave for it (``out=``: a parameter's own memory, for instance). Float32 answers land in
float32 destinations without any intermediate buffer; F16 and BF16 answers are read into one
reused scratch buffer and widened into the destination in one pass. Tensors without a destination
become new arrays, as :func:`optimizerd.wire.decode` returns them.
"""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Mapping
from typing import Any, Callable, Optional

import numpy as np

from .dtypes import NUMPY_DTYPES, bfloat16_bits_to_float32

__all__ = ["Scratch", "read_answer", "MAX_HEADER_BYTES"]

#: Largest JSON header accepted in an answer (the daemon's own limit for requests is far smaller).
MAX_HEADER_BYTES = 100 * 1024 * 1024

#: Fills the whole buffer from the stream, or raises (``EOFError`` when the stream ends first).
ReadExactly = Callable[[memoryview], None]

_LITTLE_ENDIAN = sys.byteorder == "little"


class Scratch:
    """A reusable byte buffer for the 16-bit tensors of answers, grown to the largest one seen."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def take(self, nbytes: int) -> memoryview:
        """A writable view of ``nbytes`` bytes (valid until the next call)."""
        if len(self._buffer) < nbytes:
            self._buffer = bytearray(nbytes)
        return memoryview(self._buffer)[:nbytes]


def read_answer(
    read: ReadExactly,
    length: int,
    out: Optional[Mapping[str, np.ndarray]] = None,
    scratch: Optional[Scratch] = None,
    widen: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and ``__metadata__`` of a safetensors answer of ``length`` bytes.

    Args:
        read: fills a buffer from the stream.
        length: the answer's size (``Content-Length``); every byte of it is consumed.
        out: name → destination array. A destination must be C-contiguous, writable, float32 (or
            of the answer's own dtype) and hold as many elements as the tensor (any shape).
        scratch: the buffer for 16-bit answers (a fresh one when ``None``).
        widen: return float tensors without a destination as float32; with ``False``, F16 stays
            ``float16`` and BF16 is returned as its ``uint16`` bit patterns.

    Returns:
        (name → array, metadata strings): the destination itself where one was given, tensors in
        the order of their data. Float tensors without a destination are float32.

    Raises:
        ValueError: the answer is not a valid safetensors buffer, or a destination does not fit.
    """
    out = out or {}
    scratch = scratch or Scratch()
    prefix = bytearray(8)
    _read_checked(read, prefix, length)
    (header_length,) = struct.unpack("<Q", prefix)
    if header_length > min(MAX_HEADER_BYTES, length - 8):
        raise ValueError(f"not a safetensors answer: header length {header_length} of {length} bytes")
    text = bytearray(header_length)
    read(memoryview(text))
    header = json.loads(bytes(text).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("not a safetensors answer: the header is not a JSON object")
    metadata = {str(k): str(v) for k, v in (header.pop("__metadata__", None) or {}).items()}
    data_length = length - 8 - header_length
    position = 0
    result: dict[str, np.ndarray] = {}
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
        begin, end = (int(n) for n in entry["data_offsets"])
        if begin < position or end > data_length or end < begin:
            raise ValueError(f"tensor {name!r}: data_offsets [{begin}, {end}] overlap or pass the end")
        _skip(read, begin - position, scratch)
        result[name] = _read_tensor(read, name, entry, end - begin, out.get(name), scratch, widen)
        position = end
    _skip(read, data_length - position, scratch)
    return result, metadata


def _read_tensor(
    read: ReadExactly,
    name: str,
    entry: Mapping[str, Any],
    nbytes: int,
    destination: Optional[np.ndarray],
    scratch: Scratch,
    widen: bool,
) -> np.ndarray:
    tag = entry["dtype"]
    if tag != "BF16" and tag not in NUMPY_DTYPES:
        raise ValueError(f"tensor {name!r}: unsupported dtype {tag}")
    wire_dtype = np.dtype("<u2") if tag == "BF16" else np.dtype(NUMPY_DTYPES[tag]).newbyteorder("<")
    shape = tuple(int(n) for n in entry["shape"])
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if nbytes != count * wire_dtype.itemsize:
        raise ValueError(f"tensor {name!r}: data_offsets do not match shape {list(shape)} {tag}")
    if destination is not None:
        _check_destination(name, destination, count, tag, wire_dtype)
        if destination.dtype == wire_dtype and tag != "BF16" and _LITTLE_ENDIAN:
            read(memoryview(destination.reshape(-1)).cast("B"))
            return destination
        raw = np.frombuffer(scratch.take(nbytes), dtype=wire_dtype, count=count)
        read(memoryview(raw).cast("B"))
        target = destination.reshape(-1)
        if tag == "BF16":
            np.left_shift(raw, 16, out=target.view(np.uint32), dtype=np.uint32)
        else:
            np.copyto(target, raw, casting="unsafe")
        return destination
    array = np.empty(count, wire_dtype)
    read(memoryview(array).cast("B"))
    array = array.astype(wire_dtype.newbyteorder("="), copy=False).reshape(shape)
    if tag == "BF16" and widen:
        return bfloat16_bits_to_float32(array).reshape(shape)
    if widen and array.dtype.kind == "f" and array.dtype != np.float32:
        return array.astype(np.float32)
    return array


def _check_destination(
    name: str, destination: np.ndarray, count: int, tag: str, wire_dtype: np.dtype
) -> None:
    widened = tag in ("F16", "BF16") and destination.dtype == np.float32
    if destination.size != count or not (widened or destination.dtype == wire_dtype):
        raise ValueError(
            f"tensor {name!r}: the answer has {count} {tag} values; out[{name!r}] has "
            f"{destination.size} {destination.dtype}"
        )
    if not (destination.flags.c_contiguous and destination.flags.writeable):
        raise ValueError(f"out[{name!r}] must be C-contiguous and writable")


def _read_checked(read: ReadExactly, buffer: bytearray, length: int) -> None:
    if length < len(buffer):
        raise ValueError(f"not a safetensors answer: {length} bytes")
    read(memoryview(buffer))


def _skip(read: ReadExactly, nbytes: int, scratch: Scratch) -> None:
    """Reads and drops ``nbytes`` (gaps between tensors, padding after the last one)."""
    while nbytes > 0:
        piece = min(nbytes, 1 << 20)
        read(scratch.take(piece))
        nbytes -= piece

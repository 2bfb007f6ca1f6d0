"""Request bodies as parts: a safetensors buffer sent without ever being concatenated.

A :class:`Body` is the 8-byte header length and the JSON header, followed by each tensor's bytes
as a ``memoryview`` of the caller's array (float32 tensors are not copied at all) or of a reused
conversion buffer (float16, bfloat16). The transport writes the parts one after the other on the
socket with one ``Content-Length``, so a 400 MB step never exists as one 400 MB ``bytes``.

Large 16-bit conversions run on a worker thread in the order the parts are sent, so the socket
writes of one tensor overlap the conversion of the next (NumPy and ``sendall`` both release the
GIL): a bfloat16 step costs about the longer of the two instead of their sum.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Optional, Union

import numpy as np

from .dtypes import contiguous, float32_to_bfloat16_bits, wire_dtype_tag

__all__ = ["Body", "Converting", "TensorSpec", "build_body", "header_bytes"]

#: (name, safetensors dtype tag, shape) of one tensor in a header.
TensorSpec = tuple[str, str, Sequence[int]]

_ITEM_SIZES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2}
_ITEM_SIZES.update({"I16": 2, "U16": 2, "I8": 1, "U8": 1, "BOOL": 1})


#: Conversions of at least this many elements go to the worker thread; smaller ones are done at once.
_BACKGROUND_ELEMENTS = 1 << 20
_converter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="optimizerd-convert")


class Converting:
    """A tensor's wire bytes that the conversion thread is still writing: ``nbytes`` is known at
    once, ``view()`` waits for the conversion (and raises what it raised)."""

    def __init__(self, future: Future[np.ndarray], nbytes: int) -> None:
        self.future = future
        self.nbytes = nbytes

    def view(self) -> memoryview:
        return memoryview(self.future.result().reshape(-1)).cast("B")


class Body:
    """A safetensors buffer as a sequence of parts: the header, then each tensor's bytes.

    ``len(body)`` is the total size (the request's ``Content-Length``); iterating yields the parts
    in order. A body can be sent any number of times (retries send the same parts again); its
    parts are views of the arrays it was built from, which must not change until it is sent.
    """

    def __init__(self, head: bytes, parts: Sequence[Union[memoryview, Converting]]) -> None:
        self.head = head
        self.parts = list(parts)
        self.nbytes = len(head) + sum(part.nbytes for part in self.parts)

    def __len__(self) -> int:
        return self.nbytes

    def __iter__(self) -> Iterator[memoryview]:
        yield memoryview(self.head)
        for part in self.parts:
            yield part.view() if isinstance(part, Converting) else part

    def tobytes(self) -> bytes:
        """The whole buffer in one ``bytes`` (a copy; for callers that need one)."""
        return b"".join(self)


def header_bytes(specs: Sequence[TensorSpec], metadata: Optional[Mapping[str, str]] = None) -> bytes:
    """The 8-byte length and the JSON header of a safetensors buffer whose tensors follow one
    another in the order given, padded with spaces to a multiple of 8 bytes."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name, tag, shape in specs:
        count = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
        size = count * _ITEM_SIZES[tag]
        header[name] = {
            "dtype": tag,
            "shape": [int(n) for n in shape],
            "data_offsets": [offset, offset + size],
        }
        offset += size
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def build_body(
    tensors: Mapping[str, Any],
    metadata: Optional[Mapping[str, Any]] = None,
    dtype: str = "f32",
    buffers: Optional[MutableMapping[str, np.ndarray]] = None,
) -> Body:
    """A :class:`Body` holding ``tensors``, float values in ``dtype``, in the order given (widest
    dtype first, so that every tensor stays naturally aligned).

    Args:
        tensors: name → array. Float arrays are sent in the wire dtype; integer arrays (sparse
            indices) as I32 or I64.
        metadata: ``__metadata__`` entries; values are converted with ``str``.
        dtype: ``"f32"``, ``"f16"`` or ``"bf16"``.
        buffers: a cache of conversion buffers by name, reused from call to call when the shape
            and dtype match (so a 16-bit step does not allocate its body every time).
    """
    float_tag = wire_dtype_tag(dtype)
    prepared = []
    conversions = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"invalid tensor name {name!r}")
        tag, array, convert = _wire_array(name, value, float_tag, buffers)
        prepared.append((name, tag, array))
        if convert is not None:
            conversions[name] = convert
    prepared.sort(key=lambda item: -item[2].dtype.itemsize)  # stable: the given order otherwise
    head = header_bytes([(name, tag, array.shape) for name, tag, array in prepared], metadata)
    parts: list[Union[memoryview, Converting]] = []
    for name, _, array in prepared:
        if not array.size:
            continue
        convert = conversions.get(name)
        if convert is None:
            parts.append(memoryview(array.reshape(-1)).cast("B"))
        elif array.size < _BACKGROUND_ELEMENTS:
            parts.append(memoryview(convert().reshape(-1)).cast("B"))
        else:  # submitted in sending order, so the worker finishes them in that order
            parts.append(Converting(_converter.submit(convert), array.nbytes))
    return Body(head, parts)


def _wire_array(
    name: str, value: Any, float_tag: str, buffers: Optional[MutableMapping[str, np.ndarray]]
) -> tuple[str, np.ndarray, Optional[Callable[[], np.ndarray]]]:
    """(dtype tag, contiguous little-endian array, how to fill it) for one tensor of a request.
    The fill is ``None`` when the array already holds the bytes; else the array is the 16-bit
    conversion buffer, which the fill writes and returns."""
    array = np.asarray(value)
    if array.dtype.kind in "iu":  # sparse indices (and any other integer tensor): I32 or I64
        if array.dtype == np.int32:
            return "I32", contiguous(array, "<i4"), None
        return "I64", contiguous(array, "<i8"), None
    if array.dtype.kind not in "fb":
        raise TypeError(f"tensor {name!r}: expected a float array, got dtype {array.dtype}")
    if float_tag == "F32":
        return "F32", contiguous(array, "<f4"), None
    target = _buffer(buffers, name, array.shape, np.uint16 if float_tag == "BF16" else np.float16)
    if float_tag == "F16":

        def to_f16() -> np.ndarray:
            np.copyto(target, array, casting="unsafe")
            return target

        return "F16", target, to_f16
    return "BF16", target, lambda: float32_to_bfloat16_bits(array, out=target)


def _buffer(
    buffers: Optional[MutableMapping[str, np.ndarray]], name: str, shape: tuple[int, ...], dtype: Any
) -> np.ndarray:
    """A conversion buffer for ``name``: the cached one when it fits, else a new (cached) one."""
    cached = buffers.get(name) if buffers is not None else None
    if cached is not None and cached.shape == shape and cached.dtype == dtype:
        return cached
    fresh = np.empty(shape, dtype)
    if buffers is not None:
        buffers[name] = fresh
    return fresh

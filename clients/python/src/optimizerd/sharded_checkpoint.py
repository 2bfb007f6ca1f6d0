"""Checkpoints of sharded sessions: one daemon checkpoint per shard plus the placement, and their
resharding onto another number of daemons.

A daemon checkpoint (``GET /v1/sessions/{id}/checkpoint``) is a safetensors file: ``global/<slot>``
(session-wide state, the same on every shard), ``param/<P>`` and ``state/<P>/<slot>`` (the
per-tensor state), and ``__metadata__`` with the configuration, ``step``, ``parameters`` (order),
``slots`` and a ``checksum``. Resharding moves every tensor with its state to its new shard and
writes each new shard's file with that shard's parameters, in the global order, and a fresh
checksum (the daemon's: CRC-32C over the data CRC, the tensor index and the sorted metadata).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from .placement import Placement, Shard

__all__ = ["ShardedCheckpoint", "reshard"]

_PLACEMENT_FILE = "placement.json"
# Dropped from resharded files: they describe the source session, and restoring ignores them.
_SOURCE_ONLY = ("id", "name", "token_sha256", "created_at", "checksum")


@dataclass
class ShardedCheckpoint:
    """A sharded session's checkpoint: the placement (JSON) and one daemon checkpoint per shard."""

    placement: str
    shards: list[bytes]

    def as_dict(self) -> dict[str, Any]:
        """``{"placement": str, "shards": [bytes, ...]}``: plain values (e.g. for a
        ``torch.save`` that ``torch.load(weights_only=True)`` reads back)."""
        return {"placement": self.placement, "shards": list(self.shards)}

    def save(self, directory: Union[str, Path]) -> Path:
        """Writes ``placement.json`` and ``shard-<k>.safetensors`` into ``directory``."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        for index, content in enumerate(self.shards):
            (folder / f"shard-{index}.safetensors").write_bytes(content)
        (folder / _PLACEMENT_FILE).write_text(self.placement)
        return folder

    @classmethod
    def of_one_daemon(cls, content: bytes) -> ShardedCheckpoint:
        """A one-daemon checkpoint as a sharded checkpoint of one shard (every tensor on it), so
        that a sharded session restores it."""
        meta, tensors = _read(content)
        names = json.loads(meta["parameters"])
        placement = _one_shard(
            names,
            {name: 4 * math.prod(tensors[f"param/{name}"][1]) for name in names},
            optimizer=meta["optimizer"],
            hyperparameters=json.loads(meta["hyperparameters"]),
            groups=json.loads(meta["groups"]),
        )
        return cls(placement.to_json(), [bytes(content)])

    def single(self) -> bytes:
        """The checkpoint as one daemon's (every tensor of every shard in one file), for a session
        on one daemon."""
        source = Placement.from_json(self.placement)
        return reshard(self, _one_shard(source.parameters, source.sizes))[0]

    @classmethod
    def load(cls, directory: Union[str, Path]) -> ShardedCheckpoint:
        """Reads a folder written by :meth:`save`."""
        folder = Path(directory)
        placement = (folder / _PLACEMENT_FILE).read_text()
        count = len(Placement.from_json(placement).shards)
        return cls(placement, [(folder / f"shard-{k}.safetensors").read_bytes() for k in range(count)])


def reshard(checkpoint: ShardedCheckpoint, target: Placement) -> list[bytes]:
    """One daemon checkpoint per shard of ``target``, made from ``checkpoint`` (any shard count):
    each parameter's value and state go to the shard ``target`` places it on; session-wide state
    (``step``, global slots, configuration) is copied from the first source shard holding
    parameters."""
    files = [_read(content) for content in checkpoint.shards]
    # A shard that holds no parameters takes no part in the steps (its step stays behind).
    files = [file for file in files if json.loads(file[0]["parameters"])] or files[:1]
    steps = {meta["step"] for meta, _ in files}
    if len(steps) != 1:
        raise ValueError(f"the checkpoint's shards are at different steps: {sorted(steps)}")
    owner: dict[str, int] = {}
    slots: dict[str, list[str]] = {}
    for index, (meta, _) in enumerate(files):
        for name, names in json.loads(meta["slots"]).items():
            owner[name], slots[name] = index, names
    missing = [name for name in target.parameters if name not in owner]
    if missing:
        raise ValueError(f"the checkpoint has no parameters {missing[:5]}")
    first_meta, first_tensors = files[0]
    global_names = json.loads(first_meta["global_slots"])
    result = []
    for shard in range(len(target.shards)):
        names = target.on_shard(shard)
        scalars, tensors = [], []
        for slot in global_names:
            scalars.append((f"global/{slot}", first_tensors[f"global/{slot}"]))
        for name in names:
            source = files[owner[name]][1]
            for slot in slots[name]:
                key = f"state/{name}/{slot}"
                (scalars if source[key][0] == "F64" and not source[key][1] else tensors).append(
                    (key, source[key])
                )
        params = [(f"param/{name}", files[owner[name]][1][f"param/{name}"]) for name in names]
        meta = {k: v for k, v in first_meta.items() if k not in _SOURCE_ONLY}
        meta["parameters"] = json.dumps(names)
        meta["slots"] = json.dumps({name: slots[name] for name in names})
        result.append(_write(meta, scalars + params + tensors))
    return result


Entry = tuple[str, list[int], bytes]


def _one_shard(parameters: Sequence[str], sizes: Mapping[str, int], **configuration: Any) -> Placement:
    """A placement of every parameter on one shard (of no daemon: for resharding only)."""
    return Placement(
        shards=[Shard(url="", session="", token=None)],
        parameters=list(parameters),
        tensors={name: 0 for name in parameters},
        sizes=dict(sizes),
        **configuration,
    )


def _read(content: bytes) -> tuple[dict[str, str], dict[str, Entry]]:
    """A safetensors file's metadata and name → (dtype, shape, bytes)."""
    length = int.from_bytes(content[:8], "little")
    header = json.loads(content[8 : 8 + length])
    meta = dict(header.pop("__metadata__", {}))
    base = 8 + length
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        tensors[name] = (entry["dtype"], list(entry["shape"]), bytes(content[base + begin : base + end]))
    return meta, tensors


def _write(meta: dict[str, str], entries: Sequence[tuple[str, Entry]]) -> bytes:
    """A safetensors file of ``entries`` in order, with ``meta`` and its checksum."""
    header: dict[str, Any] = {}
    data = bytearray()
    for name, (dtype, shape, raw) in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    index = "".join(
        f"tensor:{name}\0{dtype}\0[{', '.join(map(str, shape))}]\n" for name, (dtype, shape, _) in entries
    )
    text = f"data:{crc32c(data)}\n" + index + "".join(f"meta:{k}\0{meta[k]}\n" for k in sorted(meta))
    header["__metadata__"] = {**meta, "checksum": f"{crc32c(text.encode()):08x}"}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    return len(encoded).to_bytes(8, "little") + encoded + bytes(data)


def _table() -> list[int]:
    table = []
    for byte in range(256):
        value = byte
        for _ in range(8):
            value = (value >> 1) ^ 0x82F63B78 if value & 1 else value >> 1
        table.append(value)
    return table


_TABLE = _table()


def crc32c(data: Union[bytes, bytearray, memoryview]) -> int:
    """CRC-32C (Castagnoli), as the daemon's checksums use it."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in bytes(data):
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFFFFFF

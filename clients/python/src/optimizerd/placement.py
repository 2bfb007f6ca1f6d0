"""Where a sharded session's tensors live: whole tensors on daemons, balanced by bytes.

A :class:`Placement` is the record a sharded session needs to be reattached from any process
(DESIGN §9): the daemons' URLs, each shard's session id and token, which shard holds each
tensor, the session's global parameter order (the order of the one-daemon session, which fixes
the reduction order of the global scalars) and the session's configuration. It is plain JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = ["Placement", "Shard", "assign"]

_FORMAT = "optimizerd-placement"
_VERSION = 1


@dataclass
class Shard:
    """One daemon's part of a sharded session."""

    url: str
    session: str
    token: Optional[str]


@dataclass
class Placement:
    """A sharded session's layout (see the module docstring).

    Attributes:
        shards: one :class:`Shard` per daemon, in shard order.
        parameters: every parameter name in the session's global order (upload order).
        tensors: parameter name → shard index.
        sizes: parameter name → bytes (float32), what the balance is computed from.
        optimizer: the optimizer's API name.
        hyperparameters: the session's creation hyperparameters and session options.
        groups: the session's parameter groups (as created or last patched).
    """

    shards: list[Shard]
    parameters: list[str] = field(default_factory=list)
    tensors: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    optimizer: str = "adam"
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)

    def loads(self) -> list[int]:
        """Bytes placed on each shard."""
        totals = [0] * len(self.shards)
        for name, shard in self.tensors.items():
            totals[shard] += self.sizes.get(name, 0)
        return totals

    def place(self, sizes: Mapping[str, int], shards: Optional[Sequence[int]] = None) -> None:
        """Adds new parameters (name → bytes, in upload order) to the global order and places
        them with :func:`assign` onto the shards' current loads (only onto ``shards`` when
        given); known names keep their shard."""
        new = {name: int(size) for name, size in sizes.items() if name not in self.tensors}
        self.tensors.update(assign(new, len(self.shards), self.loads(), candidates=shards))
        self.sizes.update(new)
        self.parameters.extend(name for name in sizes if name not in set(self.parameters))

    def on_shard(self, shard: int) -> list[str]:
        """The parameters held by ``shard``, in global order."""
        return [name for name in self.parameters if self.tensors[name] == shard]

    def to_json(self) -> str:
        """The placement as a JSON document (keep it with the trainer's checkpoints: it holds the
        shards' tokens)."""
        document = {
            "format": _FORMAT,
            "version": _VERSION,
            "shards": [{"url": s.url, "session": s.session, "token": s.token} for s in self.shards],
            "parameters": self.parameters,
            "tensors": self.tensors,
            "sizes": self.sizes,
            "optimizer": self.optimizer,
            "hyperparameters": self.hyperparameters,
            "groups": self.groups,
        }
        return json.dumps(document, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes | Mapping[str, Any]) -> Placement:
        """Reads a document written by :meth:`to_json` (or its parsed dict)."""
        document = dict(text) if isinstance(text, Mapping) else json.loads(text)
        if document.get("format") != _FORMAT or document.get("version") != _VERSION:
            raise ValueError(
                f"not an optimizerd placement (format {document.get('format')!r}, "
                f"version {document.get('version')!r})"
            )
        placement = cls(
            shards=[Shard(s["url"], s["session"], s.get("token")) for s in document["shards"]],
            parameters=list(document["parameters"]),
            tensors={name: int(shard) for name, shard in document["tensors"].items()},
            sizes={name: int(size) for name, size in document["sizes"].items()},
            optimizer=document["optimizer"],
            hyperparameters=dict(document["hyperparameters"]),
            groups=list(document["groups"]),
        )
        unplaced = [name for name in placement.parameters if name not in placement.tensors]
        beyond = [n for n, s in placement.tensors.items() if not 0 <= s < len(placement.shards)]
        if unplaced or beyond:
            raise ValueError(f"inconsistent placement: unplaced {unplaced[:5]}, on no shard {beyond[:5]}")
        return placement


def assign(
    sizes: Mapping[str, int],
    shards: int,
    loads: Optional[Sequence[int]] = None,
    candidates: Optional[Sequence[int]] = None,
) -> dict[str, int]:
    """Places whole tensors onto ``shards`` shards: largest first (ties by name), each onto the
    least-loaded shard (ties by shard index). Deterministic: the same sizes give the same
    placement in every process.

    Args:
        sizes: tensor name → bytes.
        shards: how many shards (at least 1).
        loads: bytes already on each shard (default none).
        candidates: the shards that may take tensors (default every shard).
    """
    if shards < 1:
        raise ValueError(f"a sharded session needs at least one shard, got {shards}")
    allowed = sorted(set(candidates)) if candidates else list(range(shards))
    totals = list(loads) if loads is not None else [0] * shards
    placed: dict[str, int] = {}
    for name in sorted(sizes, key=lambda n: (-int(sizes[n]), n)):
        target = min(allowed, key=lambda s: (totals[s], s))
        placed[name] = target
        totals[target] += int(sizes[name])
    return placed

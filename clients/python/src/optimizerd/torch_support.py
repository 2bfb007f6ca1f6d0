"""Helpers of :mod:`optimizerd.torch`: parameter groups, hyperparameter values, tensors as arrays,
checkpoints mapped onto the optimizer's parameters."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

import numpy as np
import torch

from .client import SESSION_OPTIONS
from .placement import Placement
from .sharded_checkpoint import ShardedCheckpoint, _read, _write

_MISSING = object()

# torch's Adam, AdamW and SGD step a complex parameter as its torch.view_as_real (every operation
# is per coordinate), and the daemon's are theirs: a complex parameter travels as that view.
# Others (Adafactor's factored moments, MoMo's and MTAdam's global sums, ACClip) are not defined
# on complex parameters by torch.
_COMPLEX_OPTIMIZERS = ("adam", "adamw", "sgd")


def _normalize_groups(params: Any, start: int = 0) -> list[dict[str, Any]]:
    """Param group dicts with tensor ``params`` and a ``param_names`` list (``p{i}`` when unnamed)."""
    if isinstance(params, torch.nn.Module):
        params = params.named_parameters()
    if isinstance(params, torch.Tensor):
        raise TypeError("params must be an iterable of tensors, (name, tensor) pairs or dicts, not a tensor")
    items = list(params)
    if not items:
        raise ValueError("optimizer got an empty parameter list")
    if not isinstance(items[0], Mapping):
        items = [{"params": items}]
    groups = []
    index = start
    for item in items:
        group = dict(item)
        members = group["params"]
        if isinstance(members, torch.nn.Module):
            members = members.named_parameters()
        elif isinstance(members, torch.Tensor):
            members = [members]
        given_names = list(group.pop("param_names", None) or [])
        tensors, names = [], []
        for position, member in enumerate(members):
            if isinstance(member, tuple):
                member_name, tensor = member
            else:
                tensor = member
                member_name = given_names[position] if position < len(given_names) else None
            tensors.append(tensor)
            names.append(member_name if member_name is not None else f"p{index}")
            index += 1
        group["params"] = tensors
        group["param_names"] = names
        groups.append(group)
    all_names = [name for group in groups for name in group["param_names"]]
    duplicates = sorted({name for name in all_names if all_names.count(name) > 1})
    if duplicates:
        raise ValueError(f"duplicate parameter names: {duplicates[:10]}")
    return groups


def _check_complex(groups: Sequence[Mapping[str, Any]], optimizer: str, overlap: Optional[str]) -> None:
    """Refuses complex parameters where the daemon could not step them as torch does."""
    for group in groups:
        for name, p in zip(group["param_names"], group["params"]):
            if p.is_complex() and (optimizer not in _COMPLEX_OPTIMIZERS or overlap is not None):
                raise ValueError(
                    f"parameter {name!r} is complex ({p.dtype}): only {', '.join(_COMPLEX_OPTIMIZERS)} "
                    f"step complex parameters (as torch does, on their view_as_real), and not with "
                    f"overlap; got optimizer {optimizer!r}, overlap={overlap!r}"
                )


def _real_view(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor as the daemon holds it: a complex one as its ``view_as_real`` (same memory)."""
    return torch.view_as_real(tensor.resolve_conj()) if tensor.is_complex() else tensor


def _effective_hyperparameters(info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """[session defaults, group 1, ...] from a creation answer or summary, without session options."""

    def strip(values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if k not in SESSION_OPTIONS}

    result = [strip(info.get("hyperparameters", {}))]
    for group in info.get("groups", []) or []:
        result.append(strip(group.get("hyperparameters", {})))
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _torch_value(value: Any) -> Any:
    """A daemon JSON value as torch keeps it in a group (lists as tuples, like ``betas``)."""
    return tuple(value) if isinstance(value, list) else value


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach()
    if tensor.is_sparse:
        tensor = tensor.to_dense()
    return _real_view(tensor).to(device="cpu", dtype=torch.float32).contiguous().numpy()


def _memory(p: torch.Tensor) -> Optional[np.ndarray]:
    """The parameter's own memory as the float32 array the daemon's answer is read into, when it
    can be (float32 or complex64, contiguous, on the CPU); None when the answer is copied in."""
    if p.device.type != "cpu" or p.is_sparse or p.is_conj() or not p.is_contiguous():
        return None
    if p.dtype not in (torch.float32, torch.complex64):
        return None
    return _real_view(p.detach()).numpy()


def _copy_into(p: torch.Tensor, value: np.ndarray) -> None:
    """Copies the daemon's float32 values of ``p`` (a complex one's as its view_as_real) into ``p``."""
    source = torch.from_numpy(value)
    if p.is_complex():
        source = torch.view_as_complex(source.reshape(*p.shape, 2))
    p.copy_(source.reshape(p.shape))


def _zeros_like(tensor: torch.Tensor) -> np.ndarray:
    return np.zeros(tuple(tensor.shape), dtype=np.float32)


def _closure_and_loss(closure: Optional[Callable[[], Any]], loss: Any) -> tuple[Any, Any]:
    """A step's closure result (the closure run with grad enabled, if given) and the loss to send:
    ``loss``, or else that result."""
    result = None
    if closure is not None:
        with torch.enable_grad():
            result = closure()
    return result, (result if loss is None else loss)


# MARK: checkpoints


def _checkpoint_for(
    checkpoint: Any,
    sharded: bool,
    saved_groups: Sequence[Mapping[str, Any]],
    groups: Sequence[Mapping[str, Any]],
) -> Any:
    """A state dict's checkpoint as this optimizer's session restores it, made before anything is
    loaded so that one that does not fit changes nothing: converted (one daemon's bytes, or a
    :class:`ShardedCheckpoint` for a sharded session) and with its tensors named as this optimizer
    names them. torch maps a state dict onto the optimizer by position, so a state dict saved
    under other names (``torch.compile``'s ``_orig_mod.`` prefix, DDP's ``module.``) loads into
    the plain model: the checkpoint's parameters are renamed by the position of their names in
    the saved groups' ``param_names``."""
    if checkpoint is None:
        return None
    if isinstance(checkpoint, Mapping):
        checkpoint = ShardedCheckpoint(checkpoint["placement"], list(checkpoint["shards"]))
    if sharded and isinstance(checkpoint, (bytes, bytearray, memoryview)):
        checkpoint = ShardedCheckpoint.of_one_daemon(bytes(checkpoint))
    elif not sharded and isinstance(checkpoint, ShardedCheckpoint):
        checkpoint = checkpoint.single()
    held = _held_shapes(checkpoint)
    if held is None:  # not readable as a checkpoint: the daemon says what is wrong with it
        return checkpoint
    names = _names_by_position(held, saved_groups, groups)
    if all(old == new for old, new in names.items()):
        return checkpoint
    if isinstance(checkpoint, ShardedCheckpoint):
        placement = Placement.from_json(checkpoint.placement)
        placement.parameters = [names[name] for name in placement.parameters]
        placement.tensors = {names[name]: shard for name, shard in placement.tensors.items()}
        placement.sizes = {names[name]: size for name, size in placement.sizes.items()}
        placement.groups = _renamed_groups(placement.groups, names)
        return ShardedCheckpoint(placement.to_json(), [_renamed(shard, names) for shard in checkpoint.shards])
    return _renamed(bytes(checkpoint), names)


def _held_shapes(checkpoint: Any) -> Optional[dict[str, list[int]]]:
    """Parameter name → shape in a checkpoint (from the files' headers), or None if unreadable."""
    files = checkpoint.shards if isinstance(checkpoint, ShardedCheckpoint) else [checkpoint]
    shapes: dict[str, list[int]] = {}
    try:
        for content in files:
            length = int.from_bytes(bytes(content[:8]), "little")
            header = json.loads(bytes(content[8 : 8 + length]))
            for name in json.loads(header["__metadata__"]["parameters"]):
                shapes[name] = list(header[f"param/{name}"]["shape"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    return shapes


def _names_by_position(
    held: Mapping[str, list[int]],
    saved_groups: Sequence[Mapping[str, Any]],
    groups: Sequence[Mapping[str, Any]],
) -> dict[str, str]:
    """Checkpoint name → this optimizer's name: the same names, or else those at the same
    positions in the saved groups' ``param_names``; raises when the groups differ (torch's rule:
    as many groups, of the same sizes) or the checkpoint's tensors do not fit."""
    sizes = [len(group["param_names"]) for group in groups]
    if [len(group.get("params", [])) for group in saved_groups] != sizes:
        raise ValueError(
            "this state dict's param_groups do not match this optimizer's: it is loaded by position, "
            "which needs as many groups, of the same sizes"
        )
    ours = {
        name: list(_real_view(p).shape)
        for group in groups
        for name, p in zip(group["param_names"], group["params"])
    }
    if set(held) == set(ours):
        names = {name: name for name in held}
    else:
        saved = [list(group.get("param_names") or []) for group in saved_groups]
        if [len(s) for s in saved] != sizes or set(itertools.chain(*saved)) != set(held):
            raise ValueError(
                f"this state dict's checkpoint holds other parameters than this optimizer "
                f"({sorted(set(held) - set(ours))[:5]} for {sorted(set(ours) - set(held))[:5]}) "
                "that its param_groups' param_names do not name by position"
            )
        names = dict(zip(itertools.chain(*saved), (n for g in groups for n in g["param_names"])))
    wrong = [
        f"{old!r} {held[old]} as {new!r} {ours[new]}" for old, new in names.items() if held[old] != ours[new]
    ]
    if wrong:
        raise ValueError(
            f"this state dict's checkpoint does not fit this optimizer's parameters: {wrong[:5]}"
        )
    return names


def _renamed(content: bytes, names: Mapping[str, str]) -> bytes:
    """A daemon checkpoint with its parameters renamed (tensors, order, slots, groups, last step)."""
    meta, tensors = _read(content)
    meta.pop("checksum", None)  # _write makes the renamed file's
    held = json.loads(meta["parameters"])
    slots = json.loads(meta["slots"])
    keys = {}
    for name in held:
        keys[f"param/{name}"] = f"param/{names[name]}"
        for slot in slots.get(name, []):
            keys[f"state/{name}/{slot}"] = f"state/{names[name]}/{slot}"
    meta["parameters"] = _json([names[name] for name in held])
    meta["slots"] = _json({names[name]: value for name, value in slots.items()})
    meta["groups"] = _json(_renamed_groups(json.loads(meta["groups"]), names))
    if "last_step_parameters" in meta:
        meta["last_step_parameters"] = _json(
            [names.get(n, n) for n in json.loads(meta["last_step_parameters"])]
        )
    telemetry = json.loads(meta.get("last_telemetry", "{}"))
    if telemetry.get("term_weights"):  # MTAdam's, per parameter
        telemetry["term_weights"] = {names.get(n, n): w for n, w in telemetry["term_weights"].items()}
        meta["last_telemetry"] = _json(telemetry)
    return _write(meta, [(keys.get(key, key), entry) for key, entry in tensors.items()])


def _renamed_groups(groups: Sequence[Mapping[str, Any]], names: Mapping[str, str]) -> list[dict[str, Any]]:
    """Parameter groups with their members renamed (patterns that are no name are kept)."""
    return [
        {**group, "parameters": [names.get(member, member) for member in group.get("parameters", [])]}
        for group in groups
    ]


def _plain(checkpoint: Any) -> Any:
    """A checkpoint as plain values (a sharded one as its dict)."""
    return checkpoint.as_dict() if isinstance(checkpoint, ShardedCheckpoint) else checkpoint


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)

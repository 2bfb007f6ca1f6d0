"""Helpers of :mod:`optimizerd.torch`: parameter groups, hyperparameter values, tensors as arrays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Optional

import numpy as np
import torch

from .client import SESSION_OPTIONS

# Group keys that are not hyperparameters.
_GROUP_KEYS = ("params", "param_names")

_MISSING = object()


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


def _given_hyperparameters(group: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in group.items() if k not in _GROUP_KEYS and k not in SESSION_OPTIONS}


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
    return tensor.to(device="cpu", dtype=torch.float32).contiguous().numpy()


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

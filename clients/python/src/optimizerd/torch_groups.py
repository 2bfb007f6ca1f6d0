"""How :class:`~optimizerd.torch.RemoteOptimizer`'s param groups map onto the session's
hyperparameters and groups, and how their changes (an ``lr_scheduler`` step) reach the daemon.

With one local group, its values are the session's own. With several, the session's values are
the constructor's (torch's ``defaults``) and every local group is a daemon group, so that a key a
group does not set takes the constructor's value or the optimizer's default, as in torch. Sessions
made by older clients, whose first group was the session's level, are recognised when attached
(``_group_offset`` 0).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from .torch_support import _MISSING, _jsonable, _torch_value

__all__ = ["HyperparameterGroups"]


class HyperparameterGroups:
    """A mixin for :class:`~optimizerd.torch.RemoteOptimizer` (which holds ``param_groups``,
    ``defaults``, ``session``, ``_hyperparameter_keys``, ``_synced`` and ``_group_offset``)."""

    param_groups: list[dict[str, Any]]
    defaults: dict[str, Any]
    session: Any
    _hyperparameter_keys: Any
    _synced: list[dict[str, Any]]
    _group_offset: int

    def _adopt(self, effective: Sequence[Mapping[str, Any]]) -> None:
        """Fills the groups' missing hyperparameters with the daemon's defaults (so that
        ``group["lr"]`` exists for schedulers) and learns which keys are hyperparameters."""
        self._hyperparameter_keys = set(effective[0])
        for index, group in enumerate(self.param_groups):
            daemon = index + self._group_offset
            values = effective[daemon] if daemon < len(effective) else effective[0]
            for key, value in values.items():
                group.setdefault(key, _torch_value(value))
        for key, value in effective[0].items():
            self.defaults.setdefault(key, _torch_value(value))

    def _daemon_groups(self, effective: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The daemon's hyperparameters per local group, in the form ``_synced`` keeps."""
        keys = self._keys()
        result = []
        for index in range(len(self.param_groups)):
            daemon = index + self._group_offset
            values = effective[daemon] if daemon < len(effective) else {}
            result.append({k: v for k, v in _jsonable(values).items() if k in keys})
        return result

    def _keys(self) -> set[str]:
        return self._hyperparameter_keys or set()

    def _group_hyperparameters(self, group: Mapping[str, Any]) -> dict[str, Any]:
        return {k: _jsonable(group[k]) for k in sorted(self._keys()) if k in group}

    def _current_hyperparameters(self) -> list[dict[str, Any]]:
        return [self._group_hyperparameters(group) for group in self.param_groups]

    def _sync_hyperparameters(self) -> None:
        """Sends changed group hyperparameters (``PATCH``), e.g. after an ``lr_scheduler`` step."""
        current = self._current_hyperparameters()
        if current == self._synced:
            return
        # The local groups that are daemon groups: all of them, or all but the first (which is
        # then the session's level).
        first = 1 - self._group_offset
        changed: dict[str, Any] = {}
        if first == 1:
            previous = self._synced[0] if self._synced else {}
            changed = {k: v for k, v in current[0].items() if previous.get(k, _MISSING) != v}
        groups = None
        if current[first:] != self._synced[first:]:
            groups = [
                {"parameters": list(group["param_names"]), "hyperparameters": values}
                for group, values in zip(self.param_groups[first:], current[first:])
            ]
        self.session.patch(changed, groups=groups)
        self._synced = copy.deepcopy(current)

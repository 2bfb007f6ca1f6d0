"""Multi-rank trainers (ZeRO-1 style): in a ``torch.distributed`` job each rank drives the shards of
a :class:`~optimizerd.ShardedSession` it owns, sends only their gradients, and the updated
parameters are broadcast from their owners::

    import torch.distributed as dist
    from optimizerd.distributed import DistributedRemoteOptimizer

    dist.init_process_group("gloo")                 # or nccl; torchrun sets the rank and world
    model = torch.nn.parallel.DistributedDataParallel(net)   # gradients averaged over ranks
    opt = DistributedRemoteOptimizer(model.named_parameters(), urls=[url0, url1, url2],
                                     optimizer="adamw", lr=1e-3)
    for x, y in batches:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step(loss=loss)

Shard ``i`` is owned by rank ``i mod world_size``. A step: every rank stages the gradients of its
shards' tensors (the parts answer their sums of squares), the per-tensor sums are exchanged with
one ``all_gather_object`` and every rank folds them in the global parameter order
(:func:`optimizerd.parts.commit_scalars`), so the global gradient norm, clipping and the
non-finite decision are exactly those of one process stepping one daemon; each rank commits its
shards and then every stepped parameter is broadcast from its owner. The result is bit-identical
to a single-process :class:`~optimizerd.torch.RemoteOptimizer` given the same gradients.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

import torch
import torch.distributed as dist

from . import parts
from .session import step_request
from .sharded import ShardedSession
from .sharded_steps import merge_telemetry
from .torch import RemoteOptimizer
from .torch_support import _closure_and_loss, _to_numpy

__all__ = ["DistributedRemoteOptimizer", "RankFailed"]

# Their step needs a second round of global sums (MoMo) or the terms API (MTAdam's step_terms).
_UNSUPPORTED = ("momo", "momo_adam", "mtadam")


class RankFailed(RuntimeError):
    """A step failed on some ranks; ``errors`` maps rank → the error's text. Raised on every rank
    (a rank whose own phase failed raises its own error instead), so no rank waits forever."""

    def __init__(self, message: str, errors: Mapping[int, str]) -> None:
        super().__init__(message)
        self.errors = dict(errors)


class DistributedRemoteOptimizer(RemoteOptimizer):
    """A :class:`~optimizerd.torch.RemoteOptimizer` over several daemons for a
    ``torch.distributed`` job: each rank owns some shards (ZeRO-1's partition of the optimizer).

    Every rank constructs it with the same parameters and arguments (a collective call). Rank 0
    creates the :class:`~optimizerd.ShardedSession` (or takes ``session``) and uploads its
    parameter values; the placement goes to the other ranks, which attach to it and copy the
    daemons' values into their parameters, so every rank starts from rank 0's values.

    ``step()`` is a collective too. It expects each rank's gradients to be the averaged ones (as
    ``DistributedDataParallel`` leaves them); only the owner's copy of a tensor's gradient is sent.
    The batch loss sent is the mean of the ranks' ``loss`` values (in rank order; the global
    batch's loss when every rank's batch has the same size). Hyperparameter changes (a scheduler)
    must be made alike on every rank: each rank sends them to every shard before the step.
    Parameters changed in place (weights loaded after construction, a clamp after each step) are
    uploaded before the step by the owner of their shard, as :class:`RemoteOptimizer` does: make
    such changes alike on every rank (the owner's copy is the one broadcast after the step).

    Args:
        params, optimizer, **kwargs: as :class:`~optimizerd.torch.RemoteOptimizer` (with ``urls``;
            ``url``, ``client`` and ``overlap`` are not for this class).
        urls: the daemons' URLs, in shard order.
        process_group: the ``torch.distributed`` group of the ranks (default: the world).
        session: rank 0's existing :class:`~optimizerd.ShardedSession` or its placement's JSON
            (the other ranks' value is ignored).

    Not for ``momo``, ``momo_adam`` (their step size needs a second round of sums across ranks,
    see ``POST …/steps/{n}/momo-sums``) nor ``mtadam``.
    """

    def __init__(
        self,
        params: Any,
        urls: Sequence[str],
        optimizer: str = "adam",
        *,
        process_group: Optional[Any] = None,
        session: Any = None,
        **kwargs: Any,
    ) -> None:
        if optimizer in _UNSUPPORTED:
            raise ValueError(f"DistributedRemoteOptimizer does not run {optimizer} (see its docstring)")
        for key in ("url", "client", "overlap"):
            if kwargs.get(key) is not None:
                raise ValueError(f"DistributedRemoteOptimizer takes urls=, not {key}=")
        self.process_group = process_group
        self.rank = dist.get_rank(process_group)
        self.world_size = dist.get_world_size(process_group)
        shared: list[Any] = [None]
        error: Optional[BaseException] = None
        if self.rank == 0:
            try:
                super().__init__(params, optimizer=optimizer, urls=urls, session=session, **kwargs)
                shared[0] = (self.session.placement.to_json(), None)
            except Exception as failure:  # noqa: BLE001 - raised after telling the other ranks
                error = failure
                shared[0] = (None, f"{type(failure).__name__}: {failure}")
        dist.broadcast_object_list(shared, src=self._global_rank(0), group=process_group)
        placement, failed = shared[0]
        if error is not None:
            raise error
        if failed is not None:
            raise RankFailed(f"rank 0 could not create the session: {failed}", {0: failed})

        def attach() -> None:
            if self.rank != 0:
                super(DistributedRemoteOptimizer, self).__init__(
                    params, optimizer=optimizer, urls=urls, session=placement, **kwargs
                )

        self._all_ranks(attach, None)
        if not isinstance(self.session, ShardedSession):
            raise TypeError("DistributedRemoteOptimizer needs a sharded session (urls=[...])")
        shards = len(self.session.sessions)
        #: The shards this rank stages and commits.
        self.owned = [index for index in range(shards) if index % self.world_size == self.rank]

    def _global_rank(self, rank: int) -> int:
        return rank if self.process_group is None else dist.get_global_rank(self.process_group, rank)

    def owner(self, name: str) -> int:
        """The rank (in :attr:`process_group`) that owns parameter ``name``."""
        return self.session.placement.tensors[name] % self.world_size

    def step(self, closure: Optional[Callable[[], Any]] = None, loss: Any = None) -> Any:  # type: ignore[override]
        """One optimizer step over every rank's shards (a collective; see the class).

        Args:
            closure: re-evaluates the model and returns the loss (evaluated with grad enabled).
            loss: this rank's batch loss (float or tensor), recorded by the daemons as the mean
                over ranks. Defaults to the closure's result.

        Returns:
            The closure's result, if a closure was given.

        Raises:
            RankFailed: another rank's part of the step failed (nothing was applied when it
                failed before the commit).
        """
        result, loss = _closure_and_loss(closure, loss)
        sharded: ShardedSession = self.session
        named = self._named_parameters()
        mine = {
            name: _to_numpy(p.grad)
            for name, p in named
            if p.grad is not None and sharded.placement.tensors[name] in self.owned
        }
        number = sharded.last_step + 1
        splits = sharded.split_shards(mine, self.wire_dtype)

        def stage() -> dict[str, Any]:
            # As RemoteOptimizer.step: parameters changed in place since the daemons last had them
            # (weights loaded into the model after construction, a clamp after each step) are
            # uploaded first, each by its owner (every rank changes its copy alike; a change on
            # another rank alone is overwritten by the owner's broadcast after the step).
            self._resync_parameters(
                {
                    name
                    for name in sharded.placement.parameters
                    if sharded.placement.tensors[name] in self.owned
                }
            )
            self._sync_hyperparameters()
            return sharded.stage_shards(
                number, splits, dtype=self.wire_dtype, compress=self.compress, shards=self.owned
            )

        local_loss = None if loss is None else float(loss.detach().item() if torch.is_tensor(loss) else loss)
        try:
            gathered = self._all_ranks(stage, local_loss)
        except Exception:
            self._drop_staged(number)  # nothing is committed anywhere: give the staged memory back
            raise
        sums = {name: value for staged, _ in gathered for name, value in staged.items()}
        losses = [value for _, value in gathered]
        mean_loss = None if any(value is None for value in losses) else math.fsum(losses) / len(losses)
        if not sums:
            # No rank had a gradient: nothing to step, as RemoteOptimizer.step sends nothing (every
            # rank sees the same gathered sums, so all return here alike). The empty parts staged
            # for the step are dropped, so that the next step can stage its own under its number.
            self._drop_staged(number)
            self._check_step({}, [name for name, _ in named], mean_loss)
            return result
        _, meta = step_request({}, loss=mean_loss)
        try:
            scalars = sharded.fold(sums, meta)  # every rank folds the same sums: all raise alike
        except Exception:
            self._drop_staged(number)
            raise

        params = {"return": "params", "dtype": str(self.response_dtype).lower()}

        def commit() -> dict[int, dict[str, Any]]:
            answers = sharded.commit_shards(
                number,
                scalars,
                splits,
                params=params,
                out=self._destinations(),
                dtype=self.wire_dtype,
                compress=self.compress,
                shards=self.owned,
            )
            values = {}
            telemetry = {}
            for index, answer in zip(self.owned, answers):
                arrays, metadata = sharded.merge([answer])
                values.update(arrays)
                telemetry[index] = metadata
            self._write_back(values)
            return telemetry

        per_shard = {
            index: t for telemetry, _ in self._all_ranks(commit, None) for index, t in telemetry.items()
        }
        sharded.last_step = number
        self._broadcast([name for name in sharded.placement.parameters if name in sums])
        self.last_metadata = _merged(per_shard)
        return result

    def _drop_staged(self, number: int) -> None:
        """Drops what this rank staged for step ``number`` on its shards (quietly: best effort)."""
        for index in self.owned:
            parts.drop(self.session.sessions[index], number)

    def _all_ranks(self, work: Callable[[], Any], extra: Any) -> list[tuple[Any, Any]]:
        """Runs ``work`` on this rank and gathers every rank's ``(result, extra)`` in rank order;
        if any rank failed, every rank raises (its own error, or :class:`RankFailed`)."""
        error: Optional[BaseException] = None
        try:
            outcome = (work(), extra, None)
        except Exception as failure:  # noqa: BLE001 - raised after telling the other ranks
            error = failure
            outcome = (None, extra, f"{type(failure).__name__}: {failure}")
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, outcome, group=self.process_group)
        if error is not None:
            raise error
        failures = {rank: text for rank, (_, _, text) in enumerate(gathered) if text is not None}
        if failures:
            raise RankFailed(f"the step failed on ranks {sorted(failures)}: {failures}", failures)
        return [(result, value) for result, value, _ in gathered]

    @torch.no_grad()
    def _broadcast(self, names: Sequence[str]) -> None:
        """Every rank's copy of each stepped parameter becomes its owner's (in global order)."""
        parameters = dict(self._named_parameters())
        for name in names:
            dist.broadcast(
                parameters[name].data, src=self._global_rank(self.owner(name)), group=self.process_group
            )

    def step_terms(self, *args: Any, **kwargs: Any) -> Any:
        """Not for this class (MTAdam is refused at construction)."""
        raise TypeError("DistributedRemoteOptimizer has no step_terms (mtadam is not supported)")


def _merged(per_shard: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """One step's telemetry from every shard's (see :func:`merge_telemetry`); ``retry`` when any
    shard answered a retry."""
    ordered = [per_shard[index] for index in sorted(per_shard)]
    return merge_telemetry(ordered, any(t.get("retry") for t in ordered))

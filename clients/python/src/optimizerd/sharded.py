"""A session spread over several daemons (DESIGN §9): whole tensors per daemon, one daemon session
per shard, every step sent as parts to all shards in parallel and committed with global scalars.

The global scalars are folded exactly as one daemon folds them (:func:`parts.commit_scalars`:
per loss term the left fold from 0.0 of the per-tensor sums in the session's global parameter
order), so a sharded session follows the one-daemon trajectory bit for bit.

The step is split into pieces a coordinator can drive shard by shard (e.g. one
``torch.distributed`` rank per subset of shards): :meth:`ShardedSession.route`,
:meth:`ShardedSession.stage_shards`, :meth:`ShardedSession.fold` and
:meth:`ShardedSession.commit_shards`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Callable, Optional

import numpy as np

from . import parts
from .client import Client
from .errors import OptimizerdError
from .placement import Placement, Shard
from .session import Compress, Session, _request_digest, step_request
from .sharded_checkpoint import ShardedCheckpoint, reshard
from .sharded_steps import ShardedSteps, ShardsDisagree, _quietly, _subset

__all__ = ["ShardedSession", "ShardsDisagree"]

Sums = dict[str, tuple[Optional[float], bool]]


class ShardedSession(ShardedSteps):
    """One optimizer session over several daemons, used like a :class:`~optimizerd.Session`.

    Create one with :meth:`create` (new) or :meth:`attach` (from a :attr:`placement`, in any
    process). Parameters are placed on their first upload (:func:`placement.assign`: largest
    first onto the least-loaded shard); the upload order is the session's global parameter order.

    Attributes:
        placement: the :class:`~optimizerd.placement.Placement` (``placement.to_json()`` is what
            :meth:`attach` needs).
        sessions: one :class:`~optimizerd.Session` per shard.
        last_step: the step every shard is at.
        attempts: how many rounds a step's commit is retried on a shard whose commit failed
            (each round is a client with its own retries and backoff).
    """

    def __init__(self, sessions: Sequence[Session], placement: Placement, attempts: int = 4) -> None:
        self.sessions = list(sessions)
        self.placement = placement
        self.attempts = int(attempts)
        self.last_step = max((session.last_step for session in self.sessions), default=0)
        self.info: dict[str, Any] = dict(self.sessions[0].info) if self.sessions else {}
        # (step, request digest, splits, scalars) of a step some shards may not have applied.
        self._pending: Optional[tuple[int, bytes, list[Any], dict[str, Any]]] = None
        self._pool = ThreadPoolExecutor(max_workers=len(self.sessions), thread_name_prefix="optimizerd-shard")

    # MARK: creation

    @classmethod
    def create(
        cls,
        urls: Sequence[str],
        optimizer: str,
        hyperparameters: Optional[Mapping[str, Any]] = None,
        groups: Optional[Sequence[Mapping[str, Any]]] = None,
        name: Optional[str] = None,
        state_dtype: Optional[str] = None,
        *,
        admin_token: Optional[str] = None,
        client_options: Optional[Mapping[str, Any]] = None,
        **options: Any,
    ) -> ShardedSession:
        """A new session over ``urls`` (one daemon session each, named ``name [k/N]``); the
        arguments are those of :meth:`Client.create_session` (``state_dtype`` applies to every
        shard), ``client_options`` those of :class:`Client` (``timeout``, ``retries``, ``backoff``, ...)."""
        if not urls:
            raise ValueError("a sharded session needs at least one daemon URL")
        settings = {**dict(hyperparameters or {}), **options}
        created: list[Session] = []
        try:
            for index, url in enumerate(urls):
                client = Client(url, admin_token=admin_token, **dict(client_options or {}))
                label = f"{name or 'sharded'} [{index + 1}/{len(urls)}]"
                created.append(
                    client.create_session(
                        optimizer, settings, groups=groups, name=label, state_dtype=state_dtype
                    )
                )
        except BaseException:
            for session in created:  # leave no half-made sharded session behind
                _quietly(session.delete)
            raise
        placement = Placement(
            shards=[Shard(s.client.url, s.id, s.token) for s in created],
            optimizer=optimizer,
            hyperparameters=settings,
            groups=[dict(group) for group in groups or []],
        )
        return cls(created, placement)

    @classmethod
    def attach(
        cls,
        placement: Placement | str | bytes | Mapping[str, Any],
        *,
        admin_token: Optional[str] = None,
        client_options: Optional[Mapping[str, Any]] = None,
    ) -> ShardedSession:
        """Reattaches to a sharded session from its placement (a :class:`Placement` or its JSON);
        checks that every shard holds its tensors and that the shards are at one step."""
        if not isinstance(placement, Placement):
            placement = Placement.from_json(placement)
        sessions = [
            Client(shard.url, admin_token=admin_token, **dict(client_options or {})).session(
                shard.session, shard.token
            )
            for shard in placement.shards
        ]
        sharded = cls(sessions, placement)
        for index, session in enumerate(sessions):
            held = {entry["name"] for entry in session.info.get("parameters", [])}
            missing = [name for name in placement.on_shard(index) if name not in held]
            if missing:
                raise ValueError(f"shard {index} ({session.client.url}) lacks its tensors {missing[:5]}")
        sharded._require_agreement({i: s.last_step for i, s in enumerate(sessions)})
        return sharded

    def __repr__(self) -> str:
        return (
            f"ShardedSession(optimizer={self.optimizer!r}, shards={len(self.sessions)}, "
            f"last_step={self.last_step})"
        )

    def __enter__(self) -> ShardedSession:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        """Deletes the session on every shard."""
        self.delete()

    @property
    def optimizer(self) -> str:
        return self.placement.optimizer

    @property
    def id(self) -> str:
        """The shards' session ids, joined with ``,`` (a label; reattach with :attr:`placement`)."""
        return ",".join(shard.session for shard in self.placement.shards)

    @property
    def client(self) -> Client:
        """The first shard's client."""
        return self.sessions[0].client

    # MARK: every shard

    def _each(self, work: Callable[[int, Session], Any], shards: Optional[Sequence[int]] = None) -> list[Any]:
        """``work(index, session)`` on the given shards (default all) in parallel, results in
        that order; the first failure is raised after every shard finished."""
        indices = list(range(len(self.sessions))) if shards is None else list(shards)
        futures = [self._pool.submit(work, index, self.sessions[index]) for index in indices]
        wait(futures)
        return [future.result() for future in futures]

    def summary(self) -> dict[str, Any]:
        """The first shard's summary with ``parameters`` from every shard in global order,
        ``memory_bytes`` and ``parameter_count`` summed, ``durable_step`` and ``snapshot_step``
        the least of the shards that hold parameters (``snapshot_problem`` the first shard's
        that has one), and ``shards`` (per shard: url, id, step, parameter names)."""
        summaries = self._each(lambda _, session: session.summary())
        self._require_agreement({i: s["step"] for i, s in enumerate(summaries)})
        by_name = {entry["name"]: entry for s in summaries for entry in s.get("parameters", [])}
        merged = dict(summaries[0])
        merged["parameters"] = [by_name[name] for name in self.placement.parameters if name in by_name]
        for key in ("memory_bytes", "parameter_count"):
            merged[key] = sum(int(s.get(key, 0)) for s in summaries)
        # What survives a crash is what the least durable shard kept.
        stepping = [summaries[i] for i in self.holding()] or summaries
        for key in ("durable_step", "snapshot_step"):
            values = [int(s[key]) for s in stepping if s.get(key) is not None]
            if values:
                merged[key] = min(values)
        problems = [s["snapshot_problem"] for s in stepping if s.get("snapshot_problem")]
        if problems:
            merged["snapshot_problem"] = problems[0]
        merged["shards"] = [
            {
                "url": shard.url,
                "id": shard.session,
                "step": s["step"],
                "parameters": self.placement.on_shard(i),
            }
            for i, (shard, s) in enumerate(zip(self.placement.shards, summaries))
        ]
        self.info = merged
        self.last_step = int(summaries[self.holding()[0]]["step"] if self.holding() else merged["step"])
        merged["step"] = self.last_step
        return merged

    def sync(self) -> int:
        """Refreshes :attr:`last_step` (raises :class:`ShardsDisagree` if the shards differ)."""
        self.summary()
        return self.last_step

    def patch(
        self,
        hyperparameters: Optional[Mapping[str, Any]] = None,
        groups: Optional[Sequence[Mapping[str, Any]]] = None,
        **options: Any,
    ) -> dict[str, Any]:
        """PATCHes every shard alike (hyperparameters, session options, groups)."""
        self._each(lambda _, session: session.patch(hyperparameters, groups, **options))
        self.placement.hyperparameters.update({**dict(hyperparameters or {}), **options})
        if groups is not None:
            self.placement.groups = [dict(group) for group in groups]
        return self.summary()

    def delete(self) -> None:
        """Deletes the session on every shard (and ends this object's worker threads)."""
        self._each(lambda _, session: _quietly(session.delete))
        self._pool.shutdown(wait=False)

    def history(self, since: int = 0, limit: Optional[int] = None) -> dict[str, Any]:
        """The first shard's step telemetry (global values: loss, lr, grad_norm, clipping,
        skipped; its ``update_norm`` is that shard's own)."""
        return self.sessions[0].history(since, limit)

    # MARK: tensors

    def upload_parameters(
        self, parameters: Mapping[str, Any], dtype: str = "f32", compress: Compress = False
    ) -> dict[str, Any]:
        """Places new parameters (in the given order, which becomes the global order) and uploads
        each shard's tensors to it."""
        # Once the session has stepped, a shard holding nothing is still at step 0 and cannot be
        # brought forward: new parameters then go onto the shards that step.
        stepping = self.holding() if self.last_step > 0 else None
        self.placement.place(
            {name: int(np.asarray(value).size) * 4 for name, value in parameters.items()}, shards=stepping
        )
        routed = self.route(parameters)
        self._each(
            lambda i, session: session.upload_parameters(routed[i], dtype, compress) if routed[i] else None
        )
        return self.summary()

    def parameters(
        self,
        dtype: str = "f32",
        compress: Compress = False,
        out: Optional[Mapping[str, np.ndarray]] = None,
    ) -> dict[str, np.ndarray]:
        """Every shard's parameters, in global order (see :meth:`Session.parameters`)."""
        wanted = self._each(
            lambda i, session: session.parameters(
                dtype, compress, out=_subset(out, self.placement.on_shard(i))
            )
        )
        merged = {name: value for shard in wanted for name, value in shard.items()}
        return {name: merged[name] for name in self.placement.parameters if name in merged}

    def route(self, tensors: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Per shard, the tensors (gradients ``P``, ``k/P``, ``P.indices``/``P.values``, or
        parameters) whose parameter it holds, in the given order."""
        routed: list[dict[str, Any]] = [{} for _ in self.sessions]
        for name, value in tensors.items():
            parameter = _parameter_of(name, self.placement.tensors)
            if parameter is None:
                raise ValueError(f"tensor {name!r}: no parameter of this sharded session is named so")
            routed[self.placement.tensors[parameter]][name] = value
        return routed

    # MARK: steps

    def step(
        self,
        gradients: Any = None,
        *,
        loss: Any = None,
        term_weights: Optional[Sequence[float]] = None,
        grad_scale: Optional[float] = None,
        sparse: Optional[Mapping[Any, Any]] = None,
        dtype: str = "f32",
        compress: Compress = False,
        return_: str = "params",
        response_dtype: str = "f32",
        metadata: Optional[Mapping[str, Any]] = None,
        out: Optional[Mapping[str, np.ndarray]] = None,
        part_bytes: int = parts.DEFAULT_PART_BYTES,
    ) -> tuple[Optional[dict[str, np.ndarray]], dict[str, Any]]:
        """One step over every shard; arguments and answer as :meth:`Session.step` (the answer's
        ``update_norm`` combines the shards' in shard order, so its last bits may differ from one
        daemon's).

        Raises:
            ShardsDisagree: some shards applied the step and others could not be brought to it
                after :attr:`attempts` rounds; retrying ``step`` with the same arguments resumes.
            OptimizerdError: every shard refused the step (e.g. :class:`Unprocessable`,
                :class:`InsufficientStorage`); nothing was applied anywhere.
        """
        tensors, meta = step_request(gradients, loss, term_weights, grad_scale, sparse, metadata)
        params = {"return": return_, "dtype": str(response_dtype).lower()}
        digest = _request_digest(tensors, meta, dtype, return_)
        if self._pending is not None and self._pending[1] == digest:
            # The same step again after ShardsDisagree: finish it with the same scalars.
            number, _, splits, scalars = self._pending
        else:
            if self._pending is not None:
                self.sync()  # raises ShardsDisagree while the shards differ
            number = self.last_step + 1
            splits = self.split_shards(tensors, dtype, part_bytes)
            try:
                scalars = self.fold(self.stage_shards(number, splits, dtype=dtype, compress=compress), meta)
                totals = self.momo_totals(number, scalars, splits)
            except Exception:
                # Nothing is committed anywhere: drop what some shards staged, so that the next
                # step (other gradients under the same number) is not refused as a conflict.
                self._each(lambda _, session: parts.drop(session, number), self.holding())
                raise
            if totals is not None:
                scalars["momo_totals"] = totals
        self._pending = (number, digest, splits, scalars)
        try:
            answers = self.commit_shards(
                number, scalars, splits, params=params, out=out, dtype=dtype, compress=compress
            )
        except OptimizerdError as error:
            if error.status is not None:
                self._pending = None  # refused by every shard: nothing was applied
            raise
        self._pending = None
        arrays, telemetry = self.merge(answers)
        self.last_step = int(telemetry["step"])
        return (None if return_ == "none" else arrays), telemetry

    # MARK: checkpoints

    def checkpoint(self, compress: Compress = False) -> ShardedCheckpoint:
        """Every shard's checkpoint (one file each) with the placement; see
        :class:`~optimizerd.sharded_checkpoint.ShardedCheckpoint` (``save`` / ``load``)."""
        files = self._each(lambda _, session: session.checkpoint(compress))
        return ShardedCheckpoint(self.placement.to_json(), list(files))

    def restore(self, checkpoint: ShardedCheckpoint | Mapping[str, Any] | str) -> dict[str, Any]:
        """Restores a sharded checkpoint (its ``as_dict()``, or the folder it was saved to), made over any number
        of daemons, onto these shards: each tensor with its state goes to the shard this
        session's placement gives it (placed anew when the checkpoint has other parameters)."""
        if isinstance(checkpoint, Mapping):
            checkpoint = ShardedCheckpoint(checkpoint["placement"], list(checkpoint["shards"]))
        elif not isinstance(checkpoint, ShardedCheckpoint):
            checkpoint = ShardedCheckpoint.load(checkpoint)
        source = Placement.from_json(checkpoint.placement)
        if set(source.parameters) != set(self.placement.parameters):
            self.placement.parameters, self.placement.tensors, self.placement.sizes = [], {}, {}
            self.placement.place({name: source.sizes[name] for name in source.parameters})
        files = reshard(checkpoint, self.placement)
        self._each(lambda i, session: session.restore(files[i]))
        self.placement.hyperparameters = dict(source.hyperparameters)
        self.placement.groups = list(source.groups)
        return self.summary()

    def _require_agreement(self, steps: Mapping[int, int]) -> None:
        """Raises :class:`ShardsDisagree` unless the shards holding parameters are at one step."""
        holding = set(self.holding())
        if len({step for shard, step in steps.items() if shard in holding}) > 1:
            raise ShardsDisagree(f"the shards are at different steps: {dict(steps)}", steps)


def _parameter_of(name: str, placed: Mapping[str, int]) -> Optional[str]:
    """The parameter a tensor name refers to (``P``, ``k/P``, ``P.indices``, ``P.values``)."""
    candidates = [name]
    head, slash, tail = name.partition("/")
    if slash and head.isdigit():
        candidates.append(tail)
    for candidate in list(candidates):
        for suffix in (".indices", ".values"):
            if candidate.endswith(suffix):
                candidates.append(candidate[: -len(suffix)])
    return next((candidate for candidate in candidates if candidate in placed), None)

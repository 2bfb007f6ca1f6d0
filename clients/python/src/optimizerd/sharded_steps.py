"""The pieces of a sharded step (DESIGN §9), usable shard by shard: stage parts on some shards,
fold every shard's partial statistics into the global scalars, commit on some shards and bring
each to the step, merge the answers. :class:`~optimizerd.ShardedSession` runs them all in one
``step``; a coordinator driving only its own shards (e.g. one ``torch.distributed`` rank) calls
them with ``shards=[...]`` and exchanges the partial sums itself."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from . import parts
from .errors import ConnectionFailed, NotFound, OptimizerdError, Unprocessable
from .session import Compress, Session, parse_metadata

if TYPE_CHECKING:  # pragma: no cover
    from .placement import Placement

__all__ = ["ShardedSteps", "ShardsDisagree", "Sums"]

Sums = dict[str, tuple[Optional[float], bool]]


class ShardsDisagree(RuntimeError):
    """The shards could not be brought to the same step; ``steps`` maps shard index → step."""

    def __init__(self, message: str, steps: Mapping[int, Optional[int]]) -> None:
        super().__init__(message)
        self.steps = dict(steps)


class ShardedSteps:
    """The step pieces of :class:`~optimizerd.ShardedSession` (a mixin: it uses the session's
    ``sessions``, ``placement``, ``attempts``, ``optimizer`` and ``_each``)."""

    sessions: list[Session]
    placement: Placement
    attempts: int
    optimizer: str
    _each: Callable[..., list[Any]]
    route: Callable[[Mapping[str, Any]], list[dict[str, Any]]]

    def split_shards(
        self, tensors: Mapping[str, Any], dtype: str = "f32", part_bytes: int = parts.DEFAULT_PART_BYTES
    ) -> list[list[dict[str, Any]]]:
        """Per shard, its tensors of a step (:meth:`route`) in parts under ``part_bytes`` and the
        shard's body limit; a shard holding parameters but no gradient of this step gets one
        empty part (so that it commits the step too), a shard holding none gets no parts."""
        holding = set(self.holding())
        return [
            parts.split(routed, parts.body_limit(self.sessions[i], part_bytes), dtype)
            if routed
            else ([{}] if i in holding else [])
            for i, routed in enumerate(self.route(tensors))
        ]

    def holding(self) -> list[int]:
        """The shards that hold parameters: the ones that step (a shard placed nothing, when
        there are fewer tensors than shards, keeps step 0 and takes no part)."""
        return sorted(set(self.placement.tensors.values()))

    def stage_shards(
        self,
        step: int,
        splits: Sequence[Sequence[Mapping[str, Any]]],
        *,
        dtype: str,
        compress: Compress,
        shards: Optional[Sequence[int]] = None,
    ) -> Sums:
        """Stages each shard's parts of ``step`` (``splits[i]``, for the given shards, default
        :meth:`holding`) in parallel; returns every staged tensor's ``(sum_of_squares, finite)``."""
        shards = self.holding() if shards is None else shards
        results = self._each(
            lambda i, session: parts.stage(session, step, splits[i], dtype=dtype, compress=compress), shards
        )
        return {name: value for sums in results for name, value in sums.items()}

    def fold(
        self, sums: Mapping[str, tuple[Optional[float], bool]], meta: Mapping[str, str]
    ) -> dict[str, Any]:
        """The commit's global scalars from every shard's partial statistics, folded in the
        global parameter order (:func:`parts.commit_scalars`)."""
        terms = int(self.placement.hyperparameters.get("terms", 1) or 1) if self.optimizer == "mtadam" else 1
        return parts.commit_scalars(
            sums,
            self.placement.parameters,
            terms=terms,
            optimizer=self.optimizer,
            loss=meta.get("loss"),
            term_weights=meta.get("term_weights"),
            grad_scale=meta.get("grad_scale"),
        )

    def momo_totals(
        self,
        step: int,
        scalars: Mapping[str, Any],
        splits: Sequence[Sequence[Mapping[str, Any]]],
        shards: Optional[Sequence[int]] = None,
    ) -> Optional[dict[str, Any]]:
        """MoMo/MoMo-Adam over several shards: the second round of global sums. Asks the given
        shards (default :meth:`holding`) for their step size sums of the staged ``step``
        (:meth:`Session.momo_sums`) and folds them in the global parameter order
        (:func:`parts.fold_momo_totals`), the commit's ``momo_totals``. ``None`` when not needed:
        another optimizer, one shard holding every parameter (it folds its own), or a skipped
        step (``nonfinite`` in ``scalars``)."""
        shards = self.holding() if shards is None else list(shards)
        if self.optimizer not in parts.COUPLED or len(self.holding()) < 2 or "nonfinite" in scalars:
            return None
        answers = self._each(
            lambda i, session: session.momo_sums(step, {**scalars, "parts": len(splits[i])}), shards
        )
        return parts.fold_momo_totals(
            {name: sums for answer in answers for name, sums in answer.items()}, self.placement.parameters
        )

    def commit_shards(
        self,
        step: int,
        scalars: Mapping[str, Any],
        splits: Sequence[Sequence[Mapping[str, Any]]],
        *,
        params: Mapping[str, Any],
        out: Optional[Mapping[str, np.ndarray]] = None,
        dtype: str = "f32",
        compress: Compress = False,
        shards: Optional[Sequence[int]] = None,
    ) -> list[tuple[tuple[dict[str, np.ndarray], dict[str, str]], Any]]:
        """Commits ``step`` on the given shards (default :meth:`holding`) in parallel and brings each to it:
        a shard that lost its staged parts (a restart) gets them again, a shard that already
        applied the step answers it again. A step every shard refused (an error answer, e.g.
        ``nonfinite: reject`` or a memory budget) is dropped from every shard and raised. Returns each shard's ``(arrays, raw metadata),
        answer``."""
        indices = self.holding() if shards is None else list(shards)

        def commit(index: int, session: Session) -> Any:
            reader = session._tensor_reader(_subset(out, self.placement.on_shard(index)))
            failure: Optional[BaseException] = None
            for _ in range(max(1, self.attempts)):
                try:
                    return parts.commit(
                        session,
                        step,
                        scalars,
                        len(splits[index]),
                        params=params,
                        reader=reader,
                        compress=compress,
                    )
                except Unprocessable as error:
                    if error.kind != "missing-parts" and "missing parts" not in error.detail:
                        raise
                    failure = error
                except ConnectionFailed as error:
                    failure = error
                    continue
                try:  # the shard restarted and lost what was staged: stage it again
                    parts.stage(session, step, splits[index], dtype=dtype, compress=compress)
                except ConnectionFailed as error:
                    failure = error
            raise failure or RuntimeError("unreachable")

        futures = {index: self._pool.submit(commit, index, self.sessions[index]) for index in indices}
        answers: dict[int, Any] = {}
        errors: dict[int, BaseException] = {}
        for index, future in futures.items():
            try:
                answers[index] = future.result()
            except Exception as error:  # noqa: BLE001 - sorted out below
                errors[index] = error
        if not errors:
            return [answers[index] for index in indices]
        refused = [e for e in errors.values() if isinstance(e, OptimizerdError) and e.status is not None]
        if not answers and len(refused) == len(errors):
            for index in indices:  # nothing applied anywhere: give the staged memory back
                parts.drop(self.sessions[index], step)
            raise refused[0]
        steps = {index: parts._step_of(self.sessions[index]) for index in indices}
        described = ", ".join(
            f"shard {i} ({self.sessions[i].client.url}): {type(e).__name__}: {e}" for i, e in errors.items()
        )
        raise ShardsDisagree(
            f"step {step} was applied on shards {sorted(answers)} but not on {sorted(errors)} "
            f"({described}); the shards are at steps {steps}. Call step() again with the same "
            "gradients to finish it.",
            steps,
        ) from next(iter(errors.values()))

    def merge(self, answers: Sequence[Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The shards' commit answers as one step's: arrays in global order, the first shard's
        telemetry (its global values are every shard's) with ``update_norm`` combined and MTAdam's
        per-parameter ``term_weights`` merged; ``retry`` when any shard answered a retry."""
        arrays: dict[str, np.ndarray] = {}
        telemetry: list[dict[str, Any]] = []
        retry = False
        for (values, raw), answer in answers:
            arrays.update(values or {})
            telemetry.append(parse_metadata(raw))
            retry = retry or answer.headers.get("Optimizerd-Retry", "false").lower() == "true"
        order = {name: i for i, name in enumerate(self.placement.parameters)}
        arrays = dict(sorted(arrays.items(), key=lambda item: order.get(item[0], len(order))))
        return arrays, merge_telemetry(telemetry, retry)


def merge_telemetry(telemetry: Sequence[Mapping[str, Any]], retry: bool) -> dict[str, Any]:
    """One step's telemetry from its shards' (in shard order): the first shard's (its global
    values are every shard's) with ``update_norm`` combined, MTAdam's per-parameter
    ``term_weights`` merged, and ``retry`` as given."""
    merged = dict(telemetry[0])
    if all("update_norm" in t for t in telemetry):
        merged["update_norm"] = math.sqrt(sum(float(t["update_norm"]) ** 2 for t in telemetry))
    if isinstance(merged.get("term_weights"), dict):
        merged["term_weights"] = {k: v for t in telemetry for k, v in (t.get("term_weights") or {}).items()}
    merged["retry"] = retry
    return merged


def _subset(out: Optional[Mapping[str, np.ndarray]], names: Sequence[str]) -> Optional[dict[str, np.ndarray]]:
    return None if out is None else {name: out[name] for name in names if name in out}


def _quietly(action: Callable[[], Any]) -> None:
    try:
        action()
    except (NotFound, ConnectionFailed):
        pass

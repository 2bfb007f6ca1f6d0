"""Steps in parts: a step (or a parameter upload) too large for one request is sent in several.

The daemon stages each part and answers each tensor's float64 sum of squares; this module folds
them in the daemon's contract order (loss terms first, then the session's parameter order; each
tensor adds ``s * u * u`` with ``u = 1 / grad_scale``), so the commit's global scalars are the
ones a one-request step would compute, bit for bit (Python floats are IEEE doubles and ``json``
writes them exactly). See DESIGN §9 and ``StepScalars`` in the daemon.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from . import wire
from .body import Body, build_body
from .errors import NotFound, OptimizerdError, StepConflict, Unprocessable

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

__all__ = [
    "DEFAULT_PART_BYTES",
    "MOMO_SUMS",
    "body_limit",
    "split",
    "commit_scalars",
    "check_complete",
    "fold_momo_totals",
    "send_step",
    "stage",
    "commit",
]

#: The parts of a sharded step are at most this large unless the daemon's body limit is smaller.
#: (A one-daemon ``Session.step`` sends one request up to the daemon's limit instead: a step in
#: parts costs the daemon more than one request of the same bytes.)
DEFAULT_PART_BYTES = 64 << 20
# Room kept in each part for the safetensors header (per tensor: name, dtype, shape, offsets).
_HEADER_BYTES_PER_TENSOR = 160
_HEADER_BYTES = 512
#: The optimizers whose step size couples every tensor (MoMo, MoMo-Adam).
COUPLED = ("momo", "momo_adam")
#: The members of a tensor's MoMo step size sums and of their fold (``momo_totals``).
MOMO_SUMS = ("parameter_dot_average", "gamma", "average_squared_norm")


def body_limit(session: Session, part_bytes: Optional[int]) -> int:
    """The largest body to send: ``part_bytes``, or the daemon's ``max_body_bytes`` from
    ``GET /v1/limits`` when smaller (or when ``part_bytes`` is ``None``; no limit at all for a
    daemon that advertises none)."""
    advertised = daemon_body_limit(session)
    if part_bytes is None:
        return advertised or sys.maxsize
    return min(int(part_bytes), advertised) if advertised else int(part_bytes)


def daemon_body_limit(session: Session) -> Optional[int]:
    """The daemon's ``max_body_bytes`` from ``GET /v1/limits``, learned once per client; None for
    a daemon without the route, or a server that answers it with something other than a JSON
    object (no advertised limit)."""
    client = session.client
    limits = getattr(client, "_limits", None)
    if limits is None:
        try:
            limits = client.transport.request("GET", "/v1/limits").json()
        except (NotFound, ValueError):  # ValueError: the answer is not JSON
            limits = {}
        client._limits = limits if isinstance(limits, dict) else {}
        limits = client._limits
    advertised = limits.get("max_body_bytes")
    return int(advertised) if advertised else None


def split(tensors: Mapping[str, Any], limit: int, dtype: str) -> list[dict[str, Any]]:
    """Whole tensors grouped in order into parts whose bodies stay under ``limit`` bytes; a
    sparse pair (``P.indices``, ``P.values``) stays in one part. A tensor that does not fit alone
    gets a part of its own, which the daemon refuses (413, :class:`PayloadTooLarge`): tensors are
    never split."""
    groups: dict[str, dict[str, Any]] = {}
    for name, value in tensors.items():
        base = name
        for suffix in (".indices", ".values"):
            if (
                name.endswith(suffix)
                and (name[: -len(suffix)] + (".values" if suffix == ".indices" else ".indices")) in tensors
            ):
                base = name[: -len(suffix)]
        groups.setdefault(base, {})[name] = value
    float_bytes = 2 if wire.wire_dtype_tag(dtype) in ("F16", "BF16") else 4
    parts: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    size = _HEADER_BYTES
    for group in groups.values():
        cost = sum(
            _wire_bytes(value, float_bytes) + _HEADER_BYTES_PER_TENSOR + 2 * len(n)
            for n, value in group.items()
        )
        if current and size + cost > limit:
            parts.append(current)
            current, size = {}, _HEADER_BYTES
        current.update(group)
        size += cost
    if current or not parts:
        parts.append(current)
    return parts


def _wire_bytes(value: Any, float_bytes: int) -> int:
    array = np.asarray(value)
    return int(array.size) * (array.dtype.itemsize if array.dtype.kind in "iu" else float_bytes)


def commit_scalars(
    sums: Mapping[str, tuple[Optional[float], bool]],
    parameter_order: Sequence[str],
    *,
    terms: int,
    optimizer: Optional[str],
    loss: Optional[str],
    term_weights: Optional[str],
    grad_scale: Optional[str],
) -> dict[str, Any]:
    """The commit body: the parts' per-tensor sums folded in the contract order, and the step's
    scalars (given as the ``__metadata__`` strings a one-request step would carry)."""
    index = {name: i for i, name in enumerate(parameter_order)}

    def position(name: str) -> tuple[int, int]:
        if name in index:
            return 0, index[name]
        term, _, parameter = name.partition("/")
        return int(term), index[parameter]

    check_complete(sums, parameter_order, terms=terms, optimizer=optimizer)
    unscale = 1.0 / float(grad_scale) if grad_scale is not None else 1.0
    norms = [0.0] * terms
    nonfinite = None
    for name in sorted(sums, key=position):
        total, finite = sums[name]
        term, _ = position(name)
        if not finite and nonfinite is None:
            nonfinite = name
        norms[term] += (total if total is not None else 0.0) * unscale * unscale
    # A grad_scale far below float32's range can make a term's folded norm +inf in float64: sent
    # as the string the daemon reads ("Infinity"; bare JSON has no such number), so that the shards
    # skip or refuse the step as one daemon does.
    body: dict[str, Any] = {"term_squared_norms": [_json_number(norm) for norm in norms]}
    if loss is not None:
        value = json.loads(loss) if loss.lstrip().startswith("[") else float(loss)
        value = float(sum(value)) if isinstance(value, list) else value
        if nonfinite is None and optimizer in COUPLED and not math.isfinite(value):
            nonfinite = "loss"
        body["loss"] = _json_number(value)
    if nonfinite is not None:
        body["nonfinite"] = nonfinite
    if term_weights is not None:
        body["term_weights"] = json.loads(term_weights)
    if grad_scale is not None:
        body["grad_scale"] = float(grad_scale)
    return body


def check_complete(
    names: Any, parameter_order: Sequence[str], *, terms: int, optimizer: Optional[str]
) -> None:
    """Raises the daemon's 422 ``missing-tensor`` for a step of MTAdam, MoMo or MoMo-Adam that
    lacks a parameter's gradient (of some loss term): those optimizers need every one in each
    step. A commit refused so on one shard of a sharded session would be applied on the others,
    so the client refuses it before anything is committed (``names``: the staged tensor names,
    ``P`` or ``k/P``)."""
    if optimizer != "mtadam" and optimizer not in COUPLED:
        return
    given = set(names)
    for term in range(terms):
        for parameter in parameter_order:
            name = f"{term}/{parameter}"
            if name in given or (term == 0 and parameter in given):
                continue
            needs = "and every term " if optimizer == "mtadam" else ""
            raise Unprocessable(
                422,
                "Unprocessable Entity",
                f'tensor "{name if optimizer == "mtadam" else parameter}": {optimizer} needs the '
                f"gradient of every parameter {needs}in each step",
                "urn:optimizerd:problem:missing-tensor",
            )


def fold_momo_totals(sums: Mapping[str, Mapping[str, Any]], parameter_order: Sequence[str]) -> dict[str, Any]:
    """The commit's ``momo_totals`` of a ``momo``/``momo_adam`` step sharded over daemons: each
    parameter's sums (every daemon's :meth:`Session.momo_sums <optimizerd.Session.momo_sums>`
    answer, merged) added member by member from 0.0 in ``parameter_order``, the session's global
    parameter order. That is the order a daemon holding every tensor folds its own in, so every
    shard computes its step size bit for bit. Non-finite totals are written as the strings the
    daemon reads (``"NaN"``, ``"Infinity"``, ``"-Infinity"``).

    Raises:
        ValueError: a parameter of the order has no sums, or sums name a parameter not in it.
    """
    missing = [name for name in parameter_order if name not in sums]
    unknown = sorted(set(sums) - set(parameter_order))
    if missing or unknown:
        raise ValueError(
            f"momo sums must cover exactly the session's parameters: missing {missing[:5]}, unknown {unknown[:5]}"
        )
    totals = dict.fromkeys(MOMO_SUMS, 0.0)
    for name in parameter_order:
        for key in MOMO_SUMS:
            totals[key] += float(sums[name][key])
    return {key: _json_number(value) for key, value in totals.items()}


def _json_number(value: float) -> Any:
    """``value``, or the string the daemon reads for a non-finite one."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def send_step(
    session: Session,
    step: int,
    parts: Sequence[Mapping[str, Any]],
    meta: Mapping[str, str],
    *,
    dtype: str,
    params: Mapping[str, Any],
    reader: Any,
    compress: Any,
) -> Any:
    """PUTs every part of ``step`` (ids ``p0``, ``p1``, ...; a retried part changes nothing), then
    POSTs the commit (a retried commit answers the applied step again). Returns what ``reader``
    made of the commit's answer (shaped like a one-request step's) and the answer.

    A step the daemon refuses (a part or the commit) is dropped from it, so that the next step can
    stage other tensors under the same number; parts of ``step`` staged with other tensors before
    (an attempt that never committed) are dropped and staged anew; when the daemon already applied
    ``step`` (its answer was lost), the commit answers it again."""
    try:
        try:
            sums = stage(session, step, parts, dtype=dtype, compress=compress)
        except StepConflict as conflict:
            if conflict.kind != "part-conflict":
                raise
            # Parts of this step staged with other tensors by an earlier attempt that never
            # committed (a trainer that restarted): this session's writer starts the step again.
            drop(session, step)
            sums = stage(session, step, parts, dtype=dtype, compress=compress)
    except StepConflict:
        if _step_of(session) != step:
            raise
        # Applied already: any commit of it answers that step from the daemon's retry path.
        order, terms = _layout(session)
        scalars = commit_scalars(
            {}, order, terms=terms, optimizer=None, loss=None, term_weights=None, grad_scale=None
        )
        return commit(session, step, scalars, len(parts), params=params, reader=reader, compress=compress)
    except OptimizerdError as error:
        if error.status is not None:
            drop(session, step)
        raise
    try:
        order, terms = _layout(session)
        missing = [name for name in sums if name not in order and name.partition("/")[2] not in order]
        if missing:
            order, terms = _layout(session, refresh=True)
        scalars = commit_scalars(
            sums,
            order,
            terms=terms,
            optimizer=session.info.get("optimizer"),
            loss=meta.get("loss"),
            term_weights=meta.get("term_weights"),
            grad_scale=meta.get("grad_scale"),
        )
        return commit(session, step, scalars, len(parts), params=params, reader=reader, compress=compress)
    except OptimizerdError as error:
        if error.status is not None and not isinstance(error, StepConflict):
            drop(session, step)
        raise


def drop(session: Session, step: int) -> None:
    """Drops what is staged for ``step`` on ``session``'s daemon, quietly (best effort: nothing
    staged, or no answer, is fine; the daemon also drops it after ``--staged-step-ttl``)."""
    try:
        session._request("DELETE", f"/steps/{step}")
    except OptimizerdError:
        pass


def _step_of(session: Session) -> Optional[int]:
    """The daemon's step of ``session`` (:meth:`Session.sync`), or ``None`` when it cannot be asked."""
    try:
        return session.sync()
    except Exception:  # noqa: BLE001 - unreachable daemon: its step is unknown
        return None


def stage(
    session: Session, step: int, parts: Sequence[Mapping[str, Any]], *, dtype: str, compress: Any
) -> dict[str, tuple[Optional[float], bool]]:
    """PUTs ``parts`` as the parts ``p0``, ``p1``, ... of ``step`` (a part sent again changes
    nothing) and returns their per-tensor ``(sum_of_squares, finite)``."""
    from .session import _binary_request, _read_json  # noqa: PLC0415 - session imports this module

    sums: dict[str, tuple[Optional[float], bool]] = {}
    for number, part in enumerate(parts):
        answer, _ = session._exchange(
            "PUT",
            f"/steps/{step}/parts/p{number}",
            _read_json,
            **_binary_request(build_body(part, dtype=dtype), compress),
        )
        for name, statistics in answer["tensors"].items():
            sums[name] = (statistics.get("sum_of_squares"), bool(statistics["finite"]))
    return sums


def commit(
    session: Session,
    step: int,
    scalars: Mapping[str, Any],
    parts: int,
    *,
    params: Mapping[str, Any],
    reader: Any,
    compress: Any,
) -> Any:
    """POSTs the commit of ``step`` with the global ``scalars`` (:func:`commit_scalars`) and the
    count of ``parts`` staged on this daemon; a commit of the step already applied answers it
    again. Returns what ``reader`` made of the answer, and the answer."""
    from .session import _accept  # noqa: PLC0415 - session imports this module

    body = Body(json.dumps({**scalars, "parts": int(parts)}).encode(), [])
    headers = {"Content-Type": "application/json", **_accept(compress)}
    return session._exchange(
        "POST", f"/steps/{step}/commit", reader, body=body, headers=headers, params=params
    )


def _layout(session: Session, refresh: bool = False) -> tuple[list[str], int]:
    """The session's parameter order and loss-term count, from its summary (cached)."""
    cached = getattr(session, "_layout_cache", None)
    if cached is None or refresh:
        summary = session.summary()
        hyperparameters = summary.get("hyperparameters") or {}
        terms = int(hyperparameters.get("terms", 1)) if summary.get("optimizer") == "mtadam" else 1
        cached = ([parameter["name"] for parameter in summary.get("parameters", [])], terms)
        session._layout_cache = cached
    return cached

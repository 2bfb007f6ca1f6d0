"""An ``optax`` gradient transformation whose step runs on an optimizerd daemon.

This is the only module that imports JAX and optax::

    import optax
    from optimizerd.optax import remote

    tx = remote("http://127.0.0.1:8080", optimizer="adamw", lr=1e-3)
    state = tx.init(params)                       # creates the session, uploads the parameters
    updates, state = tx.update(grads, state, params)          # MoMo: value=loss
    params = optax.apply_updates(params, updates)

The daemon holds the parameters (float32) and the optimizer state; the optax state is only a
handle to the session and its step number. ``update`` sends the gradients, receives the daemon's
new parameters and returns ``updates = new − params`` (computed in the parameters' dtype, by
XLA), so ``optax.apply_updates`` lands on the daemon's values. ``p + (new − p)`` is exactly
``new`` whenever ``new − p`` is exact in float32 (always when ``new`` and ``p`` are within a factor
two of each other, Sterbenz); otherwise (a coordinate crossing or leaving zero) it is within one
rounding of ``new``. Errors never accumulate: the next update is again taken relative to the
caller's parameters, and the daemon's trajectory does not depend on them. :func:`parameters`
gives the daemon's values bit for bit. (XLA on CPU flushes subnormal floats to zero, so a
parameter below 1.2e-38 in magnitude lands on 0.)

``update`` and ``init`` also run inside ``jax.jit``: there the request is an ordered
``io_callback`` (an error raised there reaches the caller as a ``jax.errors.JaxRuntimeError``
carrying its message). Parameters are named by their pytree key paths (``layers.0.w``), so the
session's summary, history and dashboard show the model's own names.

Each ``update`` is a step on the daemon, made when it is called: unlike optax's transformations it
has a side effect, which optax's combinators do not expect. ``optax.chain`` works (it calls each
``update`` once and keeps its result), but wrappers that call the inner ``update`` and then may
discard its result and keep the old state do not: ``optax.MultiSteps`` (gradient accumulation)
calls it on every micro-step and keeps its result every k-th only, so the daemon steps on every
micro-step with a partial sum, and the next call fails (its state is behind the daemon's). For
gradient accumulation, accumulate the gradients yourself (average the k micro-batches' gradients,
e.g. in a ``jax.lax.scan``) and call ``update`` once every k micro-steps.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import io_callback

from .client import Client
from .session import Session

__all__ = ["remote", "RemoteState", "session", "parameters"]

_NEEDS_LOSS = ("momo", "momo_adam")
_sessions: dict[int, _Link] = {}
_handles = itertools.count(1)


class RemoteState(NamedTuple):
    """The optax state of :func:`remote`: which session (a handle valid in this process) and the
    step the daemon was at when this state was returned. Updating from an older state is an error:
    the daemon cannot step back."""

    handle: jax.Array
    step: jax.Array


class _Link:
    """A session and the parameter layout it was initialised with."""

    def __init__(self, session: Session, names: list[str], treedef: Any) -> None:
        self.session = session
        self.names = names
        self.treedef = treedef


def remote(
    url: Optional[str] = None,
    optimizer: str = "adam",
    *,
    client: Optional[Client] = None,
    session: Union[Session, str, None] = None,
    token: Optional[str] = None,
    admin_token: Optional[str] = None,
    name: Optional[str] = None,
    wire_dtype: str = "f32",
    timeout: Union[float, tuple[float, float]] = 60.0,
    retries: int = 5,
    backoff: float = 0.25,
    **hyperparameters: Any,
) -> optax.GradientTransformationExtraArgs:
    """An optax transformation that runs ``optimizer`` on the daemon at ``url``.

    Args:
        url: the daemon's URL (not needed with ``client`` or a :class:`~optimizerd.Session`).
        optimizer: ``adam``, ``adamw``, ``sgd``, ``adafactor``, ``momo``, ``momo_adam`` or
            ``acclip`` (MTAdam needs one gradient per loss term: use :class:`~optimizerd.Session`).
        client: a :class:`~optimizerd.Client` to use instead of creating one.
        session: attach to an existing session (a :class:`~optimizerd.Session`, or an id with
            ``token``) instead of creating one at ``init``. ``init`` uploads the parameters only
            if the session has none; otherwise it resumes from the daemon's (see
            :func:`parameters`), which must have the same names and shapes.
        token, admin_token: the session's token (to attach by id), the daemon's admin token.
        name: a label for the new session.
        wire_dtype: dtype of the gradients on the wire (``f32``, ``bf16``, ``f16``).
        timeout, retries, backoff: passed to the :class:`~optimizerd.Client` this creates.
        **hyperparameters: the daemon's names (``lr``, ``betas``, ``eps``, ``weight_decay``, ...)
            and session options (``clip_grad_norm``, ``nonfinite``); a bad one is a
            :class:`~optimizerd.BadRequest` from ``init`` naming it.

    Returns:
        ``GradientTransformationExtraArgs``: ``update(grads, state, params, value=loss)``;
        ``value`` (the batch loss) is required by ``momo`` and ``momo_adam`` and recorded in the
        session's history for the others.
    """
    if optimizer == "mtadam":
        raise ValueError("mtadam needs one gradient per loss term: use optimizerd.Session.step")
    if isinstance(session, Session):
        client = client or session.client
    elif client is None:
        if not url:
            raise ValueError("remote() needs url=, client= or a Session")
        client = Client(url, admin_token=admin_token, timeout=timeout, retries=retries, backoff=backoff)

    def create(names: list[str], leaves: list[np.ndarray], treedef: Any) -> tuple[np.int32, np.int32]:
        if isinstance(session, Session):
            attached = session
        elif session is not None:
            attached = client.session(str(session), token)
        else:
            attached = client.create_session(optimizer, dict(hyperparameters), name=name)
        held = attached.summary().get("parameters", [])
        if held:
            _check_layout(held, names, leaves)
        else:
            arrays = {n: np.asarray(leaf, np.float32) for n, leaf in zip(names, leaves)}
            attached.upload_parameters(arrays)
        handle = next(_handles)
        _sessions[handle] = _Link(attached, names, treedef)
        return np.int32(handle), np.int32(attached.last_step)

    def init_fn(params: Any) -> RemoteState:
        paths, treedef = jax.tree_util.tree_flatten_with_path(params)
        names = _names(paths)
        leaves = [leaf for _, leaf in paths]
        for leaf_name, leaf in zip(names, leaves):
            if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
                raise TypeError(f"parameter {leaf_name!r}: expected floats, got {jnp.result_type(leaf)}")
        host = lambda *values: create(names, list(values), treedef)  # noqa: E731
        scalar = jax.ShapeDtypeStruct((), jnp.int32)
        if _traced(leaves):
            handle, step = io_callback(host, (scalar, scalar), *leaves, ordered=True)
        else:
            handle, step = host(*[np.asarray(leaf) for leaf in leaves])
        return RemoteState(jnp.asarray(handle, jnp.int32), jnp.asarray(step, jnp.int32))

    def step(has_loss: bool, handle: Any, at: Any, value: Any, *grads: np.ndarray) -> tuple[Any, ...]:
        link = _link(handle)
        if int(at) != link.session.last_step:
            raise ValueError(
                f"optimizerd.optax: this state is at step {int(at)} but session {link.session.id} "
                f"is at step {link.session.last_step}; the daemon cannot go back: update from the "
                "latest state (each update is a daemon step: wrappers that may drop an update's "
                "result, like optax.MultiSteps, do not work; to accumulate gradients, average them "
                "yourself and update every k micro-steps)"
            )
        gradients = {n: np.asarray(g, np.float32) for n, g in zip(link.names, grads)}
        loss = float(value) if has_loss else None
        new, _ = link.session.step(gradients, loss=loss, dtype=wire_dtype)
        assert new is not None
        missing = [n for n in link.names if n not in new]
        if missing:  # an optimizer that skipped tensors: their values as the daemon holds them
            new.update(link.session.parameters())
        return (*(new[n] for n in link.names), np.int32(link.session.last_step))

    def update_fn(grads: Any, state: RemoteState, params: Any = None, value: Any = None, **extra: Any):
        del extra  # other transformations' extra arguments (optax chains pass them to all)
        if params is None:
            raise ValueError("optimizerd.optax.remote: update needs params (updates are new − params)")
        if optimizer in _NEEDS_LOSS and value is None:
            raise ValueError(f"{optimizer} needs the batch loss: tx.update(grads, state, params, value=loss)")
        leaves, treedef = jax.tree_util.tree_flatten(grads)
        if treedef != jax.tree_util.tree_structure(params):
            raise ValueError(
                f"grads and params differ in structure: {treedef} vs {jax.tree_util.tree_structure(params)}"
            )
        loss = jnp.asarray(0.0 if value is None else value, jnp.float32)
        arguments = (value is not None, state.handle, state.step, loss, *leaves)
        shapes = [jax.ShapeDtypeStruct(jnp.shape(leaf), jnp.float32) for leaf in leaves]
        shapes.append(jax.ShapeDtypeStruct((), jnp.int32))
        if _traced(list(arguments[1:])):
            host = functools.partial(step, arguments[0])
            *new, at = io_callback(host, tuple(shapes), *arguments[1:], ordered=True)
        else:
            *new, at = step(arguments[0], int(state.handle), int(state.step), value, *map(np.asarray, leaves))
        new_params = jax.tree_util.tree_unflatten(treedef, new)
        updates = jax.tree_util.tree_map(
            lambda n, p: jnp.asarray(n).astype(jnp.result_type(p)) - p, new_params, params
        )
        return updates, RemoteState(state.handle, jnp.asarray(at, jnp.int32))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def session(state: RemoteState) -> Session:
    """The :class:`~optimizerd.Session` behind a :func:`remote` state: its summary, history
    (MoMo's step size τ per step), ``patch`` (change ``lr`` mid-run), checkpoint and delete."""
    return _link(state.handle).session


def parameters(state: RemoteState) -> Any:
    """The daemon's current parameters, bit for bit, as a pytree of float32 arrays shaped like the
    parameters ``init`` was given."""
    link = _link(state.handle)
    held = link.session.parameters()
    return jax.tree_util.tree_unflatten(link.treedef, [jnp.asarray(held[n]) for n in link.names])


# MARK: helpers


def _link(handle: Any) -> _Link:
    link = _sessions.get(int(handle))
    if link is None:
        raise ValueError(f"optimizerd.optax: no session with handle {int(handle)} in this process")
    return link


def _traced(values: list[Any]) -> bool:
    return any(isinstance(value, jax.core.Tracer) for value in values)


def _names(paths: list[tuple[Any, Any]]) -> list[str]:
    """Stable, readable names from key paths: ``{"layers": [{"w": ...}]}`` → ``layers.0.w``."""
    names = [".".join(_key_text(key) for key in path) or "params" for path, _ in paths]
    seen: set[str] = set()
    for leaf_name in names:
        if leaf_name in seen:
            raise ValueError(f"two parameters would both be named {leaf_name!r}: rename a pytree key")
        seen.add(leaf_name)
    return names


def _key_text(key: Any) -> str:
    for attribute in ("key", "idx", "name"):  # DictKey / FlattenedIndexKey, SequenceKey, GetAttrKey
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def _check_layout(held: list[dict[str, Any]], names: list[str], leaves: list[Any]) -> None:
    """A session being resumed must hold exactly these parameters, with these shapes."""
    shapes = {entry["name"]: tuple(entry["shape"]) for entry in held}
    for leaf_name, leaf in zip(names, leaves):
        if leaf_name not in shapes:
            raise ValueError(f"the session has no parameter {leaf_name!r} (it holds {sorted(shapes)})")
        if shapes[leaf_name] != tuple(np.shape(leaf)):
            raise ValueError(
                f"parameter {leaf_name!r}: the session holds shape {list(shapes[leaf_name])}, "
                f"got {list(np.shape(leaf))}"
            )
    extra = sorted(set(shapes) - set(names))
    if extra:
        raise ValueError(f"the session holds parameters these params lack: {extra}")

"""A drop-in ``torch.optim.Optimizer`` whose step runs on an optimizerd daemon.

This is the only module that imports torch. Offloading the optimizer is a two-line change::

    from optimizerd.torch import RemoteOptimizer

    opt = RemoteOptimizer(model.named_parameters(), url="http://127.0.0.1:8080", optimizer="adam", lr=1e-3)
    for x, y in batches:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()          # MoMo: opt.step(loss=loss)

The daemon keeps the optimizer state (moments, step counts) and a float32 master copy of the
parameters; ``step()`` sends every ``p.grad`` (streamed from the gradients' own memory) and reads
the returned values straight into the parameters' memory (float32 CPU parameters; others are
copied in).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch.optim import Optimizer

from .backward_stream import BackwardStream
from .client import SESSION_OPTIONS, Client
from .delayed_steps import DelayedSteps
from .session import Compress, Session, parse_metadata
from .sharded import ShardedSession
from .sharded_client import ShardedClient
from .torch_groups import HyperparameterGroups
from .torch_support import (
    _check_complex,
    _checkpoint_for,
    _closure_and_loss,
    _copy_into,
    _effective_hyperparameters,
    _jsonable,
    _memory,
    _normalize_groups,
    _plain,
    _to_numpy,
    _zeros_like,
)

__all__ = ["RemoteOptimizer"]

# torch's implementation switches: they select a kernel, not the maths, so they are accepted and
# ignored (the daemon has its own kernels).
_IMPLEMENTATION_FLAGS = ("foreach", "fused", "capturable", "differentiable")
_NEEDS_EVERY_PARAMETER = ("momo", "momo_adam", "mtadam")
_NEEDS_LOSS = ("momo", "momo_adam")
_NOT_COPYABLE = (
    "a {} cannot be copied or pickled: its optimizer state lives in the daemon's session; save "
    "opt.state_dict() (e.g. torch.save(opt.state_dict(), path): it carries the session's checkpoint) "
    "and load it into a new optimizer with load_state_dict()"
)


class RemoteOptimizer(HyperparameterGroups, Optimizer):
    """A ``torch.optim.Optimizer`` that runs its step on an optimizerd daemon.

    On construction it creates a session (or attaches to ``session``), names the parameters, and
    uploads their values (float32). ``param_groups`` work as in torch: each group is a parameter
    group of the session, and changes to a group's hyperparameters (by hand or by an
    ``lr_scheduler``) are sent to the daemon (``PATCH``) before the next step.

    Args:
        params: ``model.named_parameters()`` (names become the session's parameter names), a
            module, an iterable of tensors (named ``p0, p1, ...``), or a list of param group dicts
            (``{"params": ..., "lr": ...}``) whose ``params`` are tensors or ``(name, tensor)``; a
            group's keys that are not the optimizer's hyperparameters (``lr_scale``, ``name``,
            ``initial_lr``, ...) are kept and not sent, as torch ignores them. Complex
            parameters are stepped as their ``view_as_real``, as torch's Adam, AdamW and SGD do
            (for ``adam``, ``adamw``, ``sgd`` only, without ``overlap``).
        url: the daemon's URL (default: ``$OPTIMIZERD_URL``). Not needed with ``client`` or a
            :class:`~optimizerd.Session` as ``session``.
        urls: several daemons' URLs instead of ``url``: the session is a
            :class:`~optimizerd.ShardedSession` (whole tensors per daemon, the same trajectory as
            one daemon bit for bit); ``session`` may then be a ``ShardedSession`` or its
            placement's JSON. Not with ``overlap="backward"``.
        optimizer: the daemon's optimizer (``adam``, ``adamw``, ``sgd``, ``adafactor``, ``momo``,
            ``momo_adam``, ``mtadam``, ``acclip``).
        token: the session's token, to attach by id (``session="<id>"``).
        admin_token: the daemon's admin token, if it has one.
        session: attach to an existing session (a :class:`~optimizerd.Session` or an id) instead
            of creating one. If the session already has parameters, their values are copied into
            the local parameters (resuming); otherwise the local values are uploaded.
        client: a :class:`~optimizerd.Client` to use instead of creating one.
        name: a label for the new session.
        state_dtype: how the daemon stores the moments of a new session: ``None``/``"f32"``,
            ``"bf16"``, or ``"int8"`` (bitsandbytes' ``Adam8bit``/``AdamW8bit`` on CPU, for
            ``adam``/``adamw``: about a quarter of the float32 state).
        wire_dtype: dtype of the gradients on the wire: ``"f32"``, or ``"bf16"``/``"f16"`` to halve
            the upload (the daemon keeps float32 state and parameters either way).
        response_dtype: dtype of the returned parameters (keep ``"f32"`` unless bandwidth
            matters more than exactness).
        compress: gzip requests and responses (saves little on dense float gradients).
        overlap: ``None`` (default), or ``"backward"``: upload each gradient as soon as backward
            produces it, in one streamed step request, so that after backward only the last
            gradients' bytes, the step and the answer remain. Same trajectory as without it, bit
            for bit: whenever the streamed request cannot be the exact step (a second backward
            before ``step()``, gradients changed after backward, other parameters with
            gradients, changed hyperparameters, a ``loss`` or closure result to send) it is
            abandoned and the step is sent as usual (see :mod:`optimizerd.backward_stream`).
            Not for ``momo``, ``momo_adam``, ``mtadam`` (they need the loss or the terms) nor
            with ``compress``. Or ``"delayed"`` (opt-in, changes the trajectory): DeepSpeed's
            delayed parameter update; step t runs on the daemon while the trainer computes step
            t+1 on parameters one step stale (see :mod:`optimizerd.delayed_steps` for what
            ``step()``, ``zero_grad()``, ``state_dict()`` and schedulers see; :meth:`flush`).
        timeout, retries, backoff: passed to the :class:`~optimizerd.Client` this creates.
        **hyperparameters: the optimizer's hyperparameters (``lr``, ``betas``, ``weight_decay``,
            ...) and the session options ``clip_grad_norm``, ``nonfinite``, ``terms`` and
            ``term_weights``. torch's implementation switches (``foreach``, ``fused``,
            ``capturable``, ``differentiable``) are accepted and ignored.

    Attributes:
        session: the :class:`~optimizerd.Session`.
        client: the :class:`~optimizerd.Client`.
        last_metadata: the telemetry of the last step (``step``, ``lr``, ``grad_norm``, ...).
    """

    def __init__(
        self,
        params: Any,
        url: Optional[str] = None,
        optimizer: str = "adam",
        *,
        urls: Optional[Sequence[str]] = None,
        token: Optional[str] = None,
        admin_token: Optional[str] = None,
        session: Union[Session, str, None] = None,
        client: Optional[Client] = None,
        name: Optional[str] = None,
        state_dtype: Optional[str] = None,
        wire_dtype: str = "f32",
        response_dtype: str = "f32",
        compress: Compress = False,
        overlap: Optional[str] = None,
        timeout: Union[float, tuple[float, float]] = 60.0,
        retries: int = 5,
        backoff: float = 0.25,
        **hyperparameters: Any,
    ) -> None:
        hyperparameters = dict(hyperparameters)
        for flag in _IMPLEMENTATION_FLAGS:
            hyperparameters.pop(flag, None)
        self.session_options = {k: hyperparameters.pop(k) for k in SESSION_OPTIONS if k in hyperparameters}
        self.optimizer_name = optimizer
        self.state_dtype = state_dtype
        self.wire_dtype = wire_dtype
        self.response_dtype = response_dtype
        self.compress = compress
        self.last_metadata: dict[str, Any] = {}
        self._hyperparameter_keys: Optional[set[str]] = None
        self._synced: list[dict[str, Any]] = []
        self._versions: dict[str, int] = {}
        self._stream: Optional[BackwardStream] = None
        # The constructor's hyperparameters (torch's `defaults` as given): the session's own, which
        # a group that does not set a key falls back to, as in torch.
        self._given_defaults = {k: _jsonable(v) for k, v in hyperparameters.items()}
        # Which daemon group holds local group 0: 0 when it is the session's level (one group, or a
        # session made by an older client), 1 when every local group is a daemon group.
        self._group_offset = 0
        self._ready = False
        super().__init__(_normalize_groups(params), hyperparameters)
        _check_complex(self.param_groups, optimizer, overlap)

        if isinstance(session, (Session, ShardedSession)):
            self.client = client or session.client
            self.session = session
        else:
            if client is None and urls:
                client = ShardedClient(
                    urls, admin_token=admin_token, timeout=timeout, retries=retries, backoff=backoff
                )
            if client is None:
                url = url or os.environ.get("OPTIMIZERD_URL")
                if not url:
                    raise ValueError("RemoteOptimizer needs url= (or $OPTIMIZERD_URL), client= or a Session")
                client = Client(
                    url, admin_token=admin_token, timeout=timeout, retries=retries, backoff=backoff
                )
            self.client = client
            self.session = (
                self._create_session(name) if session is None else client.session(str(session), token)
            )
        if session is not None:
            self._attach()
        self.overlap = overlap
        self._stream: Optional[BackwardStream] = None
        self._delayed: Optional[DelayedSteps] = None
        if overlap == "delayed":
            if self.optimizer_name == "mtadam":
                raise ValueError('overlap="delayed" is not for mtadam (step_terms)')
            self._delayed = DelayedSteps(self)
        elif overlap == "backward":
            if self.optimizer_name in _NEEDS_EVERY_PARAMETER or compress or urls:
                raise ValueError(
                    f'overlap="backward" needs one daemon, an optimizer without loss or terms and no '
                    f"compress; got {self.optimizer_name!r}, compress={compress!r}, urls={urls!r}"
                )
            self._stream = BackwardStream(self)
        elif overlap is not None:
            raise ValueError(f'overlap must be None, "backward" or "delayed"; got {overlap!r}')
        self._ready = True

    # MARK: setup

    def _create_session(self, name: Optional[str]) -> Session:
        # The session is made with the constructor's values (torch's defaults); its answer tells
        # which keys are the optimizer's hyperparameters, and the groups' values of those are sent
        # next (PATCH). A group's other keys (timm's "lr_scale", a "name", a scheduler's
        # "initial_lr", torch's "foreach") stay in param_groups unsent: torch ignores them too.
        # One group: its values are the session's. Several: every group is a daemon group, so that
        # a key a group does not set takes the optimizer's default (or the constructor's), not the
        # first group's value.
        self._group_offset = 0 if len(self.param_groups) == 1 else 1
        session = self.client.create_session(
            self.optimizer_name,
            {**self._given_defaults, **self.session_options},
            name=name,
            state_dtype=self.state_dtype,
        )
        self.session = session
        try:
            effective = _effective_hyperparameters(session.info)
            self._adopt(effective)
            self._synced = self._daemon_groups(effective)
            self._sync_hyperparameters()
            session.upload_parameters(self._local_parameters(), compress=self.compress)
            self._remember_versions()
        except BaseException:
            try:  # leave no half-made session behind
                session.delete()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise
        return session

    def _attach(self) -> None:
        summary = self.session.summary()
        self.optimizer_name = summary.get("optimizer", self.optimizer_name)
        _check_complex(self.param_groups, self.optimizer_name, None)
        effective = _effective_hyperparameters(summary)
        self._group_offset = (
            1 if len(self.param_groups) > 1 and len(effective) == len(self.param_groups) + 1 else 0
        )
        self._adopt(effective)
        # What the daemon has; explicit constructor values that differ are sent with the next step.
        self._synced = self._daemon_groups(effective)
        daemon_options = summary.get("hyperparameters", {})
        if "terms" in self.session_options and self.session_options["terms"] != daemon_options.get(
            "terms", 1
        ):
            raise ValueError(
                f"session {self.session.id} has {daemon_options.get('terms', 1)} loss terms, not "
                f"{self.session_options['terms']}"
            )
        changed = {
            k: _jsonable(v)
            for k, v in self.session_options.items()
            if k != "terms" and _jsonable(v) != daemon_options.get(k)
        }
        if changed:  # session options given explicitly win, like hyperparameters
            daemon_options = self.session.patch(changed).get("hyperparameters", daemon_options)
        for key in SESSION_OPTIONS:
            if daemon_options.get(key) is not None:
                self.session_options[key] = daemon_options[key]
        remote = [entry["name"] for entry in summary.get("parameters", [])]
        local = self._names()
        if not remote:
            self.session.upload_parameters(self._local_parameters(), compress=self.compress)
            self._remember_versions()
        elif set(remote) == set(local):
            self._write_back(self.session.parameters(dtype="f32", out=self._destinations()))
        else:
            only_local = sorted(set(local) - set(remote))
            only_remote = sorted(set(remote) - set(local))
            raise ValueError(
                f"session {self.session.id} has other parameters than this optimizer: "
                f"only local {only_local[:10]}, only in the session {only_remote[:10]}"
            )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Adds a parameter group (torch API). After construction, its parameters are uploaded to
        the session and the group is sent with the next step."""
        if not getattr(self, "_ready", False):
            super().add_param_group(param_group)
            return
        (group,) = _normalize_groups([param_group], start=sum(len(g["params"]) for g in self.param_groups))
        taken = set(self._names())
        clash = [name for name in group["param_names"] if name in taken]
        if clash:
            raise ValueError(f"parameter names already in use: {clash}")
        _check_complex([group], self.optimizer_name, self.overlap)
        super().add_param_group(group)
        try:
            self.session.upload_parameters(
                {name: _to_numpy(p) for name, p in zip(group["param_names"], group["params"])},
                compress=self.compress,
            )
        except BaseException:
            self.param_groups.pop()  # as torch: a refused group leaves the optimizer as it was
            raise
        self._remember_versions(set(group["param_names"]))
        self._synced.append({})  # differs from the group: sent with the next step

    # MARK: steps

    def step(self, closure: Optional[Callable[[], Any]] = None, loss: Any = None) -> Any:  # type: ignore[override]
        """One optimizer step on the daemon.

        Sends the gradient of every parameter that has one (parameters whose ``grad`` is ``None``
        are skipped, as torch does; ``momo``, ``momo_adam`` and ``mtadam`` need all of them) and
        copies the returned values into the parameters.

        Args:
            closure: re-evaluates the model and returns the loss (evaluated with grad enabled).
            loss: the batch loss (float or tensor), sent as metadata; required by MoMo. Defaults
                to the closure's result.

        Returns:
            The closure's result, if a closure was given.
        """
        result, loss = _closure_and_loss(closure, loss)
        if self.optimizer_name == "mtadam" and self._terms() > 1:
            raise ValueError(
                f"this mtadam session has {self._terms()} loss terms: call step_terms([loss_0, ...])"
            )
        tensors: dict[str, torch.Tensor] = {}
        missing: list[str] = []
        for name, p in self._named_parameters():
            if p.grad is None:
                missing.append(name)
            else:
                tensors[name] = p.grad
        # With overlap="backward", torch.amp.GradScaler.step hands the step its scale and found_inf
        # (`_step_supports_amp_scaling`) instead of unscaling the gradients in place, which would
        # not bump their version counters: the streamed bytes would be the scaled gradients.
        found_inf = getattr(self, "found_inf", None)
        grad_scale: Optional[float] = None
        if found_inf is not None:
            if float(found_inf) > 0:  # GradScaler skips the step; its update() lowers the scale
                if self._stream is not None:
                    self._stream.finish(tensors, loss, usable=False)
                return result
            scale = getattr(self, "grad_scale", None)
            grad_scale = None if scale is None else float(scale)
        if self._delayed is None:  # delayed: the daemon's copy is a step ahead by design
            self._resync_parameters()
        if self._stream is not None:
            streamed = self._stream.finish(tensors, loss, usable=found_inf is None)
            if streamed is not None:
                self._take_streamed(*streamed)
                return result
        if self._delayed is not None:
            self._check_step(tensors, missing, loss)
            self._delayed.step(tensors, loss)
            return result
        gradients = {name: _to_numpy(gradient) for name, gradient in tensors.items()}
        self._check_step(gradients, missing, loss)
        if not gradients:
            return result
        self._send(gradients, loss=loss, grad_scale=grad_scale)
        return result

    @property
    def _step_supports_amp_scaling(self) -> bool:
        """Read by torch.amp.GradScaler: with overlap="backward", the step takes the scale itself
        (see :meth:`step`); otherwise GradScaler unscales the gradients before the step, as for
        torch's own optimizers."""
        return self._stream is not None

    def _remember_versions(self, names: Optional[set[str]] = None) -> None:
        """Notes the parameters' autograd versions: a later in-place change is sent before the next step."""
        for name, p in self._named_parameters():
            if names is None or name in names:
                self._versions[name] = p._version

    def _resync_parameters(self, names: Optional[Collection[str]] = None) -> None:
        """Uploads the parameters (of ``names``, default all) changed in place since the daemon
        last had them (weights loaded into the model after the optimizer was made, a clamp after
        each step): the daemon steps its own copy, which would otherwise overwrite the change.
        (Edits through ``.data`` or NumPy bypass the version counter and are not seen.)"""
        changed = {
            name: p
            for name, p in self._named_parameters()
            if (names is None or name in names) and self._versions.get(name, p._version) != p._version
        }
        if changed:
            self.session.upload_parameters(
                {name: _to_numpy(p) for name, p in changed.items()}, compress=self.compress
            )
            self._remember_versions(set(changed))

    def flush(self) -> None:
        """``overlap="delayed"``: waits for the step in flight and writes its parameters into the
        model (e.g. before evaluating or saving it). Nothing to do otherwise."""
        if self._delayed is not None:
            self._delayed.apply()

    def _check_step(self, gradients: Mapping[str, Any], missing: list[str], loss: Any) -> None:
        if missing and self.optimizer_name in _NEEDS_EVERY_PARAMETER:
            raise ValueError(
                f"{self.optimizer_name} needs the gradient of every parameter; no grad for {missing[:10]} "
                "(leave such parameters out of the optimizer, or give them a zero gradient)"
            )
        if gradients and loss is None and self.optimizer_name in _NEEDS_LOSS:
            raise ValueError(f"{self.optimizer_name} needs the batch loss: step(loss=loss) or step(closure)")

    def step_terms(
        self, losses: Sequence[torch.Tensor], term_weights: Optional[Sequence[float]] = None
    ) -> list[float]:
        """One MTAdam step from K loss terms.

        Computes each term's gradients with ``torch.autograd.grad(loss_k, params,
        retain_graph=True, allow_unused=True)`` (zeros where a term does not depend on a
        parameter), sends them as terms ``k/NAME`` with the per-term losses, and copies the
        returned values into the parameters. ``p.grad`` is neither read nor written.

        Args:
            losses: the K loss terms (scalar tensors of one graph), K = the session's ``terms``.
            term_weights: λ for this step, overriding the session's ``term_weights``.

        Returns:
            The terms' values as floats.
        """
        if self.optimizer_name != "mtadam":
            raise ValueError(f"step_terms is for mtadam sessions; this one runs {self.optimizer_name}")
        losses = list(losses)
        if len(losses) != self._terms():
            raise ValueError(f"this session has {self._terms()} loss terms, got {len(losses)} losses")
        pairs = self._named_parameters()
        trainable = [(name, p) for name, p in pairs if p.requires_grad]
        terms: list[dict[str, np.ndarray]] = []
        values: list[float] = []
        for loss in losses:
            if not torch.is_tensor(loss):
                loss = torch.as_tensor(loss)
            values.append(float(loss.detach().cpu()))
            gradients: Sequence[Optional[torch.Tensor]] = [None] * len(trainable)
            if loss.requires_grad and trainable:
                gradients = torch.autograd.grad(
                    loss, [p for _, p in trainable], retain_graph=True, allow_unused=True
                )
            term = {name: _zeros_like(p) for name, p in pairs}
            for (name, _), gradient in zip(trainable, gradients):
                if gradient is not None:
                    term[name] = _to_numpy(gradient)
            terms.append(term)
        self._resync_parameters()
        self._send(terms, loss=values, term_weights=term_weights)
        return values

    def _send(
        self,
        gradients: Any,
        loss: Any = None,
        term_weights: Optional[Sequence[float]] = None,
        grad_scale: Optional[float] = None,
    ) -> None:
        self._sync_hyperparameters()
        values, metadata = self.session.step(
            gradients,
            loss=loss,
            term_weights=term_weights,
            grad_scale=grad_scale,
            dtype=self.wire_dtype,
            compress=self.compress,
            response_dtype=self.response_dtype,
            out=self._destinations(),
        )
        if values:
            self._write_back(values)
        self.last_metadata = metadata

    def _take_streamed(self, values: dict[str, np.ndarray], raw: dict[str, str]) -> None:
        """Takes the answer of a step streamed during backward (already in the parameters)."""
        metadata = parse_metadata(raw)
        metadata["retry"] = False
        self.session.last_step = int(metadata["step"])
        self._write_back(values)
        self.last_metadata = metadata

    def _named_parameters(self) -> list[tuple[str, torch.Tensor]]:
        return [
            (name, p) for group in self.param_groups for name, p in zip(group["param_names"], group["params"])
        ]

    def _terms(self) -> int:
        return int(self.session_options.get("terms", 1) or 1)

    # MARK: state dict

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict plus ``"optimizerd"``: the session's checkpoint (parameters, every
        state slot, configuration, step) as bytes, with the session id and step. With
        ``overlap="delayed"`` it first waits for the step in flight (the checkpoint is one step
        ahead of the model's parameters)."""
        if self._delayed is not None:
            self._delayed.collect()
        self._sync_hyperparameters()
        state = super().state_dict()
        state["optimizerd"] = {
            "url": self.client.url,
            "session_id": self.session.id,
            "optimizer": self.optimizer_name,
            "step": self.session.last_step,
            "checkpoint": _plain(self.session.checkpoint()),
        }
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restores torch's part and, when present, the session's checkpoint into this
        optimizer's session (on this or another daemon). The checkpoint's parameter values are
        copied into the local parameters, so model and optimizer state agree (with
        ``overlap="delayed"``, the step in flight is dropped first). As in torch, parameters are
        matched by position: a state dict saved under other names (``torch.compile``'s
        ``_orig_mod.``, DDP's ``module.``) loads when the groups have the same sizes and shapes."""
        extra = state_dict.get("optimizerd")
        if not extra and state_dict.get("state"):
            warnings.warn(
                "this state dict has no optimizerd checkpoint (it comes from another optimizer): only the "
                "param_groups' hyperparameters are loaded; the daemon keeps its own optimizer state",
                stacklevel=2,
            )
        # Made to fit this session (one daemon or sharded, this optimizer's parameter names) before
        # anything is loaded, so that one that does not fit changes nothing.
        checkpoint = _checkpoint_for(
            extra.get("checkpoint") if extra else None,
            isinstance(self.session, ShardedSession),
            state_dict.get("param_groups", []),
            self.param_groups,
        )
        if self._delayed is not None:
            self._delayed.drop()
        names = [list(group["param_names"]) for group in self.param_groups]
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "optimizerd"})
        for group, group_names in zip(self.param_groups, names):
            group["param_names"] = group_names
        if checkpoint is not None:
            summary = self.session.restore(checkpoint)
            self._write_back(self.session.parameters(dtype="f32", out=self._destinations()))
            # The daemon now has the checkpoint's configuration; send whatever the loaded groups change.
            self._synced = self._daemon_groups(_effective_hyperparameters(summary))
        self._sync_hyperparameters()

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Refuses pickling, ``copy.copy`` and ``torch.save(opt)``: torch's ``__getstate__`` keeps
        only ``param_groups`` and ``state``, so the copy would have no session (and one that kept
        it would step the same daemon state twice)."""
        raise TypeError(_NOT_COPYABLE.format(type(self).__name__))

    def __deepcopy__(self, memo: Any) -> Any:
        """Refuses ``copy.deepcopy`` (see :meth:`__reduce_ex__`)."""
        raise TypeError(_NOT_COPYABLE.format(type(self).__name__))

    # MARK: tensors

    def _names(self) -> list[str]:
        return [name for group in self.param_groups for name in group["param_names"]]

    def _local_parameters(self) -> dict[str, np.ndarray]:
        return {name: _to_numpy(p) for name, p in self._named_parameters()}

    def _destinations(self) -> dict[str, np.ndarray]:
        """name → the parameter's own memory as a NumPy array, for every parameter the answer
        can be read into directly (see :func:`~optimizerd.torch_support._memory`)."""
        return {name: memory for name, p in self._named_parameters() if (memory := _memory(p)) is not None}

    @torch.no_grad()
    def _write_back(self, values: Mapping[str, np.ndarray]) -> None:
        """Brings the parameters up to ``values``: those read into the parameters' memory are
        already there (their autograd version is bumped, as an in-place update does); the others
        are copied in."""
        written = []
        for group in self.param_groups:
            for name, p in zip(group["param_names"], group["params"]):
                value = values.get(name)
                if value is None:
                    continue
                if value.size and value.ctypes.data == p.data_ptr():
                    written.append(p)
                else:
                    _copy_into(p, value)
        if written:
            torch.autograd.graph.increment_version(written)
        self._remember_versions(set(values))

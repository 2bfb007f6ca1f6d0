"""One optimizer session on the daemon: parameters, steps, inspection, checkpoints."""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np

from . import parts as _parts
from . import wire
from .answer import Scratch, read_answer
from .body import Body, build_body
from .connection import read_exactly
from .errors import ConnectionFailed, NotFound

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client

__all__ = ["Session", "parse_metadata", "flatten_terms", "step_request"]

Arrays = Mapping[str, Any]
#: ``True``/``False``, or a gzip level 1-9 (``True`` = 1: fast; float data barely compresses).
Compress = Union[bool, int]

_RETURN_VALUES = ("params", "delta", "none")


class Session:
    """A session on the daemon, reached through a :class:`~optimizerd.Client`.

    Get one from :meth:`Client.create_session` (new) or :meth:`Client.session` (reattach by id and
    token). The session tracks the daemon's step counter in :attr:`last_step`: each step is sent
    with ``__metadata__["step"] = last_step + 1``, so a request that is retried after a lost
    answer is recognised by the daemon and never applied twice.

    Attributes:
        id: the session id.
        token: the bearer token used for this session's routes (its own, or the admin token).
        last_step: the session's step as last seen (creation, summary, parameter download or
            step answer).
        info: the creation answer or the last summary (a dict).
    """

    def __init__(
        self,
        client: Client,
        id: str,  # noqa: A002 - the API's name
        token: Optional[str],
        *,
        step: int = 0,
        info: Optional[dict[str, Any]] = None,
    ) -> None:
        self.client = client
        self.id = id
        self.token = token
        self.last_step = int(step)
        self.info: dict[str, Any] = dict(info or {})
        # (step number, request digest) of a step whose answer never came.
        self._unconfirmed: Optional[tuple[int, bytes]] = None
        # Reused buffers: 16-bit conversions of the gradients, and 16-bit answers.
        self._buffers: dict[str, np.ndarray] = {}
        self._scratch = Scratch()

    def __repr__(self) -> str:
        optimizer = self.info.get("optimizer", "?")
        return f"Session(id={self.id!r}, optimizer={optimizer!r}, last_step={self.last_step})"

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        """Deletes the session (leaving a ``with`` block ends its life on the daemon)."""
        try:
            self.delete()
        except NotFound:
            pass

    @property
    def optimizer(self) -> Optional[str]:
        """The optimizer's API name, as the daemon reported it."""
        return self.info.get("optimizer")

    # MARK: requests

    def _request(self, method: str, subpath: str = "", **kwargs: Any):
        return self.client.transport.request(
            method, f"/v1/sessions/{self.id}{subpath}", token=self.token, **kwargs
        )

    def _exchange(self, method: str, subpath: str, reader: Any, body: Optional[Body] = None, **kwargs: Any):
        return self.client.transport.exchange(
            method, f"/v1/sessions/{self.id}{subpath}", reader, token=self.token, body=body, **kwargs
        )

    def _tensor_reader(self, out: Optional[Mapping[str, np.ndarray]]):
        """Reads a safetensors answer into ``out`` (straight from the socket unless compressed)."""

        def read(answer) -> tuple[dict[str, np.ndarray], dict[str, str]]:
            encoding = answer.headers.get("Content-Encoding", "identity").lower()
            if encoding == "identity" and answer.length is not None:
                return read_answer(
                    lambda buffer: read_exactly(answer.response, buffer), answer.length, out, self._scratch
                )
            data = _inflate(answer.response.read(), encoding)
            view = memoryview(data)
            position = 0

            def take(buffer: memoryview) -> None:
                nonlocal position
                if position + buffer.nbytes > len(view):
                    raise ValueError("not a safetensors answer: a tensor ends past the body")
                buffer[:] = view[position : position + buffer.nbytes]
                position += buffer.nbytes

            return read_answer(take, len(view), out, self._scratch)

        return read

    def _note(self, summary: Mapping[str, Any]) -> dict[str, Any]:
        self.info = dict(summary)
        if "step" in summary:
            self.last_step = int(summary["step"])
        return self.info

    # MARK: JSON routes

    def summary(self) -> dict[str, Any]:
        """``GET /v1/sessions/{id}``: optimizer, effective hyperparameters, groups, ``step``,
        ``durable_step``, parameters with shapes and norms, state slot norms, last telemetry."""
        return self._note(self._request("GET").json())

    def sync(self) -> int:
        """Refreshes :attr:`last_step` from the daemon (e.g. after a :class:`StepConflict`)."""
        self.summary()
        return self.last_step

    def history(self, since: int = 0, limit: Optional[int] = None) -> dict[str, Any]:
        """``GET /v1/sessions/{id}/history?since=N``: the telemetry of the steps after ``since``.

        Returns:
            ``{"id", "step", "oldest_step", "capacity", "records": [...]}``; each record has
            ``step``, ``loss``, ``lr`` (MoMo: τ), ``grad_norm``, ``update_norm``, ``skipped`` and,
            when they apply, ``clip_coefficient``, ``term_grad_norms`` and ``term_weights``
            (MTAdam: parameter name → one weight per term).
        """
        return self._request("GET", "/history", params={"since": int(since), "limit": limit}).json()

    def patch(
        self,
        hyperparameters: Optional[Mapping[str, Any]] = None,
        groups: Optional[Sequence[Mapping[str, Any]]] = None,
        **options: Any,
    ) -> dict[str, Any]:
        """``PATCH /v1/sessions/{id}``: change hyperparameters mid-run (state is kept).

        ``options`` (e.g. ``lr=1e-4``, ``clip_grad_norm=1.0``) are merged into ``hyperparameters``.
        ``groups``, if given, replace the session's parameter groups.

        Returns:
            The new summary.
        """
        body: dict[str, Any] = {"hyperparameters": {**dict(hyperparameters or {}), **options}}
        if groups is not None:
            body["groups"] = [dict(group) for group in groups]
        return self._note(self._request("PATCH", json_body=body).json())

    def delete(self) -> None:
        """``DELETE /v1/sessions/{id}``: deletes the session and its durable files."""
        self._request("DELETE", ok_after_retry=(404,))

    # MARK: tensor routes

    def upload_parameters(
        self, parameters: Arrays, dtype: str = "f32", compress: Compress = False
    ) -> dict[str, Any]:
        """``PUT /v1/sessions/{id}/parameters``: initial values, or a re-sync.

        The body is streamed from the arrays themselves (float32 values are not copied).

        Args:
            parameters: name → array. New names are added (the daemon lists parameters in upload
                order); known names must keep their shape. A body larger than the daemon's
                limit (``GET /v1/limits``) is sent as several uploads of whole tensors, in order.
            dtype: wire dtype of the values (``"f32"``, ``"f16"``, ``"bf16"``).
            compress: gzip the body.

        Returns:
            The session summary.
        """
        body = build_body(parameters, dtype=dtype, buffers=self._buffers)
        limit = _parts.body_limit(self, None)
        if len(body) <= limit:
            summary, _ = self._exchange("PUT", "/parameters", _read_json, **_binary_request(body, compress))
            return self._note(summary)
        for chunk in _parts.split(dict(parameters), limit, dtype):
            # In order, so the daemon lists the parameters in the same order as one upload would.
            body = build_body(chunk, dtype=dtype)
            summary, _ = self._exchange("PUT", "/parameters", _read_json, **_binary_request(body, compress))
        return self._note(summary)

    def parameters(
        self,
        dtype: str = "f32",
        compress: Compress = False,
        out: Optional[Mapping[str, np.ndarray]] = None,
    ) -> dict[str, np.ndarray]:
        """``GET /v1/sessions/{id}/parameters``: the current parameters.

        Args:
            dtype: wire dtype of the answer. Values are returned as float32 arrays either way
                (F16/BF16 answers are rounded to that precision).
            compress: ask for a gzip-compressed answer.
            out: name → float32 array (C-contiguous, writable, as many elements as the parameter)
                to read that parameter into, straight from the socket; returned in its place.
        """
        (tensors, metadata), _ = self._exchange(
            "GET",
            "/parameters",
            self._tensor_reader(out),
            params={"dtype": _dtype_query(dtype)},
            headers=_accept(compress),
        )
        if "step" in metadata:
            self.last_step = int(metadata["step"])
        return tensors

    def step(
        self,
        gradients: Union[Arrays, Mapping[Any, Arrays], Sequence[Arrays], None] = None,
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
        part_bytes: Optional[int] = None,
    ) -> tuple[Optional[dict[str, np.ndarray]], dict[str, Any]]:
        """``POST /v1/sessions/{id}/step``: one optimizer step.

        Args:
            gradients: name → array. For MTAdam either ``{term: {name: array}}`` (or a list of
                such dicts, one per term) or flat ``"k/NAME"`` names.
            loss: the batch loss (required by ``momo`` and ``momo_adam``): a number, a 0-d
                array/tensor, or (MTAdam) a list of per-term losses.
            term_weights: MTAdam's λ for this step (one per term).
            grad_scale: divide every gradient by this first (fp16 loss scaling).
            sparse: name → ``(indices, values)``: flat indices into the parameter and the values
                there; every other entry is zero. Also ``{term: {name: (indices, values)}}``.
            dtype: wire dtype of the gradients (``"bf16"``/``"f16"`` halve the upload).
            compress: gzip the request and accept a gzip answer.
            return_: ``"params"`` (updated parameters), ``"delta"`` (θ_after − θ_before) or
                ``"none"``.
            response_dtype: wire dtype of the answer (query ``dtype=``); arrays are float32 anyway.
            metadata: extra ``__metadata__`` entries (e.g. a label); the known keys above win.
            out: name → float32 array (C-contiguous, writable, as many elements as the tensor)
                that the answer's tensor of that name is read into, straight from the socket
                (e.g. the parameters' own memory); returned in its place. If the answer is cut
                midway and every retry fails, these arrays may hold part of the new values;
                repeating the step fills them (it is answered from the retry path).
            part_bytes: a request body larger than this, or than the daemon's own limit
                (``GET /v1/limits``), is sent as a step in parts instead: whole tensors in
                several requests, then a commit (same result, bit for bit). ``None`` (the
                default): only past the daemon's limit, since one request is the faster step.

        Returns:
            ``(arrays, metadata)``: the parameters or deltas of the stepped tensors as float32
            arrays (``None`` with ``return_="none"``), and the step's telemetry with typed
            values: ``step`` (int), ``skipped`` (bool), ``lr``, ``grad_norm``, ``update_norm``,
            ``loss``, ``clip_coefficient`` (floats), ``term_grad_norms``, ``term_weights`` (JSON),
            plus ``retry`` (bool): whether the daemon answered from its idempotent-retry path.

        Raises:
            StepConflict: the daemon is at another step (another writer, or a restore); call
                :meth:`sync` to adopt the daemon's step.
            Unprocessable: unknown/missing tensor, wrong shape, NaN/Inf, missing loss or term.
            ConnectionFailed: no answer after every retry: the step may or may not have been
                applied. Calling ``step`` again with the same arguments retries it (never applied
                twice); calling it with other gradients first asks the daemon where it is, and
                makes them the next step.
        """
        if return_ not in _RETURN_VALUES:
            raise ValueError(f"return_ must be one of {', '.join(_RETURN_VALUES)}; got {return_!r}")
        tensors, meta = step_request(gradients, loss, term_weights, grad_scale, sparse, metadata)
        step_number = self._next_step_number(tensors, meta, dtype, return_)
        meta["step"] = str(step_number)
        body = build_body(tensors, meta, dtype=dtype, buffers=self._buffers)
        params = {"return": return_, "dtype": _dtype_query(response_dtype)}
        limit = _parts.body_limit(self, part_bytes)
        groups = _parts.split(tensors, limit, dtype) if len(body) > limit else []
        # One part (a single tensor past part_bytes) is no better than a plain step, which needs
        # less of the daemon's memory (no staged copy): plain, unless the daemon's limit forbids it.
        if len(groups) == 1 and len(body) <= (_parts.daemon_body_limit(self) or len(body)):
            groups = []
        try:
            if groups:
                (arrays, raw), answer = _parts.send_step(
                    self,
                    step_number,
                    groups,
                    meta,
                    dtype=dtype,
                    params=params,
                    reader=self._tensor_reader(out),
                    compress=compress,
                )
            else:
                (arrays, raw), answer = self._exchange(
                    "POST",
                    "/step",
                    self._tensor_reader(out),
                    params=params,
                    **_binary_request(body, compress),
                )
        except ConnectionFailed:
            # Applied or not: unknown. The next call finds out (see _next_step_number).
            meta.pop("step")
            self._unconfirmed = (step_number, _request_digest(tensors, meta, dtype, return_))
            raise
        self._unconfirmed = None
        result = parse_metadata(raw)
        result["retry"] = answer.headers.get("Optimizerd-Retry", "false").lower() == "true"
        self.last_step = int(result.get("step", step_number))
        return (None if return_ == "none" else arrays), result

    def momo_sums(self, step: int, scalars: Mapping[str, Any]) -> dict[str, dict[str, float]]:
        """``POST /v1/sessions/{id}/steps/{step}/momo-sums``: this daemon's share of the step size
        sums of a ``momo``/``momo_adam`` step whose tensors are spread over several daemons.

        The second round of such a step, after its parts are staged on every daemon: ``scalars``
        is the commit body without ``momo_totals`` (``term_squared_norms``, ``loss``,
        ``grad_scale``, ``parts``, ... as :func:`optimizerd.parts.commit_scalars` folds them from
        every daemon's part answers). Fold the answers of every daemon with
        :func:`optimizerd.parts.fold_momo_totals` in the global parameter order, then commit on
        every daemon with ``{**scalars, "momo_totals": totals}``: each computes the step size one
        daemon holding every tensor would, bit for bit. Read-only: asking again answers the same.

        Returns:
            parameter name → ``{"parameter_dot_average": ⟨θ, d⟩, "gamma": γ,
            "average_squared_norm": ‖d‖²}`` (MoMo-Adam: ⟨θ, m⟩ and ⟨m, m/P⟩), floats (a
            non-finite one as ``nan``/``inf``), for every parameter this daemon holds.

        Raises:
            StepConflict: ``step`` is not this session's next step.
            Unprocessable: not a MoMo session, parts or gradients missing, a skipped step
                (``nonfinite`` given), or a bad scalar; the field is named.
        """
        body = Body(json.dumps(dict(scalars)).encode(), [])
        answer, _ = self._exchange(
            "POST",
            f"/steps/{int(step)}/momo-sums",
            _read_json,
            body=body,
            headers={"Content-Type": "application/json"},
        )
        return {
            name: {key: float(value) for key, value in sums.items()}
            for name, sums in answer["tensors"].items()
        }

    def _next_step_number(
        self, tensors: Mapping[str, Any], meta: Mapping[str, str], dtype: str, return_: str
    ) -> int:
        """``last_step + 1``, unless an earlier step failed with its outcome unknown
        (:class:`ConnectionFailed` after every retry). Then the same request again keeps that
        step's number (the daemon answers it as a retry if it had been applied), and a different
        request first learns the daemon's step, so it is applied as the next step either way."""
        if self._unconfirmed is not None:
            number, digest = self._unconfirmed
            if _request_digest(tensors, meta, dtype, return_) == digest:
                return number
            self.sync()
            self._unconfirmed = None
        return self.last_step + 1

    # MARK: checkpoints

    def checkpoint(self, compress: Compress = False) -> bytes:
        """``GET /v1/sessions/{id}/checkpoint``: a safetensors file with everything (parameters,
        every state slot, configuration and step in ``__metadata__``)."""
        content, _ = self._exchange(
            "GET",
            "/checkpoint",
            lambda answer: _inflate(
                answer.response.read(), answer.headers.get("Content-Encoding", "identity")
            ),
            headers=_accept(compress),
        )
        return content

    def restore(
        self, checkpoint: Union[bytes, bytearray, memoryview], compress: Compress = False
    ) -> dict[str, Any]:
        """``PUT /v1/sessions/{id}/checkpoint``: replaces this session's state with a checkpoint
        (from this or another daemon). Refreshes :attr:`last_step`.

        Returns:
            The session summary after the restore.
        """
        body = Body(b"", [memoryview(checkpoint).cast("B")])
        answer, _ = self._exchange("PUT", "/checkpoint", _read_json_if_any, **_binary_request(body, compress))
        if isinstance(answer, dict) and "step" in answer and "parameters" in answer:
            return self._note(answer)
        return self.summary()


# MARK: helpers


def step_request(
    gradients: Any,
    loss: Any = None,
    term_weights: Optional[Sequence[float]] = None,
    grad_scale: Optional[float] = None,
    sparse: Optional[Mapping[Any, Any]] = None,
    metadata: Optional[Mapping[str, Any]] = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """A step's flat tensors (terms as ``k/name``, sparse pairs as ``name.indices`` and
    ``name.values``) and its ``__metadata__`` strings without ``step`` (see :meth:`Session.step`)."""
    tensors = dict(flatten_terms(gradients))
    for name, pair in flatten_terms(sparse).items():
        try:
            indices, values = pair
        except (TypeError, ValueError):
            raise TypeError(f"sparse[{name!r}] must be an (indices, values) pair") from None
        indices = np.asarray(indices).reshape(-1)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"sparse[{name!r}]: indices must be integers, got {indices.dtype}")
        tensors[f"{name}.indices"] = indices if indices.dtype == np.int32 else indices.astype(np.int64)
        tensors[f"{name}.values"] = np.asarray(values, dtype=np.float32).reshape(-1)
    meta: dict[str, str] = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta.pop("step", None)
    if loss is not None:
        meta["loss"] = _loss_text(loss)
    if term_weights is not None:
        meta["term_weights"] = json.dumps([float(w) for w in term_weights])
    if grad_scale is not None:
        meta["grad_scale"] = repr(float(grad_scale))
    return tensors, meta


def flatten_terms(tensors: Any) -> dict[str, Any]:
    """Flat ``name → value``, with per-term nesting ``{k: {name: v}}`` / ``[{...}, ...]`` turned
    into MTAdam's ``"k/name"``."""
    if tensors is None:
        return {}
    if isinstance(tensors, Mapping):
        nested = [isinstance(value, Mapping) for value in tensors.values()]
        if not any(nested):
            return {str(name): value for name, value in tensors.items()}
        if not all(nested):
            raise TypeError("mix of per-term dicts and tensors: use {term: {name: array}} or flat names")
        flat: dict[str, Any] = {}
        for term, group in tensors.items():
            index = int(term)
            for name, value in group.items():
                flat[f"{index}/{name}"] = value
        return flat
    if isinstance(tensors, Sequence) and not isinstance(tensors, (str, bytes)):
        return flatten_terms({index: group for index, group in enumerate(tensors)})
    raise TypeError(f"expected a dict of tensors, got {type(tensors).__name__}")


def parse_metadata(metadata: Mapping[str, str]) -> dict[str, Any]:
    """Typed values of a response's ``__metadata__`` (all strings on the wire)."""
    result: dict[str, Any] = {}
    for key, text in metadata.items():
        result[key] = _parse_value(key, text)
    return result


def _parse_value(key: str, text: str) -> Any:
    if key in ("step", "durable_step"):
        try:
            return int(text)
        except ValueError:
            return text
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return json.loads(text)
    except ValueError:
        return text


def _loss_text(loss: Any) -> str:
    if isinstance(loss, (list, tuple)):
        return json.dumps([_as_float(value) for value in loss])
    return repr(_as_float(loss))


def _as_float(value: Any) -> float:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu()
    return float(value)


def _request_digest(tensors: Mapping[str, Any], meta: Mapping[str, str], dtype: str, return_: str) -> bytes:
    """A digest of a step request's content, without its step number."""
    digest = hashlib.sha256(json.dumps([sorted(meta.items()), str(dtype).lower(), return_]).encode())
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(json.dumps([name, array.dtype.str, list(array.shape)]).encode())
        digest.update(array.reshape(-1).view(np.uint8).data if array.size else b"")
    return digest.digest()


def _dtype_query(dtype: str) -> str:
    wire.wire_dtype_tag(dtype)  # validates
    return str(dtype).lower()


def _accept(compress: Compress) -> dict[str, str]:
    return {"Accept-Encoding": "gzip" if compress else "identity"}


def _binary_request(body: Body, compress: Compress) -> dict[str, Any]:
    headers = {"Content-Type": "application/octet-stream", **_accept(compress)}
    if compress:
        level = 1 if compress is True else int(compress)
        body = Body(gzip.compress(body.tobytes(), compresslevel=level), [])
        headers["Content-Encoding"] = "gzip"
    return {"body": body, "headers": headers}


def _inflate(data: bytes, encoding: str) -> bytes:
    """A body without its ``Content-Encoding`` (gzip or deflate)."""
    encoding = encoding.lower()
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)
    return data


def _read_json(answer: Any) -> Any:
    return json.loads(answer.response.read())


def _read_json_if_any(answer: Any) -> Any:
    """The JSON answer, or ``None`` for another kind of answer (read to its end either way)."""
    content = answer.response.read()
    return json.loads(content) if "json" in answer.headers.get("Content-Type", "") else None

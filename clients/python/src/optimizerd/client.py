"""The entry point: a connection to one daemon."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

import requests

from .session import Session
from .transport import Timeout, Transport

__all__ = ["Client", "OPTIMIZERS", "SESSION_OPTIONS"]

#: The optimizers the daemon offers (DESIGN §3).
OPTIMIZERS = ("adam", "adamw", "sgd", "adafactor", "momo", "momo_adam", "mtadam", "acclip")

#: Session-level options that travel in the ``hyperparameters`` object but apply to the whole
#: session (never to one parameter group).
SESSION_OPTIONS = ("clip_grad_norm", "nonfinite", "terms", "term_weights")


class Client:
    """A connection to an optimizerd daemon.

    Connections are kept alive and reused (one ``requests.Session``). Requests that fail with a
    connection error, a timeout or a 503 are retried with exponential backoff when repeating them
    is safe (see :mod:`optimizerd.transport`).

    Example::

        client = optimizerd.Client("http://127.0.0.1:8080")
        session = client.create_session("adam", lr=1e-3)
        session.upload_parameters({"w": w})
        params, telemetry = session.step({"w": grad_w})

    Args:
        url: base URL, e.g. ``http://127.0.0.1:8080``.
        admin_token: the daemon's admin token, when it has one (needed to create and list
            sessions then; also accepted on every session's routes).
        timeout: seconds per request, or ``(connect, read)``.
        retries: how many times a failed request is repeated.
        backoff: the first pause between attempts in seconds; doubled each time (with jitter).
        max_backoff: the longest pause.
        verify: TLS verification (``True``, ``False`` or a CA bundle path) for ``https://`` URLs.
        http: a ``requests.Session`` to use (e.g. with custom adapters).
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8080",
        admin_token: Optional[str] = None,
        timeout: Timeout = 60.0,
        retries: int = 5,
        backoff: float = 0.25,
        *,
        max_backoff: float = 8.0,
        verify: Union[bool, str] = True,
        http: Optional[requests.Session] = None,
    ) -> None:
        self.admin_token = admin_token
        self.transport = Transport(
            url,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            verify=verify,
            http=http,
        )

    @property
    def url(self) -> str:
        """The base URL."""
        return self.transport.url

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes pooled connections."""
        self.transport.close()

    # MARK: service routes

    def health(self) -> dict[str, Any]:
        """``GET /healthz`` → ``{"status": "ok"}``."""
        return self.transport.request("GET", "/healthz").json()

    def ready(self) -> dict[str, Any]:
        """``GET /readyz`` → ``{"status": "ready", "sessions": N}``."""
        return self.transport.request("GET", "/readyz").json()

    def metrics(self) -> str:
        """``GET /metrics``: Prometheus text."""
        return self.transport.request("GET", "/metrics").text

    # MARK: sessions

    def create_session(
        self,
        optimizer: str,
        hyperparameters: Optional[Mapping[str, Any]] = None,
        groups: Optional[Sequence[Mapping[str, Any]]] = None,
        name: Optional[str] = None,
        state_dtype: Optional[str] = None,
        **options: Any,
    ) -> Session:
        """``POST /v1/sessions``: a new session.

        Args:
            optimizer: one of :data:`OPTIMIZERS`.
            hyperparameters: e.g. ``{"lr": 1e-3, "betas": [0.9, 0.999]}``; names and defaults
                are those of the reference implementations (DESIGN §3, algorithms.md).
            groups: parameter groups, e.g.
                ``[{"parameters": ["*.bias"], "hyperparameters": {"weight_decay": 0}}]``.
            name: an optional label.
            state_dtype: how the daemon stores the optimizer moments: ``"f32"`` (default),
                ``"bf16"`` or ``"int8"`` (bitsandbytes' ``Adam8bit``/``AdamW8bit``; adam and
                adamw only). Fixed for the session's life.
            **options: merged into ``hyperparameters``: any hyperparameter (``lr=1e-3``) and the
                session options ``clip_grad_norm``, ``nonfinite`` (``"reject"``/``"skip"``),
                ``terms`` and ``term_weights`` (MTAdam).

        Returns:
            The :class:`Session`, holding its token (the daemon returns it only here).
        """
        body: dict[str, Any] = {
            "optimizer": optimizer,
            "hyperparameters": {**dict(hyperparameters or {}), **options},
        }
        if groups:
            body["groups"] = [dict(group) for group in groups]
        if name is not None:
            body["name"] = name
        if state_dtype is not None:
            body["state_dtype"] = state_dtype
        created = self.transport.request(
            "POST", "/v1/sessions", token=self.admin_token, json_body=body, idempotent=False
        ).json()
        return Session(self, created["id"], created["token"], step=int(created.get("step", 0)), info=created)

    def list_sessions(self) -> list[dict[str, Any]]:
        """``GET /v1/sessions``: every session (id, name, optimizer, created_at, step, sizes, last
        step's telemetry), oldest first."""
        return list(self.transport.request("GET", "/v1/sessions", token=self.admin_token).json()["sessions"])

    def session(self, id: str, token: Optional[str] = None) -> Session:  # noqa: A002
        """Reattaches to an existing session (e.g. after the trainer restarted).

        Reads the summary, so :attr:`Session.last_step` starts at the daemon's step.

        Args:
            id: the session id.
            token: the session's token; defaults to the admin token.
        """
        session = Session(self, id, token or self.admin_token)
        session.summary()
        return session

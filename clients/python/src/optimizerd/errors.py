"""Exceptions raised by the client.

Every error answer of the daemon is an RFC 9457 ``application/problem+json`` document
(``{"type", "title", "status", "detail"}``, DESIGN §7). :func:`error_from_response` turns it into
an :class:`OptimizerdError`, or into the subclass for its status so callers can catch what they
can handle (a :class:`StepConflict`, an :class:`AuthError`, ...).
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

__all__ = [
    "OptimizerdError",
    "BadRequest",
    "AuthError",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "StepConflict",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "Unprocessable",
    "ServiceUnavailable",
    "ConnectionFailed",
    "error_from_response",
]


class OptimizerdError(Exception):
    """An error answered by the daemon (or the failure to reach it).

    Attributes:
        status: the HTTP status (``None`` for :class:`ConnectionFailed`).
        title: the problem's title (the status's reason phrase).
        detail: the problem's detail; it names the offending field or tensor.
        type: the problem's type URI, e.g. ``urn:optimizerd:problem:unknown-tensor``.
        body: the parsed problem document (or ``None`` when the body was not JSON).
    """

    def __init__(
        self,
        status: Optional[int],
        title: str,
        detail: str,
        type: Optional[str] = None,  # noqa: A002 - the RFC 9457 member name
        body: Optional[dict[str, Any]] = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.body = body
        super().__init__(str(self))

    @property
    def kind(self) -> Optional[str]:
        """The last segment of :attr:`type` (``"unknown-tensor"``), if any."""
        if not self.type:
            return None
        return self.type.rsplit(":", 1)[-1]

    def __str__(self) -> str:
        prefix = f"{self.status} {self.title}" if self.status is not None else self.title
        return f"{prefix}: {self.detail}" if self.detail else prefix

    def __reduce__(self):  # keep exceptions picklable despite the custom __init__
        return (self.__class__, (self.status, self.title, self.detail, self.type, self.body))


class BadRequest(OptimizerdError):
    """400: malformed body, bad JSON, unknown optimizer or hyperparameter, bad query."""


class AuthError(OptimizerdError):
    """401 or 403: a missing token, or one that is not valid for this session."""


class Unauthorized(AuthError):
    """401: no bearer token was sent."""


class Forbidden(AuthError):
    """403: the bearer token is not this session's nor the admin token."""


class NotFound(OptimizerdError):
    """404: no such session (deleted, or never created on this daemon)."""


class StepConflict(OptimizerdError):
    """409: the request's ``step`` does not follow the session's current step.

    Attributes:
        current_step: the session's step as the daemon reported it in the detail, or ``None``
            when the detail does not say (e.g. a retry asking for a delta that was not kept).
    """

    _pattern = re.compile(r"session is at step (\d+)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        match = self._pattern.search(self.detail or "")
        self.current_step: Optional[int] = int(match.group(1)) if match else None


class PayloadTooLarge(OptimizerdError):
    """413: the body (or what it inflates to) exceeds the daemon's ``--max-body-bytes``."""


class UnsupportedMediaType(OptimizerdError):
    """415: an unknown ``Content-Encoding``."""


class Unprocessable(OptimizerdError):
    """422: unknown/missing/duplicate tensor, wrong shape, NaN/Inf, missing loss or term."""


class ServiceUnavailable(OptimizerdError):
    """503: the daemon is shutting down or overloaded (retried before this is raised)."""


class InsufficientStorage(OptimizerdError):
    """507: refused for room, nothing changed.

    ``kind == "memory-budget-exceeded"``: the request would pass the daemon's ``--max-memory``
    (its detail names the budget and what is in use); otherwise its data directory is full.
    Retrying the same request only helps once sessions are deleted or space is freed.
    """


class ConnectionFailed(OptimizerdError):
    """The daemon could not be reached (or the answer was lost) after every retry.

    The underlying ``requests`` exception is chained as ``__cause__``.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(None, "connection failed", detail)

    def __reduce__(self):
        return (self.__class__, (self.detail,))


_BY_STATUS: dict[int, type[OptimizerdError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: StepConflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: Unprocessable,
    503: ServiceUnavailable,
    507: InsufficientStorage,
}


def error_from_response(response: Any) -> OptimizerdError:
    """The exception for an error response (a ``requests.Response``, or the transport's ``Answer``, with status ≥ 400).

    Reads the problem document when there is one; otherwise keeps the start of the body as the
    detail (a proxy's HTML error page, for instance).
    """
    status = int(response.status_code)
    body: Optional[dict[str, Any]] = None
    content_type = response.headers.get("Content-Type", "")
    if "json" in content_type:
        try:
            parsed = json.loads(response.content.decode("utf-8"))
            if isinstance(parsed, dict):
                body = parsed
        except (ValueError, UnicodeDecodeError):
            body = None
    if body is not None:
        title = str(body.get("title") or response.reason or "error")
        detail = str(body.get("detail") or "")
        type_ = body.get("type")
    else:
        title = str(response.reason or "error")
        detail = response.content[:2000].decode("utf-8", "replace").strip()
        type_ = None
    cls = _BY_STATUS.get(status, OptimizerdError)
    return cls(status, title, detail, type_, body)

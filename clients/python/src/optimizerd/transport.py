"""HTTP transport: one ``requests.Session`` (keep-alive connection reuse), timeouts, and retries
with exponential backoff.

What is retried:

- connection errors, timeouts and broken responses, for requests that are safe to send twice:
  reads, PUT/PATCH/DELETE, and steps, which always carry their ``step`` number so that the daemon
  answers a repeated step from its idempotent-retry path instead of applying it again;
- the same errors for ``POST /v1/sessions`` only when the request cannot have reached the daemon
  (the connection was never established), so a retry never leaves a second session behind;
- ``503 Service Unavailable`` for every request (the daemon did not process it), honouring
  ``Retry-After`` when it is a number of seconds.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar, Union
from urllib.parse import urlencode

import requests
import urllib3

from .body import Body
from .connection import Connection
from .errors import ConnectionFailed, error_from_response

__all__ = ["Transport", "Timeout", "Answer"]

T = TypeVar("T")

#: A timeout in seconds: one number for both phases, or ``(connect, read)``.
Timeout = Union[float, tuple[float, float]]

# Errors after which the request may or may not have been processed (urllib3's own come from
# reading a streamed body).
_TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.HTTPError,
)


def _never_sent(error: BaseException) -> bool:
    """Whether ``error`` happened before any byte of the request could reach the daemon."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    if isinstance(error, requests.ConnectionError) and error.args:
        reason = error.args[0]
        reason = getattr(reason, "reason", reason)  # MaxRetryError wraps the cause
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


# The same for the tensor routes' own connection.
_TRANSIENT_STDLIB = (OSError, http.client.HTTPException)


@dataclass
class Answer:
    """What :meth:`Transport.exchange` hands to its reader and to error handling."""

    status_code: int
    reason: str
    headers: Any  # http.client's message: case-insensitive ``get``
    response: http.client.HTTPResponse
    content: bytes = b""

    @property
    def length(self) -> Optional[int]:
        """The body's ``Content-Length``, if sent."""
        value = self.headers.get("Content-Length")
        return int(value) if value is not None else None


class Transport:
    """Sends requests to one daemon and turns error answers into exceptions.

    The JSON routes go through ``requests``; the tensor routes (:meth:`exchange`) through one
    keep-alive :class:`~optimizerd.connection.Connection` that sends bodies from their parts and
    reads answers into the caller's arrays. Exchanges are serialised by a lock, so a background
    thread may step while another thread uses the same client.

    Thread-safety: ``requests.Session`` is not guaranteed thread-safe; use one client per thread
    (or serialise calls) for the JSON routes when calling them from several threads.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: Timeout = 60.0,
        retries: int = 5,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        verify: Union[bool, str] = True,
        http: Optional[requests.Session] = None,
    ) -> None:
        if "://" not in url:
            url = "http://" + url
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.http = http or requests.Session()
        self.http.verify = verify
        self.http.headers["User-Agent"] = "optimizerd-python"
        self.connection = Connection(self.url, timeout, verify)
        self._lock = threading.Lock()
        #: Number of retries made so far (all requests), for tests and monitoring.
        self.retry_count = 0

    def close(self) -> None:
        """Closes the pooled connections."""
        self.http.close()
        with self._lock:
            self.connection.close()

    def exchange(
        self,
        method: str,
        path: str,
        reader: Callable[[Answer], T],
        *,
        token: Optional[str] = None,
        body: Optional[Body] = None,
        headers: Optional[Mapping[str, str]] = None,
        params: Optional[Mapping[str, Any]] = None,
    ) -> tuple[T, Answer]:
        """One request on a tensor route, retried as described in the module docstring (every
        tensor route may be repeated: steps carry their step number).

        Args:
            method: HTTP method.
            path: path below the base URL.
            reader: reads a successful answer's body (it must consume all of it) and returns the
                result.
            token: bearer token.
            body: the request body, sent from its parts.
            headers: extra headers.
            params: query parameters (``None`` values are left out).

        Returns:
            (the reader's result, the answer's status and headers).
        """
        all_headers = {"User-Agent": "optimizerd-python", "Content-Length": str(len(body) if body else 0)}
        all_headers.update(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        target = path + ("?" + urlencode(query) if query else "")
        attempt = 0
        with self._lock:
            while True:
                try:
                    self.connection.open()
                    self.connection.send(method, target, all_headers, body or ())
                    response = self.connection.response()
                    answer = Answer(response.status, response.reason, response.headers, response)
                    if answer.status_code < 300:
                        result = reader(answer)
                        if not response.isclosed():
                            response.read()  # the end of the body, so the connection can be reused
                        return result, answer
                    answer.content = response.read()
                except _TRANSIENT_STDLIB as error:
                    self.connection.close()
                    if attempt >= self.retries:
                        raise ConnectionFailed(
                            f"{method} {path}: {type(error).__name__}: {error} (after {attempt + 1} attempt(s))"
                        ) from error
                    time.sleep(self.delay(attempt))
                    attempt += 1
                    self.retry_count += 1
                    continue
                except BaseException:
                    self.connection.close()  # a reader's error: what is left of the body is unknown
                    raise
                if answer.status_code == 503 and attempt < self.retries:
                    time.sleep(self._retry_after(answer, attempt))
                    attempt += 1
                    self.retry_count += 1
                    continue
                raise error_from_response(answer)

    def delay(self, attempt: int) -> float:
        """The pause before retry number ``attempt`` (0-based): exponential, with jitter, capped."""
        base = min(self.max_backoff, self.backoff * (2.0**attempt))
        return base * (0.5 + 0.5 * random.random())

    def request(
        self,
        method: str,
        path: str,
        *,
        token: Optional[str] = None,
        json_body: Any = None,
        data: Optional[bytes] = None,
        headers: Optional[Mapping[str, str]] = None,
        params: Optional[Mapping[str, Any]] = None,
        idempotent: bool = True,
        ok_after_retry: Collection[int] = (),
        binary: bool = False,
    ) -> requests.Response:
        """Sends one request, retrying as described in the module docstring.

        Args:
            method: HTTP method.
            path: path below the base URL, starting with ``/``.
            token: bearer token for ``Authorization``.
            json_body: a JSON-serialisable body (sent as ``application/json``).
            data: a binary body (sent as given; set ``Content-Type`` in ``headers``).
            headers: extra headers.
            params: query parameters (``None`` values are left out).
            idempotent: whether the request may be repeated after an ambiguous failure.
            ok_after_retry: statuses that mean success when they answer a *retry* (e.g. 404 for a
                DELETE whose first attempt was applied but whose answer was lost).
            binary: the answer is a (possibly large) binary body: read it in one piece instead of
                requests' 10 KiB chunks (3x faster for tens of MB). ``response.content`` holds it.

        Returns:
            The response (status < 400).

        Raises:
            OptimizerdError: the daemon's problem answer, as the subclass for its status.
            ConnectionFailed: the daemon could not be reached after every retry.
        """
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        body = data
        if json_body is not None:
            body = json.dumps(json_body, default=_json_default).encode("utf-8")
            all_headers.setdefault("Content-Type", "application/json")
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = self.url + path
        attempt = 0
        while True:
            try:
                response = self.http.request(
                    method, url, data=body, headers=all_headers, params=query or None, timeout=self.timeout,
                    stream=binary,
                )  # fmt: skip
                if binary and response.status_code < 300:
                    _read_whole_body(response)
            except _TRANSIENT as error:
                if attempt >= self.retries or not (idempotent or _never_sent(error)):
                    raise ConnectionFailed(
                        f"{method} {path}: {type(error).__name__}: {error} (after {attempt + 1} attempt(s))"
                    ) from error
                time.sleep(self.delay(attempt))
                attempt += 1
                self.retry_count += 1
                continue
            if response.status_code == 503 and attempt < self.retries:
                response.close()
                time.sleep(self._retry_after(response, attempt))
                attempt += 1
                self.retry_count += 1
                continue
            if attempt > 0 and response.status_code in ok_after_retry:
                return response
            if response.status_code >= 400:
                raise error_from_response(response)
            return response

    def _retry_after(self, response: Any, attempt: int) -> float:
        header = response.headers.get("Retry-After")
        if header is not None:
            try:
                return min(self.max_backoff, max(0.0, float(header)))
            except ValueError:
                pass
        return self.delay(attempt)


def _read_whole_body(response: requests.Response) -> None:
    """Reads a streamed body in one call (decompressing it) and stores it as ``response.content``.

    Reading to the end returns the connection to the pool, so keep-alive is preserved.
    """
    try:
        content = response.raw.read(decode_content=True)
    except BaseException:
        response.close()
        raise
    response._content = content  # what requests itself fills in when it reads the body
    response._content_consumed = True  # type: ignore[attr-defined]


def _json_default(value: Any) -> Any:
    """JSON for NumPy scalars and arrays, tuples and sets in request bodies."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")

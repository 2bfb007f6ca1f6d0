"""One keep-alive HTTP/1.1 connection for the tensor routes (stdlib ``http.client``).

Request bodies are written from their parts (:class:`~optimizerd.body.Body`) with one
``Content-Length``; answers are read with ``readinto`` straight into the caller's buffers. The
JSON routes keep using ``requests`` (:mod:`optimizerd.transport`).
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
from collections.abc import Iterable, Mapping
from typing import Optional, Union
from urllib.parse import urlsplit

__all__ = ["Connection", "read_exactly"]


class Connection:
    """A reusable connection to one daemon. Not thread-safe: the transport serialises its use."""

    def __init__(
        self, url: str, timeout: Union[float, tuple[float, float]], verify: Union[bool, str] = True
    ) -> None:
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.connect_timeout, self.read_timeout = (
            timeout if isinstance(timeout, tuple) else (timeout, timeout)
        )
        self.verify = verify
        self._http: Optional[http.client.HTTPConnection] = None

    def open(self) -> bool:
        """Connects unless a live connection is kept; returns whether a new one was made.

        A kept connection that the daemon closed meanwhile (its idle timeout) is replaced.
        """
        if self._http is not None and self._http.sock is not None and not _closed_by_peer(self._http.sock):
            return False
        self.close()
        if self.https:
            context = ssl.create_default_context(cafile=self.verify if isinstance(self.verify, str) else None)
            if self.verify is False:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.connect_timeout, context=context
            )
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)
        connection.connect()
        connection.sock.settimeout(self.read_timeout)
        self._http = connection
        return True

    def send(self, method: str, target: str, headers: Mapping[str, str], body: Iterable[memoryview]) -> None:
        """Writes the request head, then the body's parts one after the other."""
        connection = self._require()
        connection.putrequest(method, self.prefix + target, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        for part in body:
            if part.nbytes:
                connection.sock.sendall(part)

    def response(self) -> http.client.HTTPResponse:
        """The answer's status line and headers; its body is read by the caller."""
        return self._require().getresponse()

    def close(self) -> None:
        """Closes the socket (a request in flight is abandoned: the daemon sees a cut body, and a
        thread blocked on the socket wakes up with an error)."""
        connection, self._http = self._http, None
        if connection is not None:
            if connection.sock is not None:
                try:
                    connection.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            connection.close()

    def _require(self) -> http.client.HTTPConnection:
        if self._http is None:
            raise ConnectionError("the connection is closed")
        return self._http


def read_exactly(response: http.client.HTTPResponse, buffer: memoryview) -> None:
    """Fills ``buffer`` from the answer's body; ``EOFError`` when the body ends first."""
    view = buffer.cast("B") if buffer.format != "B" else buffer
    filled = 0
    while filled < len(view):
        count = response.readinto(view[filled:])
        if not count:
            raise http.client.IncompleteRead(b"", len(view) - filled)
        filled += count


def _closed_by_peer(sock) -> bool:
    """Whether the peer closed an idle connection (it is readable: EOF, or stray bytes)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)

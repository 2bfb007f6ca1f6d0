"""A raw HTTP/1.1 connection for the hostile clients: they must control every byte and every
pause (slow uploads, disconnects mid-body, resets), which http.client does not allow."""

from __future__ import annotations

import json
import socket
import struct
import time
from dataclasses import dataclass, field


class Closed(Exception):
    """The daemon closed the connection (or reset it) before a full response arrived."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def problem(self) -> dict:
        """The problem+json body ({} if it is not one)."""
        if not self.headers.get("content-type", "").startswith("application/problem+json"):
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            return {}


class RawConnection:
    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self, reset: bool = False) -> None:
        """Closes the socket; `reset` sends an RST instead of a FIN (SO_LINGER 0), as a crashed
        client's kernel would."""
        try:
            if reset:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def is_closed_by_peer(self, wait: float) -> bool:
        """Whether the daemon closed the connection within `wait` seconds (reading nothing else)."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            return True
        if data:
            self.buffer += data
            return False
        return True

    # MARK: reading responses

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete response in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except ConnectionError as error:
            raise Closed(str(error)) from error
        if not data:
            raise Closed("connection closed by the daemon")
        self.buffer += data

    def read_head(self, timeout: float = 30.0) -> Answer:
        """The status line and headers of the next final response (1xx interim answers skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\r\n\r\n" not in self.buffer:
                self._fill(deadline)
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            if 100 <= status < 200:
                continue
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            return Answer(status, headers)

    def read_response(self, timeout: float = 30.0) -> Answer:
        """A whole response (Content-Length or chunked body)."""
        deadline = time.monotonic() + timeout
        answer = self.read_head(timeout)
        if answer.headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buffer:
                    self._fill(deadline)
                size_line, self.buffer = self.buffer.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(self.buffer) < size + 2:
                    self._fill(deadline)
                body += self.buffer[:size]
                self.buffer = self.buffer[size + 2 :]
                if size == 0:
                    break
        else:
            length = int(answer.headers.get("content-length", "0"))
            while len(self.buffer) < length:
                self._fill(deadline)
            body, self.buffer = self.buffer[:length], self.buffer[length:]
        answer.body = body
        return answer


def request_head(
    method: str, path: str, headers: dict[str, str] | None = None, length: int | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def exchange(
    host: str,
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 60.0,
) -> Answer:
    """One request on a fresh connection, its whole answer."""
    with RawConnection(host, port, timeout) as connection:
        has_body = bool(body) or method in {"POST", "PUT", "PATCH"}
        connection.send(request_head(method, path, headers, len(body) if has_body else None) + body)
        return connection.read_response(timeout)

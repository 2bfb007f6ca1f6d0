"""Test helpers that misbehave on purpose: a TCP proxy that cuts connections, and an HTTP server
that answers 503 a few times."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional


class FlakyProxy:
    """A TCP proxy on 127.0.0.1 in front of ``target_port`` that can cut one exchange.

    - ``drop_next_response()``: the next request is forwarded; when the daemon's answer arrives,
      the client's connection is closed instead (the step was applied, the client never hears).
    - ``drop_next_request()``: the next request is not forwarded; the connection is closed.
    - ``cut_next_response(after)``: the next answer is forwarded up to ``after`` bytes, then the
      connection is closed (a cut in the middle of the body).

    Everything else is forwarded unchanged. ``events`` records what was dropped.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._drop_responses = 0
        self._drop_requests = 0
        self._cut_after: Optional[int] = None
        self._sockets: list[socket.socket] = []
        self._closed = False
        self.events: list[str] = []
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def drop_next_response(self) -> None:
        with self._lock:
            self._drop_responses += 1

    def drop_next_request(self) -> None:
        with self._lock:
            self._drop_requests += 1

    def cut_next_response(self, after: int) -> None:
        with self._lock:
            self._cut_after = after

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)

    def __enter__(self) -> FlakyProxy:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                _shut(downstream)
                continue
            with self._lock:
                self._sockets += [downstream, upstream]
                self.connections += 1
            threading.Thread(target=self._pump, args=(downstream, upstream, "request"), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, downstream, "response"), daemon=True).start()

    def _take(self, direction: str) -> bool:
        with self._lock:
            if direction == "request" and self._drop_requests:
                self._drop_requests -= 1
                return True
            if direction == "response" and self._drop_responses:
                self._drop_responses -= 1
                return True
            return False

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str) -> None:
        cut_after: Optional[int] = None
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if cut_after is None and direction == "response":
                    with self._lock:
                        cut_after, self._cut_after = self._cut_after, None
                if cut_after is not None:
                    sink.sendall(data[:cut_after])
                    cut_after -= min(cut_after, len(data))
                    if cut_after == 0:
                        self.events.append("cut response")
                        break
                    continue
                if self._take(direction):
                    self.events.append(f"dropped {direction} ({len(data)} bytes)")
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _shut(source)
            _shut(sink)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class Unavailable:
    """An HTTP server on 127.0.0.1 that answers 503 (problem+json, ``Retry-After: 0``) to the first
    ``failures`` requests and 200 ``{"status": "ok"}`` afterwards."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.requests += 1
                if outer.requests <= outer.failures:
                    body = json.dumps(
                        {"type": "urn:optimizerd:problem:shutting-down", "title": "Service Unavailable",
                         "status": 503, "detail": "the daemon is shutting down"}
                    ).encode()  # fmt: skip
                    self.send_response(503)
                    self.send_header("Content-Type", "application/problem+json")
                    self.send_header("Retry-After", "0")
                else:
                    body = b'{"status":"ok"}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> Unavailable:
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()

"""The floor for an HTTP round trip: a trivial HTTP/1.1 server that answers every request with its
own body, byte for byte.

    python3 benchmarks/echo_server.py PORT

It does only what any HTTP server must: reads the head, answers `Expect: 100-continue`, receives
`Content-Length` bytes into one buffer reused across requests (`recv_into`, no per-request
allocation) and sends them back on the same keep-alive connection (to a path starting with /sink it
answers with an empty body instead: an upload's floor). One thread per connection.
benchmarks/wire_speed.py runs it next to optimizerd and the FastAPI + torch peer: a step can be no
faster than this server moving the same bytes in and out.
"""

from __future__ import annotations

import socket
import sys
import threading

HEAD_END = b"\r\n\r\n"


def serve_connection(connection: socket.socket) -> None:
    buffer = bytearray(1 << 20)
    pending = b""
    with connection:
        while True:
            while HEAD_END not in pending:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                pending += chunk
            head, _, pending = pending.partition(HEAD_END)
            fields = {}
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                fields[name.strip().lower()] = value.strip()
            length = int(fields.get(b"content-length", b"0"))
            if fields.get(b"expect", b"").lower() == b"100-continue":
                connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            if len(buffer) < length:
                buffer = bytearray(length)
            view = memoryview(buffer)
            received = min(len(pending), length)
            view[:received] = pending[:received]
            pending = pending[received:]
            while received < length:
                count = connection.recv_into(view[received:length])
                if count == 0:
                    return
                received += count
            answer = 0 if head.split(b" ")[1].startswith(b"/sink") else length
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                + b"Content-Length: %d\r\n\r\n" % answer
            )
            connection.sendall(view[:answer])


def main() -> None:
    port = int(sys.argv[1])
    listener = socket.create_server(("127.0.0.1", port))
    while True:
        connection, _ = listener.accept()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve_connection, args=(connection,), daemon=True).start()


if __name__ == "__main__":
    main()

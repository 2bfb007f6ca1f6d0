"""Hostile clients: slow uploaders, clients that vanish mid-body or mid-response, oversized and
garbage requests, attempts on other sessions. Each worker owns one small session of its own (for
the uploads that may legitimately finish) and cycles through every kind of abuse.

Every attempt is recorded as (kind, outcome): the HTTP status, or what happened to the connection
("closed" by the daemon, "held" until the client gave up, "sent" when no answer is expected). An
outcome outside the kind's expected set is a violation.
"""

from __future__ import annotations

import functools
import json
import random
import socket
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from load_http import Closed, RawConnection, exchange, request_head
from load_wire import MODELS, encode, f32, gradient_sets, initial_parameters

#: The outcomes each kind may have. "closed": the daemon closed the connection (stalls, after the
#: idle timeout); "sent": the client vanished, nothing to read.
EXPECTED: dict[str, set[str]] = {
    "slowloris-head": {"closed"},
    "slow-upload-finish": {"200"},
    "slow-upload-stall": {"closed"},
    "slow-upload-abandon": {"sent"},
    "disconnect-mid-body": {"sent"},
    "disconnect-before-response": {"200"},  # the retry that settles what happened
    "disconnect-mid-response": {"200"},
    "stalled-reader": {"sent"},
    "oversized-length": {"413"},
    "oversized-chunked": {"413"},
    "gzip-bomb": {"413"},
    "json-too-large": {"413"},
    "garbage": {"400", "closed"},
    "huge-header": {"431"},
    "many-tensors": {"400"},
    "long-name": {"400"},
    "bad-safetensors": {"400"},
    "wrong-method": {"405"},
    "unknown-path": {"404"},
    "cross-session": {"403"},
    "no-token": {"401"},
    "connection-flood": {"held"},
}

#: Kinds that take long (they stall on purpose) run less often than the quick ones.
SLOW_KINDS = {
    "slowloris-head",
    "slow-upload-stall",
    "connection-flood",
    "slow-upload-finish",
    "stalled-reader",
}


@dataclass
class HostileLog:
    """What every hostile worker did, shared (guarded by `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    outcomes: Counter = field(default_factory=Counter)  # (kind, outcome) -> count
    violations: list = field(default_factory=list)
    held_seconds: dict = field(default_factory=dict)  # kind -> [seconds until the daemon closed]

    def record(self, kind: str, outcome: str, detail: str = "", held: float | None = None) -> None:
        with self.lock:
            self.outcomes[(kind, outcome)] += 1
            if outcome not in EXPECTED[kind] and len(self.violations) < 200:
                self.violations.append(f"{kind}: {outcome} {detail}".strip())
            if held is not None:
                self.held_seconds.setdefault(kind, []).append(held)


class HostileWorker:
    def __init__(
        self,
        index: int,
        host: str,
        port: int,
        log: HostileLog,
        max_body_bytes: int,
        idle_timeout: float,
        victims: list,
        kinds: list[str],
    ) -> None:
        self.index = index
        self.host, self.port = host, port
        self.log = log
        self.max_body_bytes = max_body_bytes
        self.idle_timeout = idle_timeout
        self.victims = victims  # LegitClient objects: their ids (never their tokens) are attacked
        self.kinds = kinds
        self.rng = random.Random(5000 + index)
        self.session_id = ""
        self.token = ""
        self.acked = 0
        self.parameters = initial_parameters("small", 5000 + index)
        self.gradients = gradient_sets("small", 5000 + index)

    # MARK: own session

    def create(self) -> None:
        body = json.dumps({"optimizer": "adam", "name": f"hostile-{self.index}"}).encode()
        answer = exchange(
            self.host, self.port, "POST", "/v1/sessions", {"Content-Type": "application/json"}, body
        )
        if answer.status != 201:
            raise RuntimeError(f"hostile {self.index}: create answered {answer.status}")
        created = json.loads(answer.body)
        self.session_id, self.token = created["id"], created["token"]
        upload = encode({name: f32(value) for name, value in self.parameters.items()})
        answer = exchange(self.host, self.port, "PUT", self.path("/parameters"), self.auth, upload)
        if answer.status != 200:
            raise RuntimeError(f"hostile {self.index}: upload answered {answer.status}")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def path(self, suffix: str = "") -> str:
        return f"/v1/sessions/{self.session_id}{suffix}"

    def step_body(self, number: int) -> bytes:
        grads = self.gradients[number % len(self.gradients)]
        return encode({name: f32(value) for name, value in grads.items()}, {"step": str(number)})

    def step_request(self, number: int, query: str = "") -> tuple[bytes, bytes]:
        body = self.step_body(number)
        return request_head("POST", self.path("/step" + query), self.auth, len(body)), body

    def settle(self) -> None:
        """Makes sure the daemon and this worker agree on the session's step: repeats the next step
        until it is acknowledged (an idempotent retry if a vanished request was applied)."""
        number = self.acked + 1
        head, body = self.step_request(number, "?return=none")
        for _ in range(10):
            try:
                with RawConnection(self.host, self.port, 60) as connection:
                    connection.send(head + body)
                    answer = connection.read_response(60)
            except (OSError, Closed):
                time.sleep(0.2)
                continue
            if answer.status == 200 and answer.headers.get("optimizerd-step") == str(number):
                self.acked = number
            self.log.record(
                "disconnect-before-response", str(answer.status), answer.body[:200].decode(errors="replace")
            )
            return
        self.log.record("disconnect-before-response", "no-answer")

    # MARK: running

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            kind = self.rng.choice(self.kinds)
            if kind in SLOW_KINDS and self.rng.random() < 0.6:
                continue
            try:
                getattr(self, "do_" + kind.replace("-", "_"))(stop)
            except (OSError, Closed) as error:
                # A connection the daemon reset or closed where an answer was expected.
                self.log.record(
                    kind, "closed" if isinstance(error, (Closed, ConnectionError)) else "error", repr(error)
                )
            except Exception as error:  # noqa: BLE001 - a bug in the tool must be seen
                self.log.record(kind, "tool-error", repr(error))
        self.settle()

    def _answer(self, kind: str, answer, must_mention: str = "") -> None:
        problem = answer.problem()
        detail = problem.get("detail", "") if problem else answer.body[:200].decode(errors="replace")
        outcome = str(answer.status)
        if answer.status >= 400 and not problem:
            outcome += "-not-problem-json"
        elif must_mention and must_mention not in detail:
            outcome += "-detail-missing-" + must_mention
        self.log.record(kind, outcome, detail)

    def _wait_for_close(
        self, connection: RawConnection, kind: str, started: float, stop: threading.Event
    ) -> None:
        """Waits until the daemon closes the stalled connection (recorded with the time it took) or
        the idle timeout has passed by a wide margin ("held")."""
        give_up = started + self.idle_timeout + 15
        while time.monotonic() < give_up:
            if connection.is_closed_by_peer(1.0):
                self.log.record(kind, "closed", held=time.monotonic() - started)
                return
            if stop.is_set():
                return  # the run ended first: no verdict
        self.log.record(
            kind, "held", f"open after {time.monotonic() - started:.0f} s", held=time.monotonic() - started
        )

    # MARK: slow and vanishing clients

    def do_slowloris_head(self, stop: threading.Event) -> None:
        """A request head sent one byte a second, never finished."""
        with RawConnection(self.host, self.port) as connection:
            started = time.monotonic()
            connection.send(b"POST " + self.path("/step").encode() + b" HTTP/1.1\r\nHost: x\r\n")
            give_up = started + self.idle_timeout + 15
            for byte in b"X-Padding: " + b"a" * 10_000:
                if stop.is_set():
                    return  # the run ended first: no verdict
                if time.monotonic() > give_up:
                    break
                try:
                    connection.send(bytes([byte]))
                except OSError:
                    break
                if connection.is_closed_by_peer(1.0):
                    self.log.record("slowloris-head", "closed", held=time.monotonic() - started)
                    return
            self.log.record("slowloris-head", "held", held=time.monotonic() - started)

    def do_slow_upload_finish(self, stop: threading.Event) -> None:
        """A step body a few bytes at a time with short stalls (well inside the idle timeout), then
        the rest: it must be applied like any other step."""
        number = self.acked + 1
        head, body = self.step_request(number, "?return=none")
        with RawConnection(self.host, self.port, 120) as connection:
            connection.send(head)
            position = 0
            pause_budget = 2.0 + self.rng.random() * 3  # seconds spent trickling
            trickle_until = time.monotonic() + pause_budget
            while position < len(body) and time.monotonic() < trickle_until:
                size = self.rng.randint(1, 16)
                connection.send(body[position : position + size])
                position += size
                time.sleep(min(0.2, self.idle_timeout / 4) if self.rng.random() < 0.1 else 0.01)
            connection.send(body[position:])
            answer = connection.read_response(120)
        if answer.status == 200:
            self.acked = number
        self._answer("slow-upload-finish", answer)

    def do_slow_upload_stall(self, stop: threading.Event) -> None:
        """Part of a step body, then nothing: the daemon must drop the connection, not the session."""
        head, body = self.step_request(self.acked + 1)
        with RawConnection(self.host, self.port) as connection:
            connection.send(head + body[: self.rng.randint(1, len(body) - 1)])
            self._wait_for_close(connection, "slow-upload-stall", time.monotonic(), stop)

    def do_slow_upload_abandon(self, stop: threading.Event) -> None:
        head, body = self.step_request(self.acked + 1)
        connection = RawConnection(self.host, self.port)
        connection.send(head)
        for _ in range(self.rng.randint(5, 50)):
            connection.send(body[:4])
            body = body[4:]
            time.sleep(0.02)
        connection.close(reset=self.rng.random() < 0.5)
        self.log.record("slow-upload-abandon", "sent")

    def do_disconnect_mid_body(self, stop: threading.Event) -> None:
        head, body = self.step_request(self.acked + 1)
        connection = RawConnection(self.host, self.port)
        connection.send(head + body[: self.rng.randint(0, len(body) - 1)])
        connection.close(reset=self.rng.random() < 0.5)
        self.log.record("disconnect-mid-body", "sent")

    def do_disconnect_before_response(self, stop: threading.Event) -> None:
        """The whole step sent, then gone: the outcome is unknown until settle() repeats it."""
        head, body = self.step_request(self.acked + 1)
        connection = RawConnection(self.host, self.port)
        connection.send(head + body)
        connection.close(reset=True)
        self.settle()

    def do_disconnect_mid_response(self, stop: threading.Event) -> None:
        """A step whose answer (the parameters) is dropped after its head."""
        number = self.acked + 1
        head, body = self.step_request(number)
        connection = RawConnection(self.host, self.port, 60)
        connection.send(head + body)
        answer = connection.read_head(60)
        connection.close(reset=True)
        if answer.status == 200 and answer.headers.get("optimizerd-step") == str(number):
            self.acked = number
        self.log.record("disconnect-mid-response", str(answer.status))

    def do_stalled_reader(self, stop: threading.Event) -> None:
        """Parameters asked for on several connections and never read, for a while."""
        connections = []
        for _ in range(4):
            connection = RawConnection(self.host, self.port)
            connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            connection.send(request_head("GET", self.path("/parameters"), self.auth))
            connections.append(connection)
        stop.wait(min(5.0, self.idle_timeout))
        for connection in connections:
            connection.close(reset=True)
        self.log.record("stalled-reader", "sent")

    def do_connection_flood(self, stop: threading.Event) -> None:
        """Many idle connections at once, held a few seconds (the health poller must not notice)."""
        connections = []
        for _ in range(100):
            try:
                connections.append(RawConnection(self.host, self.port, 5))
            except OSError:
                break
        time.sleep(3)
        for connection in connections:
            connection.close()
        self.log.record(
            "connection-flood", "held" if len(connections) == 100 else f"refused-after-{len(connections)}"
        )

    # MARK: oversized bodies

    def do_oversized_length(self, stop: threading.Event) -> None:
        with RawConnection(self.host, self.port) as connection:
            connection.send(
                request_head("POST", self.path("/step"), self.auth, self.max_body_bytes + 1) + b"\0" * 1024
            )
            self._answer("oversized-length", connection.read_response(), "limit")

    def do_oversized_chunked(self, stop: threading.Event) -> None:
        """A chunked body that never ends: the answer must come once it passes the limit."""
        head = request_head("POST", self.path("/step"), dict(self.auth, **{"Transfer-Encoding": "chunked"}))
        chunk = b"%x\r\n" % 65536 + b"\0" * 65536 + b"\r\n"
        with RawConnection(self.host, self.port) as connection:
            connection.send(head)
            sent = 0
            try:
                while sent <= self.max_body_bytes + 65536:
                    connection.send(chunk)
                    sent += 65536
                connection.send(b"0\r\n\r\n")
            except OSError:
                pass  # the daemon answered and closed: read what it said
            self._answer("oversized-chunked", connection.read_response(), "limit")

    def do_gzip_bomb(self, stop: threading.Event) -> None:
        bomb = gzip_bomb(self.max_body_bytes * 4)
        headers = dict(self.auth, **{"Content-Encoding": "gzip"})
        target = self.path("/step") if self.rng.random() < 0.5 else self.path("/parameters")
        method = "POST" if target.endswith("/step") else "PUT"
        self._answer("gzip-bomb", exchange(self.host, self.port, method, target, headers, bomb), "limit")

    def do_json_too_large(self, stop: threading.Event) -> None:
        body = json.dumps({"optimizer": "adam", "name": "x" * (2 << 20)}).encode()
        if self.rng.random() < 0.5:
            answer = exchange(
                self.host, self.port, "POST", "/v1/sessions", {"Content-Type": "application/json"}, body
            )
        else:
            answer = exchange(
                self.host,
                self.port,
                "PATCH",
                self.path(),
                dict(self.auth, **{"Content-Type": "application/json"}),
                body,
            )
        self._answer("json-too-large", answer, "limit")

    # MARK: malformed requests

    def do_garbage(self, stop: threading.Event) -> None:
        samples = [
            bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(1, 4096))),
            b"GET / HTTP/9.9\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64,  # a TLS ClientHello on plain HTTP
            b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n",
            b"POST /v1/sessions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
            b"POST /v1/sessions HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        ]
        with RawConnection(self.host, self.port, 10) as connection:
            connection.send(self.rng.choice(samples))
            try:
                answer = connection.read_response(10)
            except (Closed, ConnectionError):
                self.log.record("garbage", "closed")
                return
            self.log.record("garbage", str(answer.status), answer.body[:200].decode(errors="replace"))

    def do_huge_header(self, stop: threading.Event) -> None:
        headers = dict(self.auth, **{"X-Padding": "p" * (128 << 10)})
        try:
            answer = exchange(self.host, self.port, "GET", self.path(), headers, timeout=10)
        except (Closed, ConnectionError):
            self.log.record("huge-header", "closed")
            return
        self._answer("huge-header", answer)

    def do_many_tensors(self, stop: threading.Event) -> None:
        body = many_tensors(150_000)
        self._answer(
            "many-tensors",
            exchange(self.host, self.port, "POST", self.path("/step"), self.auth, body),
            "tensors",
        )

    def do_long_name(self, stop: threading.Event) -> None:
        name = "n" * 5000
        body = encode({name: f32(np.zeros(1, np.float32))})
        self._answer(
            "long-name", exchange(self.host, self.port, "POST", self.path("/step"), self.auth, body), "nnnn"
        )

    def do_bad_safetensors(self, stop: threading.Event) -> None:
        good = self.step_body(self.acked + 1)
        samples = [
            good[: self.rng.randint(0, 7)],
            good[: self.rng.randint(8, len(good) - 1)],
            len(good).to_bytes(8, "little") + good[8:],  # a header length past the body
            good[:8] + b"[" + good[9:],  # the header is not a JSON object
        ]
        answer = exchange(
            self.host, self.port, "POST", self.path("/step"), self.auth, self.rng.choice(samples)
        )
        self._answer("bad-safetensors", answer)

    def do_wrong_method(self, stop: threading.Event) -> None:
        method, path = self.rng.choice(
            [
                ("PUT", self.path("/step")),
                ("DELETE", "/healthz"),
                ("POST", self.path("/history")),
                ("PATCH", "/v1/sessions"),
            ]
        )
        answer = exchange(self.host, self.port, method, path, self.auth)
        outcome = (
            str(answer.status) if answer.status != 405 or answer.headers.get("allow") else "405-without-allow"
        )
        self.log.record("wrong-method", outcome, f"{method} {path}")

    def do_unknown_path(self, stop: threading.Event) -> None:
        path = self.rng.choice(
            ["/v2/sessions", "/v1/sessions/x/y/z", "/%00", "/" + "a" * 5000, self.path("/steps")]
        )
        self._answer("unknown-path", exchange(self.host, self.port, "GET", path, self.auth))

    def do_cross_session(self, stop: threading.Event) -> None:
        """This worker's token on a legitimate client's session: never allowed, never changes it."""
        victim = self.rng.choice(self.victims)
        target = f"/v1/sessions/{victim.session_id}"
        shape = MODELS[victim.model]
        body = encode({name: f32(np.zeros(dims, np.float32)) for name, dims in shape.items()})
        method, suffix, payload = self.rng.choice(
            [
                ("GET", "", b""),
                ("GET", "/parameters", b""),
                ("GET", "/history", b""),
                ("GET", "/checkpoint", b""),
                ("POST", "/step", body),
                ("PUT", "/parameters", body),
                ("PUT", "/checkpoint", body),
                ("PATCH", "", b'{"hyperparameters":{"lr":1000}}'),
                ("DELETE", "", b""),
            ]
        )
        answer = exchange(self.host, self.port, method, target + suffix, self.auth, payload)
        self.log.record("cross-session", str(answer.status), f"{method} {suffix or '/'}")

    def do_no_token(self, stop: threading.Event) -> None:
        victim = self.rng.choice(self.victims)
        answer = exchange(self.host, self.port, "GET", f"/v1/sessions/{victim.session_id}/parameters")
        self._answer("no-token", answer)


# MARK: bodies built once


@functools.lru_cache(maxsize=4)
def gzip_bomb(inflated_bytes: int) -> bytes:
    """A gzip stream of `inflated_bytes` zeros (about 1000 times smaller)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"\0" * (1 << 20)
    parts = [compressor.compress(chunk) for _ in range(inflated_bytes >> 20)]
    return b"".join(parts) + compressor.flush()


@functools.lru_cache(maxsize=4)
def many_tensors(count: int) -> bytes:
    """A well-formed safetensors body listing `count` empty tensors."""
    header = ",".join(f'"t{i}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}' for i in range(count))
    text = ("{" + header + "}").encode()
    return len(text).to_bytes(8, "little") + text

"""Legitimate clients: each owns one session and steps it as fast as the daemon answers, with the
other calls a training job makes now and then (summary, history, parameters, PATCH).

A client remembers the last step it saw acknowledged. A transport error (reset, timeout, closed
keep-alive connection) is answered the documented way: the same request with the same `step` again,
which the daemon applies once at most; such retries are counted. Any other answer than 2xx is a
failure, and so is a response that contradicts what the client knows (wrong step, parameters that
differ from the last ones returned).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from load_wire import (
    Tensor,
    bf16,
    decode,
    encode,
    f32,
    gradient_sets,
    gzipped,
    i64,
    initial_parameters,
)

#: How often a transport error is retried before the step counts as failed.
MAX_ATTEMPTS = 8
#: Seconds a legitimate request may take (a debug build on a busy 2-core machine is slow).
REQUEST_TIMEOUT = 120.0


@dataclass(frozen=True)
class Profile:
    """What a client does: optimizer, model size and how its requests are shaped."""

    optimizer: str
    hyperparameters: dict
    model: str = "small"
    upload: str = "f32"  # gradients as f32 or bf16
    gzip: bool = False  # Content-Encoding: gzip
    accept_gzip: bool = False
    returns: str = "params"  # params | delta | none
    dtype: str = "f32"  # response dtype
    sparse: bool = False  # first tensor as P.indices + P.values

    @property
    def label(self) -> str:
        extras = (
            [self.upload, self.returns, self.dtype]
            + (["gzip"] if self.gzip else [])
            + (["sparse"] if self.sparse else [])
        )
        return f"{self.optimizer}/{self.model}/" + ",".join(extras)


#: Cycled through by client index; medium models appear every few clients.
PROFILES = [
    Profile("adam", {"lr": 1e-3}),
    Profile("adamw", {"lr": 1e-3}, model="medium", gzip=True, accept_gzip=True),
    Profile("sgd", {"lr": 0.01, "momentum": 0.9}, upload="bf16", returns="delta"),
    Profile("adafactor", {}, returns="none"),
    Profile("momo", {"lr": 1.0}, dtype="bf16"),
    Profile("mtadam", {"terms": 2, "lr": 1e-3}),
    Profile("acclip", {"lr": 1e-3}, model="medium", upload="bf16", dtype="f16"),
    Profile("momo_adam", {"lr": 1e-2}, gzip=True),
    Profile("adam", {"lr": 1e-3, "clip_grad_norm": 1.0}, sparse=True),
    Profile("sgd", {"lr": 0.01}, model="medium", returns="none"),
    Profile("adamw", {"lr": 1e-3, "amsgrad": True}, dtype="bf16", accept_gzip=True),
    Profile("adam", {"lr": 1e-3}, model="medium", upload="bf16", gzip=True, sparse=True),
]

#: Optimizers whose lr the clients change with PATCH now and then.
PATCHABLE = {"adam", "adamw", "sgd", "acclip", "momo_adam"}


@dataclass
class ClientStats:
    requests: Counter = field(default_factory=Counter)  # operation -> count
    step_latencies: list = field(default_factory=list)  # seconds, acknowledged steps
    transport_errors: list = field(default_factory=list)  # "client C step N: error" (each one retried)
    stale_connections: int = 0  # transport errors on a connection idle past the daemon's idle timeout
    retried_steps: int = 0  # steps acknowledged after a transport error
    retry_answers: int = 0  # answers with Optimizerd-Retry: true (the step had been applied before)
    failures: list = field(default_factory=list)


class LegitClient:
    def __init__(
        self,
        index: int,
        host: str,
        port: int,
        profile: Profile,
        large: bool = False,
        idle_timeout: float | None = None,
    ) -> None:
        self.index = index
        self.idle_timeout = idle_timeout
        self.host, self.port = host, port
        self.profile = profile
        self.model = "large" if large and profile.model == "medium" else profile.model
        self.stats = ClientStats()
        self.session_id = ""
        self.token = ""
        self.acked = 0
        self.last_returned: dict | None = None  # tensors of the last `return=params` answer
        self.connection: http.client.HTTPConnection | None = None
        self.answered_at = 0.0  # when the connection last finished an answer (monotonic)
        seed = 1000 + index
        self.parameters = initial_parameters(self.model, seed)
        self._gradients = [self._wire_tensors(g) for g in gradient_sets(self.model, seed)]

    @property
    def label(self) -> str:
        """The profile, with the model this client really uses (`--large` swaps medium for large)."""
        return self.profile.label.replace(f"/{self.profile.model}/", f"/{self.model}/", 1)

    # MARK: setup

    def create(self) -> None:
        body = {
            "optimizer": self.profile.optimizer,
            "hyperparameters": self.profile.hyperparameters,
            "name": f"load-{self.index}",
        }
        status, _, data = self._request(
            "POST", "/v1/sessions", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        if status != 201:
            raise RuntimeError(f"client {self.index}: create answered {status}: {data[:300]!r}")
        created = json.loads(data)
        self.session_id, self.token = created["id"], created["token"]
        tensors = {name: f32(value) for name, value in self.parameters.items()}
        status, _, data = self._request("PUT", self.path("/parameters"), encode(tensors), self.auth)
        if status != 200:
            raise RuntimeError(f"client {self.index}: parameter upload answered {status}: {data[:300]!r}")
        self.disconnect()  # the load starts after every client is set up: longer than an idle timeout

    # MARK: running

    def run(self, stop: threading.Event, max_failures: int = 20) -> None:
        """Steps until `stop` is set; the step in flight always completes (acknowledged or failed)."""
        try:
            while not stop.is_set() and len(self.stats.failures) < max_failures:
                if not self.step():
                    continue
                if self.acked % 10 == 0:
                    self.check_summary()
                if self.acked % 25 == 0:
                    self.check_history()
                if self.acked % 40 == 0:
                    self.check_parameters()
                if self.acked % 50 == 0 and self.profile.optimizer in PATCHABLE:
                    self.patch()
        except Exception as error:  # noqa: BLE001 - any bug here must show up as a failure, not a dead thread
            self.stats.failures.append(f"client crashed: {error!r}")
        finally:
            self.disconnect()

    def step(self) -> bool:
        """One step; True when acknowledged."""
        number = self.acked + 1
        body = self._step_body(number)
        headers = dict(self.auth, **{"Content-Type": "application/octet-stream"})
        if self.profile.gzip:
            body = gzipped(body)
            headers["Content-Encoding"] = "gzip"
        if self.profile.accept_gzip:
            headers["Accept-Encoding"] = "gzip"
        path = self.path(f"/step?return={self.profile.returns}&dtype={self.profile.dtype}")
        for attempt in range(MAX_ATTEMPTS):
            started = time.monotonic()
            try:
                status, answer_headers, data = self._request("POST", path, body, headers, operation="step")
            except (OSError, http.client.HTTPException) as error:
                self._transport_error(f"step {number}", error, started)
                time.sleep(min(0.1 * 2**attempt, 2.0))
                continue
            if status != 200:
                self.stats.failures.append(f"step {number}: {status} {data[:300]!r}")
                return False
            self.stats.step_latencies.append(time.monotonic() - started)
            return self._acknowledge(number, attempt, answer_headers, data)
        self.stats.failures.append(f"step {number}: no answer after {MAX_ATTEMPTS} attempts")
        return False

    def _acknowledge(self, number: int, attempt: int, headers: dict, data: bytes) -> bool:
        if headers.get("optimizerd-step") != str(number):
            self.stats.failures.append(f"step {number}: answered as step {headers.get('optimizerd-step')}")
            return False
        self.acked = number
        if attempt > 0:
            self.stats.retried_steps += 1
        if headers.get("optimizerd-retry") == "true":
            self.stats.retry_answers += 1
        if headers.get("content-encoding") == "gzip":
            data = zlib.decompress(data, 16 + zlib.MAX_WBITS)
        tensors, metadata = decode(data)
        if metadata.get("step") != str(number):
            self.stats.failures.append(f"step {number}: __metadata__.step is {metadata.get('step')}")
        if self.profile.returns == "params":
            self.last_returned = tensors
        return True

    # MARK: the other calls

    def check_summary(self) -> None:
        summary = self.summary()
        if summary is not None and summary["step"] != self.acked:
            self.stats.failures.append(f"summary says step {summary['step']}, acknowledged {self.acked}")

    def summary(self) -> dict | None:
        status, _, data = self._checked("GET", self.path(), operation="summary")
        return json.loads(data) if status == 200 else None

    def check_history(self) -> None:
        status, _, data = self._checked(
            "GET", self.path(f"/history?since={max(0, self.acked - 5)}"), operation="history"
        )
        if status == 200:
            steps = [record["step"] for record in json.loads(data)["records"]]
            if not steps or steps[-1] != self.acked:
                self.stats.failures.append(f"history ends at {steps[-1:]} after step {self.acked}")

    def check_parameters(self) -> None:
        """GET …/parameters in the response dtype equals the last step's answer, bit for bit."""
        status, _, data = self._checked(
            "GET", self.path(f"/parameters?dtype={self.profile.dtype}"), operation="parameters"
        )
        if status == 200 and self.last_returned is not None:
            current, _ = decode(data)
            if any(
                not np.array_equal(current[n].view(np.uint32), v.view(np.uint32))
                for n, v in self.last_returned.items()
            ):
                self.stats.failures.append(
                    f"parameters after step {self.acked} differ from that step's answer"
                )

    def final_parameters(self) -> dict[str, np.ndarray]:
        """The parameters as float32 (for the restart check); checks them against the last answer."""
        self.check_parameters()
        status, _, data = self._checked("GET", self.path("/parameters"), operation="parameters")
        return decode(data)[0] if status == 200 else {}

    def patch(self) -> None:
        lr = self.profile.hyperparameters.get("lr", 1e-3) * (0.9 if (self.acked // 50) % 2 else 1.0)
        body = json.dumps({"hyperparameters": {"lr": lr}}).encode()
        self._checked("PATCH", self.path(), body, {"Content-Type": "application/json"}, operation="patch")

    # MARK: HTTP

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def path(self, suffix: str = "") -> str:
        return f"/v1/sessions/{self.session_id}{suffix}"

    def disconnect(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def _checked(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict | None = None,
        operation: str = "",
    ) -> tuple:
        """A request that is safe to repeat: retried on transport errors; non-2xx is a failure."""
        for attempt in range(MAX_ATTEMPTS):
            started = time.monotonic()
            try:
                status, answer_headers, data = self._request(
                    method, path, body, dict(self.auth, **(headers or {})), operation
                )
            except (OSError, http.client.HTTPException) as error:
                self._transport_error(operation, error, started)
                time.sleep(min(0.1 * 2**attempt, 2.0))
                continue
            if not 200 <= status < 300:
                self.stats.failures.append(f"{operation}: {status} {data[:300]!r}")
            return status, answer_headers, data
        self.stats.failures.append(f"{operation}: no answer after {MAX_ATTEMPTS} attempts")
        return 0, {}, b""

    def _transport_error(self, what: str, error: BaseException, started: float) -> None:
        """Records a transport error (the request is then repeated), with how long its keep-alive
        connection had been idle: about the daemon's idle timeout or more, the daemon had closed it
        (its clock starts when it wrote the answer, a little before this client finished reading)."""
        idle = started - self.answered_at if self.answered_at else 0.0
        self.stats.transport_errors.append(f"client {self.index} {what}: {error!r} after {idle:.1f} s idle")
        if self.idle_timeout and idle >= 0.8 * self.idle_timeout:
            self.stats.stale_connections += 1

    def _request(
        self, method: str, path: str, body: bytes | None, headers: dict, operation: str = ""
    ) -> tuple:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT)
            self.answered_at = 0.0
        self.stats.requests[operation or method] += 1
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            data = response.read()
        except BaseException:
            self.disconnect()
            raise
        answer_headers = {name.lower(): value for name, value in response.getheaders()}
        self.answered_at = time.monotonic()
        if response.will_close:
            self.disconnect()
        return response.status, answer_headers, data

    # MARK: bodies

    def _wire_tensors(self, gradients: dict[str, np.ndarray]) -> dict[str, Tensor]:
        """A gradient set as it goes on the wire (done once; each step only writes a new header)."""
        convert = bf16 if self.profile.upload == "bf16" else f32
        wire: dict[str, Tensor] = {}
        names = list(gradients)
        for term in range(self.profile.hyperparameters.get("terms", 1)):
            for name in names:
                values = gradients[name] * (1 + term)
                prefix = f"{term}/" if self.profile.optimizer == "mtadam" else ""
                if self.profile.sparse and name == names[0]:
                    flat = values.reshape(-1)
                    indices = np.arange(0, flat.size, 7, dtype=np.int64)
                    wire[name + ".indices"] = i64(indices)
                    wire[name + ".values"] = convert(flat[indices])
                else:
                    wire[prefix + name] = convert(values)
        return wire

    def _step_body(self, number: int) -> bytes:
        metadata = {"step": str(number)}
        loss = 1.0 / (1.0 + 0.01 * number)
        if self.profile.optimizer in {"momo", "momo_adam"}:
            metadata["loss"] = repr(loss)
        if self.profile.optimizer == "mtadam":
            metadata["loss"] = json.dumps([loss, 2 * loss])
        return encode(self._gradients[number % len(self._gradients)], metadata)

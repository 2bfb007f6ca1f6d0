"""``RemoteOptimizer(..., overlap="backward")``: the step request is uploaded while backward runs.

Each parameter's gradient is sent as soon as autograd has accumulated it
(``register_post_accumulate_grad_hook``): the first hook of a backward opens one step request
whose safetensors header lists the gradients in the order the previous backward produced them,
and a sender thread writes each gradient's bytes as soon as it and every one before it exist. The
last byte is held back, so the daemon cannot apply the step before ``step()`` has checked it:

- every parameter that has a gradient at ``step()`` is in the header, and no other;
- no gradient was accumulated twice (a second backward before the step: gradient accumulation)
  and none was changed or replaced after it was sent (clipping: their version counter; edits
  through ``.data`` or NumPy do not bump it and are not seen);
- the step is not driven by ``torch.amp.GradScaler`` (it hands the optimizer its scale, see
  ``RemoteOptimizer.step``: the streamed bytes are the scaled gradients);
- the hyperparameters did not change since the request began, and no ``loss`` is given.

Then the last byte goes out and the answer is read straight into the parameters. Otherwise the
request is abandoned (the connection is closed, the daemon drops the cut body: nothing applied)
and the step is sent as without overlap, so the trajectory is always the same, bit for bit. A
step that fails after its last byte is repeated with the same step number, which the daemon
answers from its retry path if it had applied it. The first step learns the order, and so does
any step that falls back; after a step whose backward ran twice the next step does not stream.
"""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import torch

from .answer import read_answer
from .body import header_bytes
from .connection import Connection, read_exactly
from .dtypes import float32_to_bfloat16_bits, wire_dtype_tag

if TYPE_CHECKING:  # pragma: no cover
    from .torch import RemoteOptimizer

__all__ = ["BackwardStream"]


class BackwardStream:
    """The per-optimizer machinery of ``overlap="backward"`` (hooks, order, the upload)."""

    def __init__(self, optimizer: RemoteOptimizer) -> None:
        self.optimizer = optimizer
        self.order: Optional[list[str]] = None
        self.connection = Connection(optimizer.client.url, optimizer.client.transport.timeout)
        self._buffers: dict[str, np.ndarray] = {}
        self._stream_next = True
        #: Steps answered through the streamed request.
        self.streamed = 0
        self._reset()
        self.handles = [
            p.register_post_accumulate_grad_hook(lambda p, name=name: self._on_gradient(name, p))
            for name, p in optimizer._named_parameters()
            if p.requires_grad
        ]

    def _reset(self) -> None:
        self.seen: list[str] = []
        self.sent: dict[str, tuple[torch.Tensor, int]] = {}
        self.twice = False
        self.upload: Optional[_Upload] = None
        self.hyperparameters: Any = None

    # MARK: during backward

    def _on_gradient(self, name: str, p: torch.Tensor) -> None:
        if name in self.sent or name in self.seen:
            self.twice = True
            self._abandon()
            return
        self.seen.append(name)
        if self.upload is None and self._can_start(name):
            self._start()
        if self.upload is not None and p.grad is not None:
            self.sent[name] = (p.grad, p.grad._version)
            self.upload.offer(name, p.grad)

    def _can_start(self, name: str) -> bool:
        session = self.optimizer.session
        return (
            self._stream_next
            and self.order is not None
            and name in self.order
            and not self.twice
            and session._unconfirmed is None
        )

    def _start(self) -> None:
        optimizer = self.optimizer
        optimizer._sync_hyperparameters()
        self.hyperparameters = optimizer._current_hyperparameters()
        tag = wire_dtype_tag(optimizer.wire_dtype)
        parameters = dict(optimizer._named_parameters())
        assert self.order is not None
        specs = [(name, tag, tuple(parameters[name].shape)) for name in self.order]
        number = optimizer.session.last_step + 1
        head = header_bytes(specs, {"step": str(number)})
        self.upload = _Upload(self, head, tag, number)

    def _abandon(self) -> None:
        if self.upload is not None:
            self.upload.abandon()

    # MARK: at step()

    def finish(
        self, gradients: dict[str, torch.Tensor], loss: Any, usable: bool = True
    ) -> Optional[tuple[dict, dict]]:
        """The step's (values, telemetry) from the streamed request, or ``None`` when it cannot
        be used (then the caller sends the step as without overlap). ``usable`` false abandons it
        (a step driven by torch.amp.GradScaler: the streamed gradients are the scaled ones, or were
        unscaled in place without a version bump)."""
        upload, order = self.upload, self.order
        try:
            if upload is None or order is None:
                return None
            usable = (
                usable
                and not self.twice
                and loss is None
                and set(gradients) == set(order)
                and self.hyperparameters == self.optimizer._current_hyperparameters()
            )
            if not usable:
                upload.abandon()
                return None
            for name in order:
                if name not in self.sent:  # a gradient left from before, not produced by this backward
                    self.sent[name] = (gradients[name], gradients[name]._version)
                    upload.offer(name, gradients[name])
            if not upload.wait_written():
                return None
            for name, (tensor, version) in self.sent.items():
                if gradients[name] is not tensor or tensor._version != version:
                    upload.abandon()
                    return None
            answer = upload.commit()
            if answer is not None:
                self.streamed += 1
            return answer
        except Exception:  # noqa: BLE001 - whatever went wrong, the plain step decides
            self._abandon()
            return None
        finally:
            self._learn(gradients)

    def _learn(self, gradients: dict[str, torch.Tensor]) -> None:
        order = [name for name in self.seen if name in gradients]
        order += [name for name in gradients if name not in order]
        self.order = order
        self._stream_next = not self.twice
        self._reset()

    def close(self) -> None:
        """Removes the hooks and closes the stream's connection."""
        self._abandon()
        for handle in self.handles:
            handle.remove()
        self.connection.close()


class _Upload:
    """One streamed step request, written by a sender thread in the header's order."""

    def __init__(self, stream: BackwardStream, head: bytes, tag: str, number: int) -> None:
        self.stream = stream
        self.head = head
        self.tag = tag
        self.number = number
        self.order = list(stream.order or [])
        self.arrived: queue.Queue = queue.Queue()
        self.written = threading.Event()
        self.go = threading.Event()
        self.abandoned = False
        self.error: Optional[BaseException] = None
        self.answer: Optional[tuple[dict, dict]] = None
        self.thread = threading.Thread(target=self._run, name="optimizerd-backward-upload", daemon=True)
        self.thread.start()

    def offer(self, name: str, gradient: torch.Tensor) -> None:
        self.arrived.put((name, gradient))

    def wait_written(self) -> bool:
        """Waits until every byte but the last is written; whether that went well."""
        while not self.written.wait(0.05):
            if not self.thread.is_alive():
                return False
        return self.error is None and not self.abandoned

    def commit(self) -> Optional[tuple[dict, dict]]:
        """Sends the last byte and waits for the answer (read into the parameters)."""
        self.go.set()
        self.thread.join()
        return self.answer if self.error is None and not self.abandoned else None

    def abandon(self) -> None:
        """Cuts the request (the daemon drops a body that ends early) and waits for the sender."""
        self.abandoned = True
        self.stream.connection.close()
        self.go.set()
        self.arrived.put(None)
        self.written.set()
        if threading.current_thread() is not self.thread:
            self.thread.join()

    def _parts(self):
        yield memoryview(self.head)
        waiting: dict[str, torch.Tensor] = {}
        last = len(self.order) - 1
        for index, name in enumerate(self.order):
            while name not in waiting:
                item = self.arrived.get()
                if item is None or self.abandoned:
                    raise ConnectionAbortedError("step request abandoned")
                waiting[item[0]] = item[1]
            part = self._bytes(name, waiting.pop(name))
            if index == last:
                yield part[:-1]
                self.written.set()
                self.go.wait()
                if self.abandoned:
                    raise ConnectionAbortedError("step request abandoned")
                yield part[-1:]
            else:
                yield part

    def _bytes(self, name: str, gradient: torch.Tensor) -> memoryview:
        array = gradient.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()
        if self.tag == "BF16":
            buffers = self.stream._buffers
            if name not in buffers or buffers[name].shape != array.shape:
                buffers[name] = np.empty(array.shape, np.uint16)
            array = float32_to_bfloat16_bits(array, out=buffers[name])
        elif self.tag == "F16":
            array = array.astype(np.float16)
        return memoryview(array.reshape(-1)).cast("B")

    def _run(self) -> None:
        optimizer = self.stream.optimizer
        session = optimizer.session
        connection = self.stream.connection
        parameters = dict(optimizer._named_parameters())
        itemsize = 4 if self.tag == "F32" else 2
        size = len(self.head) + sum(parameters[name].numel() * itemsize for name in self.order)
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size),
            "Accept-Encoding": "identity",
            "User-Agent": "optimizerd-python",
        }
        if session.token:
            headers["Authorization"] = f"Bearer {session.token}"
        target = f"/v1/sessions/{session.id}/step?return=params&dtype={optimizer.response_dtype.lower()}"
        try:
            connection.open()
            connection.send("POST", target, headers, self._parts())
            response = connection.response()
            if response.status != 200:
                response.read()
                raise ConnectionAbortedError(f"step answered {response.status}")
            length = int(response.headers["Content-Length"])
            self.answer = read_answer(
                lambda buffer: read_exactly(response, buffer),
                length,
                optimizer._destinations(),
                session._scratch,
            )
        except BaseException as error:  # noqa: BLE001 - reported to step(), which falls back
            self.error = error
            # Closed even when abandoned: abandon() may have closed it before this thread opened
            # it again, and a connection left mid-request refuses the next upload's request.
            connection.close()
        finally:
            self.written.set()

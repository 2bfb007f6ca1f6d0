"""``RemoteOptimizer(..., overlap="delayed")``: DeepSpeed's delayed parameter update (opt-in).

Step t's update runs on the daemon while the trainer computes step t+1 on parameters one step
stale. What each call sees:

- ``step()`` (iteration t): waits for step t-1's answer and writes those parameters into the
  model, sends the hyperparameters changed since (``PATCH``: an ``lr_scheduler.step()`` after
  ``step()`` applies to the next request, as without delay), copies the gradients into buffers of
  its own and returns; a background thread sends them and reads the answer. So the gradients of
  iteration t are computed on θ_{t-1} (θ_0 for the first two iterations) and the daemon makes
  θ_{t+1} = update(θ_t, ∇L(θ_{t-1})). ``last_metadata`` is the telemetry of the step just
  collected (one behind), and an error of a step in flight is raised by the next ``step()``.
- ``zero_grad()`` (either ``set_to_none``): safe right after ``step()``; the gradients were copied.
- ``state_dict()``: waits for the step in flight (without writing it into the model) and holds the
  daemon's checkpoint after every step sent, one step ahead of the model's parameters.
  ``load_state_dict()`` drops what is in flight and writes the checkpoint's parameters into the
  model, so a resumed run starts without delay: its first gradients are computed on fresh values.
- ``flush()``: waits for the step in flight and writes it into the model (before evaluating or
  saving the model); the next step is then computed on fresh parameters too.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover
    from .torch import RemoteOptimizer

__all__ = ["DelayedSteps"]

Answer = tuple[Optional[dict[str, np.ndarray]], dict[str, Any]]


class DelayedSteps:
    """The step in flight of a delayed-update optimizer and the buffers it uses."""

    def __init__(self, optimizer: RemoteOptimizer) -> None:
        self.optimizer = optimizer
        self._gradients: dict[str, np.ndarray] = {}
        self._incoming: dict[str, np.ndarray] = {}
        self._job: Optional[_Job] = None
        self._arrived: Optional[Answer] = None

    def step(self, gradients: dict[str, torch.Tensor], loss: Any) -> None:
        """Applies the answer in flight, then sends these gradients in the background."""
        self.apply()
        optimizer = self.optimizer
        optimizer._sync_hyperparameters()
        copies = {}
        for name, gradient in gradients.items():
            buffer = self._gradients.get(name)
            if buffer is None or buffer.shape != tuple(gradient.shape):
                buffer = self._gradients[name] = np.empty(tuple(gradient.shape), np.float32)
            torch.from_numpy(buffer).copy_(gradient.detach())
            copies[name] = buffer
        if torch.is_tensor(loss):
            loss = float(loss.detach().cpu())
        out = {
            name: self._incoming.setdefault(name, np.empty(tuple(p.shape), np.float32))
            for name, p in optimizer._named_parameters()
        }

        def send() -> Answer:
            return optimizer.session.step(
                copies,
                loss=loss,
                dtype=optimizer.wire_dtype,
                compress=optimizer.compress,
                response_dtype=optimizer.response_dtype,
                out=out,
            )

        self._job = _Job(send)

    def collect(self) -> None:
        """Waits for the step in flight (its answer is kept for :meth:`apply`)."""
        job, self._job = self._job, None
        if job is not None:
            self._arrived = job.result()

    def apply(self) -> None:
        """Waits for the step in flight and writes its parameters into the model."""
        self.collect()
        arrived, self._arrived = self._arrived, None
        if arrived is not None:
            values, metadata = arrived
            if values:
                self.optimizer._write_back(values)
            self.optimizer.last_metadata = metadata

    def drop(self) -> None:
        """Waits for the step in flight and forgets its answer."""
        self.collect()
        self._arrived = None


class _Job:
    """A function run on a daemon thread; :meth:`result` joins it and re-raises its error."""

    def __init__(self, function: Callable[[], Answer]) -> None:
        self._function = function
        self._answer: Optional[Answer] = None
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="optimizerd-delayed-step", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._answer = self._function()
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            self._error = error

    def result(self) -> Answer:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._answer is not None
        return self._answer

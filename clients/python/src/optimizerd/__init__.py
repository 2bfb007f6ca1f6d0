"""Python client of optimizerd, the optimizer-as-a-service daemon.

- :class:`Client` / :class:`Session`: create sessions, upload and download parameters, step with
  NumPy arrays (dense, per-term, sparse; f32/f16/bf16; gzip), inspect summary and history,
  checkpoint and restore, delete.
- :class:`ShardedSession`: one session over several daemons (whole tensors per daemon, the
  one-daemon trajectory bit for bit); :class:`Placement` records where each tensor lives.
- :mod:`optimizerd.torch`: :class:`~optimizerd.torch.RemoteOptimizer`, a drop-in
  ``torch.optim.Optimizer`` (torch is imported only there).
- :mod:`optimizerd.optax`: :func:`~optimizerd.optax.remote`, an optax gradient transformation
  whose step runs on the daemon (JAX and optax are imported only there).
- :mod:`optimizerd.testing`: :class:`~optimizerd.testing.LocalDaemon` starts a throw-away daemon.

Errors answered by the daemon are raised as :class:`OptimizerdError` subclasses carrying the
problem detail.
"""

from .client import OPTIMIZERS, SESSION_OPTIONS, Client
from .errors import (
    AuthError,
    BadRequest,
    ConnectionFailed,
    Forbidden,
    InsufficientStorage,
    NotFound,
    OptimizerdError,
    PayloadTooLarge,
    ServiceUnavailable,
    StepConflict,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
)
from .placement import Placement
from .session import Session
from .sharded import ShardedSession
from .sharded_checkpoint import ShardedCheckpoint
from .sharded_client import ShardedClient
from .sharded_steps import ShardsDisagree

__version__ = "0.1.0"


def __getattr__(name: str):
    """``optimizerd.RemoteOptimizer``: imports torch only when it is asked for."""
    if name == "RemoteOptimizer":
        from .torch import RemoteOptimizer

        return RemoteOptimizer
    raise AttributeError(f"module 'optimizerd' has no attribute {name!r}")


__all__ = [
    "Client",
    "Session",
    "ShardedSession",
    "ShardedClient",
    "ShardedCheckpoint",
    "ShardsDisagree",
    "Placement",
    "OPTIMIZERS",
    "SESSION_OPTIONS",
    "OptimizerdError",
    "BadRequest",
    "AuthError",
    "Unauthorized",
    "Forbidden",
    "InsufficientStorage",
    "NotFound",
    "StepConflict",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "Unprocessable",
    "ServiceUnavailable",
    "ConnectionFailed",
    "__version__",
]

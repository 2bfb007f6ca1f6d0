"""What ``RemoteOptimizer(urls=[...])`` talks to: :class:`Client`'s session methods over several
daemons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

from .sharded import ShardedSession

__all__ = ["ShardedClient"]


class ShardedClient:
    """The daemons of a sharded session, with :class:`Client`'s session methods (what
    ``RemoteOptimizer(urls=[...])`` talks to).

    Args:
        urls: the daemons' URLs, in shard order.
        admin_token: the daemons' admin token, if they have one.
        **client_options: passed to each shard's :class:`Client` (``timeout``, ``retries``, ...).
    """

    def __init__(self, urls: Sequence[str], admin_token: Optional[str] = None, **client_options: Any) -> None:
        self.urls = [str(url) for url in urls]
        self.admin_token = admin_token
        self.client_options = client_options

    @property
    def url(self) -> str:
        """The URLs, joined with ``,``."""
        return ",".join(self.urls)

    def create_session(
        self,
        optimizer: str,
        hyperparameters: Optional[Mapping[str, Any]] = None,
        groups: Optional[Sequence[Mapping[str, Any]]] = None,
        name: Optional[str] = None,
        state_dtype: Optional[str] = None,
        **options: Any,
    ) -> ShardedSession:
        """A new :class:`ShardedSession` over :attr:`urls` (see :meth:`ShardedSession.create`)."""
        return ShardedSession.create(
            self.urls,
            optimizer,
            hyperparameters,
            groups,
            name,
            state_dtype,
            admin_token=self.admin_token,
            client_options=self.client_options,
            **options,
        )

    def session(self, placement: Any, token: Optional[str] = None) -> ShardedSession:
        """Reattaches from a placement (its JSON or a :class:`Placement`); ``token`` is unused
        (the placement holds each shard's)."""
        return ShardedSession.attach(
            placement, admin_token=self.admin_token, client_options=self.client_options
        )

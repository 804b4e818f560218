"""A pool: N supervised instances of one plugin behind one proxy.

(Skeleton: the contract the manager codes against; the implementation follows.)
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any, TypeVar, overload

from ._events import HealthResult, PluginEvent, PluginState, PluginStatus
from ._grpc_broker import GRPCPlugin
from ._interface import Interface
from ._spec import PluginSpec

__all__ = ["Pool"]

T = TypeVar("T", bound=Interface)
S = TypeVar("S")


class Pool:
    """N instances of one plugin, load balanced, health checked and restarted."""

    def __init__(
        self,
        spec: PluginSpec,
        *,
        emit: Callable[[PluginEvent], None] | None = None,
        rng: random.Random | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.name: str = spec.name
        self.spec: PluginSpec = spec
        self._emit = emit
        self._rng = rng or random.Random()
        self.logger = logger or logging.getLogger(f"tether.pool.{spec.name}")
        self._state = PluginState.DISCOVERED

    @property
    def state(self) -> PluginState:
        """The pool as a whole: RUNNING while at least one instance runs."""
        return self._state

    def start(self) -> None:
        """Start `spec.settings.instances` instances in parallel and wait for them."""
        raise NotImplementedError

    def stop(self, timeout: float | None = None) -> None:
        """Stop every instance (gracefully, in parallel); idempotent."""
        raise NotImplementedError

    def scale(self, instances: int) -> None:
        """Run `instances` instances from now on (>= 1)."""
        raise NotImplementedError

    @overload
    def dispense(self, interface: type[T], name: str | None = None) -> T: ...

    @overload
    def dispense(
        self, interface: GRPCPlugin[S] | type[GRPCPlugin[S]], name: str | None = None
    ) -> S: ...

    def dispense(self, interface: Any, name: str | None = None) -> Any:
        """A proxy for plugin `name` (default: the spec's name) spread over every instance."""
        raise NotImplementedError

    def ping(self) -> list[HealthResult]:
        """Ping every live instance now."""
        raise NotImplementedError

    def status(self) -> PluginStatus:
        """A snapshot of the pool and its instances."""
        raise NotImplementedError

    def retry(self) -> None:
        """After FAILED: reset the restart budget and start again."""
        raise NotImplementedError

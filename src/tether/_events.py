"""The manager's vocabulary: plugin states, the events a host subscribes to, and status
snapshots (what `tether status` prints)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["HealthResult", "InstanceStatus", "PluginEvent", "PluginState", "PluginStatus"]


class PluginState(enum.Enum):
    """Where a plugin (or one instance of it) is in its life.

    discovered → validating → starting → handshaking → connected → running → stopping →
    stopped; `failed` from any of them (verification refused, start failed, restart budget
    spent). A failed plugin can be retried.
    """

    DISCOVERED = "discovered"
    VALIDATING = "validating"
    STARTING = "starting"
    HANDSHAKING = "handshaking"
    CONNECTED = "connected"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class PluginEvent:
    """One state change of a plugin (instance None) or of one of its instances."""

    plugin: str
    instance: int | None
    state: PluginState
    previous: PluginState | None
    time: float  # time.time()
    message: str = ""
    error: BaseException | None = field(default=None, compare=False)

    def __str__(self) -> str:
        who = self.plugin if self.instance is None else f"{self.plugin}[{self.instance}]"
        was = f"{self.previous} → " if self.previous is not None else ""
        return f"{who}: {was}{self.state}" + (f" ({self.message})" if self.message else "")


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """One process of a plugin."""

    index: int
    state: PluginState
    pid: int | None
    started_at: float | None  # time.time() of the last successful start
    uptime: float  # seconds since started_at; 0 when not running
    calls: int
    errors: int
    average_latency: float  # seconds per call through the manager's proxies; 0 if no calls
    outstanding: int  # calls in flight now
    restarts: int
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class PluginStatus:
    """A plugin as a whole: all its instances."""

    name: str
    version: str
    state: PluginState
    instances: tuple[InstanceStatus, ...]
    restarts: int
    calls: int
    errors: int
    average_latency: float
    reason: str | None = None  # why it failed, when it did
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (states as their names)."""
        out = asdict(self)
        out["state"] = self.state.value
        for inst in out["instances"]:
            inst["state"] = inst["state"].value
        return out


@dataclass(frozen=True, slots=True)
class HealthResult:
    """One ping of one instance."""

    plugin: str
    instance: int
    ok: bool
    latency: float | None  # seconds, when it answered
    error: str | None = None

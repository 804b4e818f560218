"""tether: out-of-process plugins for Python, wire-compatible with HashiCorp go-plugin.

A host starts each plugin as its own process, checks it with go-plugin's handshake and calls
it over a Unix socket (or TCP with mutual TLS). Interfaces are plain typed Python classes::

    class Calculator(tether.Interface):
        def add(self, a: float, b: float) -> float: ...

    # plugin process
    tether.serve(HANDSHAKE, plugins={"calculator": CalculatorImpl()})

    # host process
    with tether.Client([sys.executable, "plugin.py"], handshake=HANDSHAKE) as client:
        calc = client.dispense("calculator", Calculator)
        calc.add(1, 2)
"""

from __future__ import annotations

# The errors are plain classes in a tiny module: imported eagerly, re-exported as they are.
from . import _errors
from ._errors import (
    ArgumentError,
    CallTimeoutError,
    ChecksumMismatchError,
    ConfigError,
    ConnectionClosedError,
    HandshakeError,
    InstallError,
    NoInstanceError,
    PluginCrashedError,
    PluginExitedError,
    PluginNotRunningError,
    PluginStartError,
    ProtocolError,
    RemoteError,
    StartTimeoutError,
    TetherError,
    UnknownPluginError,
    UnsupportedProtocolError,
)

# Not typing.TYPE_CHECKING: a plugin's start-up would pay for importing typing (type checkers
# treat any name TYPE_CHECKING as true).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from ._client import AsyncClient, Client
    from ._config import ConfigFileError, ManagerConfig, PluginSettings, load_config
    from ._context import CallContext, current_call, timeout
    from ._declare import Interface
    from ._dispatch import remote_exception
    from ._events import HealthResult, InstanceStatus, PluginEvent, PluginState, PluginStatus
    from ._grpc_broker import GRPCBroker, GRPCPlugin
    from ._handshake import HandshakeConfig
    from ._launch import ReattachConfig
    from ._manager import PluginManager
    from ._pool import Pool
    from ._resolve import DependencyError
    from ._server import serve
    from ._signing import VerificationError
    from ._spec import PluginSpec

# The rest is imported on first use: a plugin process pays only for what `serve()` needs
# (no asyncio, no client machinery) before it prints its handshake line.
_LAZY: dict[str, str] = {
    "AsyncClient": "._client",
    "Client": "._client",
    "CallContext": "._context",
    "current_call": "._context",
    "timeout": "._context",
    "remote_exception": "._dispatch",
    "GRPCBroker": "._grpc_broker",
    "GRPCPlugin": "._grpc_broker",
    "HandshakeConfig": "._handshake",
    "Interface": "._declare",
    "ReattachConfig": "._launch",
    "serve": "._server",
    # the plugin manager
    "ConfigFileError": "._config",
    "DependencyError": "._resolve",
    "HealthResult": "._events",
    "InstanceStatus": "._events",
    "ManagerConfig": "._config",
    "PluginEvent": "._events",
    "PluginManager": "._manager",
    "PluginSettings": "._config",
    "PluginSpec": "._spec",
    "PluginState": "._events",
    "PluginStatus": "._events",
    "Pool": "._pool",
    "VerificationError": "._signing",
    "load_config": "._config",
}

__version__ = "0.1.0"

__all__ = [
    # host side
    "AsyncClient",
    "Client",
    "ReattachConfig",
    "timeout",
    # both sides
    "GRPCBroker",
    "GRPCPlugin",
    "HandshakeConfig",
    "Interface",
    "remote_exception",
    # plugin side
    "CallContext",
    "current_call",
    "serve",
    # plugin manager
    "HealthResult",
    "InstanceStatus",
    "ManagerConfig",
    "PluginEvent",
    "PluginManager",
    "PluginSettings",
    "PluginSpec",
    "PluginState",
    "PluginStatus",
    "Pool",
    "load_config",
    # errors
    "ArgumentError",
    "CallTimeoutError",
    "ChecksumMismatchError",
    "ConfigError",
    "ConfigFileError",
    "ConnectionClosedError",
    "DependencyError",
    "HandshakeError",
    "InstallError",
    "NoInstanceError",
    "PluginCrashedError",
    "PluginExitedError",
    "PluginNotRunningError",
    "PluginStartError",
    "ProtocolError",
    "RemoteError",
    "StartTimeoutError",
    "TetherError",
    "UnknownPluginError",
    "UnsupportedProtocolError",
    "VerificationError",
]

for _name in _errors.__all__:
    getattr(_errors, _name).__module__ = "tether"  # reprs and tracebacks show the public path
del _name, TYPE_CHECKING


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tether' has no attribute {name!r}")
    # The import statement's machinery rather than importlib.import_module(): `python -X
    # importtime` reports only imports made that way, and start-up profiles need tether's.
    value = getattr(__import__(__name__ + module, None, None, [name]), name)
    if isinstance(value, type) and value.__module__.startswith("tether."):
        value.__module__ = "tether"
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

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

from ._client import AsyncClient, Client
from ._context import CallContext, current_call, timeout
from ._dispatch import remote_exception
from ._errors import (
    ArgumentError,
    CallTimeoutError,
    ChecksumMismatchError,
    ConfigError,
    ConnectionClosedError,
    HandshakeError,
    PluginCrashedError,
    PluginExitedError,
    ProtocolError,
    RemoteError,
    StartTimeoutError,
    TetherError,
    UnsupportedProtocolError,
)
from ._handshake import HandshakeConfig
from ._interface import Interface
from ._launch import ReattachConfig
from ._server import serve

__version__ = "0.1.0"

__all__ = [
    # host side
    "AsyncClient",
    "Client",
    "ReattachConfig",
    "timeout",
    # both sides
    "HandshakeConfig",
    "Interface",
    "remote_exception",
    # plugin side
    "CallContext",
    "current_call",
    "serve",
    # errors
    "ArgumentError",
    "CallTimeoutError",
    "ChecksumMismatchError",
    "ConfigError",
    "ConnectionClosedError",
    "HandshakeError",
    "PluginCrashedError",
    "PluginExitedError",
    "ProtocolError",
    "RemoteError",
    "StartTimeoutError",
    "TetherError",
    "UnsupportedProtocolError",
]

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and not isinstance(_obj, str):
        try:
            _obj.__module__ = "tether"
        except (AttributeError, TypeError):
            pass
del _name, _obj

"""The exception hierarchy: every error tether raises derives from `TetherError`."""

from __future__ import annotations

__all__ = [
    "ArgumentError",
    "CallTimeoutError",
    "ChecksumMismatchError",
    "ConfigError",
    "ConnectionClosedError",
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
]


class TetherError(Exception):
    """Base class of every error raised by tether."""


class ConfigError(TetherError, ValueError):
    """The caller configured something that cannot work (bad option, bad path)."""


class ChecksumMismatchError(TetherError):
    """The plugin executable does not match the expected checksum; it was not started."""


class HandshakeError(TetherError):
    """The plugin could not be started or its handshake was refused."""


class StartTimeoutError(HandshakeError, TimeoutError):
    """The plugin did not print its handshake line within the start timeout."""


class UnsupportedProtocolError(HandshakeError):
    """The plugin offered a wire protocol this side does not speak (such as `netrpc`)."""


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "is still running"
    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


def stderr_suffix(stderr_tail: tuple[str, ...]) -> str:
    """The plugin's last stderr lines, formatted to end an error message."""
    if not stderr_tail:
        return ""
    return "\nlast stderr lines:\n  " + "\n  ".join(stderr_tail)


class PluginExitedError(HandshakeError):
    """The plugin process exited before completing the handshake."""

    def __init__(self, message: str, returncode: int | None, stderr_tail: tuple[str, ...]) -> None:
        super().__init__(
            f"{message}: the plugin {_describe_exit(returncode)}{stderr_suffix(stderr_tail)}"
        )
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class ProtocolError(TetherError):
    """The peer sent bytes that break the wire protocol (bad frame, bad message)."""


class ConnectionClosedError(TetherError, ConnectionError):
    """The connection to the plugin is closed; no more calls can be made on it."""


class PluginCrashedError(ConnectionClosedError):
    """The plugin process died while calls were in flight."""

    def __init__(
        self, name: str, returncode: int | None, stderr_tail: tuple[str, ...] = ()
    ) -> None:
        super().__init__(
            f"plugin {name!r} {_describe_exit(returncode)}; its connection is closed"
            f"{stderr_suffix(stderr_tail)}"
        )
        self.plugin = name
        self.returncode = returncode
        self.stderr_tail = stderr_tail

    @property
    def signal(self) -> int | None:
        """The number of the signal that killed the plugin, if a signal did."""
        if self.returncode is not None and self.returncode < 0:
            return -self.returncode
        return None


class CallTimeoutError(TetherError, TimeoutError):
    """A call did not complete within its timeout; the plugin was told to cancel it."""


class ArgumentError(TetherError, TypeError):
    """An argument or result does not match the interface's type hints."""

    def __init__(self, message: str, method: str = "", parameter: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.parameter = parameter


class RemoteError(TetherError):
    """An exception raised by the implementation on the other side of the connection.

    `type_name` is the qualified name of the original exception type, `remote_message` its
    message and `remote_traceback` the formatted traceback text from the remote process.
    """

    def __init__(self, type_name: str, message: str, remote_traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.remote_message = message
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.type_name, self.remote_message, self.remote_traceback))


class InstallError(TetherError):
    """A plugin's virtual environment could not be created or its requirements installed.

    `command` is the installer command that failed and `output` its last output lines.
    """

    def __init__(self, message: str, command: tuple[str, ...] = (), output: tuple[str, ...] = ()):
        super().__init__(message)
        self.command = command
        self.output = output


class UnknownPluginError(ConfigError):
    """A plugin name the manager does not know (the message suggests close names)."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.plugin = name

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.plugin))


class PluginNotRunningError(TetherError):
    """The plugin is known but not running (never started, stopped, or failed)."""


class PluginStartError(TetherError):
    """One or more plugins could not be started; `failures` maps each name to why."""

    def __init__(self, failures: dict[str, str]) -> None:
        count = f"{len(failures)} plugin" + ("s" if len(failures) != 1 else "")
        lines = [f"{count} failed to start:"]
        for name, reason in failures.items():
            lines.append(f"  - {name}: " + reason.replace("\n", "\n    "))
        super().__init__("\n".join(lines))
        self.failures = dict(failures)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.failures,))


class NoInstanceError(TetherError):
    """No instance of a pooled plugin could take the call: all are restarting (and none came
    back within the start timeout), or the plugin failed or was stopped."""

"""The go-plugin handshake, as pure functions: no sockets, no processes.

A host starts a plugin with a few environment variables (the magic cookie, the port range, the
protocol versions it speaks); the plugin answers with one line on stdout,
``CORE|APP|NETWORK|ADDRESS|PROTOCOL|SERVER-CERT[|MUX]``. This module builds and checks both halves
with the same rules and error texts as HashiCorp go-plugin, so tether interoperates with Go hosts
and Go plugins and its errors read like the ones users already search for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ._errors import ConfigError, HandshakeError, UnsupportedProtocolError

__all__ = [
    "COOKIE_MISMATCH_TEXT",
    "CORE_PROTOCOL_VERSION",
    "DEFAULT_MAX_PORT",
    "DEFAULT_MIN_PORT",
    "ENV_CLIENT_CERT",
    "ENV_MAX_PORT",
    "ENV_MIN_PORT",
    "ENV_MULTIPLEX_GRPC",
    "ENV_PROTOCOL_VERSIONS",
    "ENV_UNIX_SOCKET_DIR",
    "ENV_UNIX_SOCKET_GROUP",
    "HandshakeConfig",
    "HandshakeLine",
    "MISCONFIGURED_COOKIE_TEXT",
    "PROTOCOL_GRPC",
    "PROTOCOL_NATIVE",
    "PROTOCOL_NETRPC",
    "check_cookie",
    "check_host_side",
    "host_env",
    "negotiate_version",
    "port_range",
    "split_host_port",
]

CORE_PROTOCOL_VERSION = 1

ENV_PROTOCOL_VERSIONS = "PLUGIN_PROTOCOL_VERSIONS"
ENV_MIN_PORT = "PLUGIN_MIN_PORT"
ENV_MAX_PORT = "PLUGIN_MAX_PORT"
ENV_UNIX_SOCKET_DIR = "PLUGIN_UNIX_SOCKET_DIR"
ENV_UNIX_SOCKET_GROUP = "PLUGIN_UNIX_SOCKET_GROUP"
ENV_CLIENT_CERT = "PLUGIN_CLIENT_CERT"
ENV_MULTIPLEX_GRPC = "PLUGIN_MULTIPLEX_GRPC"

PROTOCOL_GRPC = "grpc"
PROTOCOL_NETRPC = "netrpc"
PROTOCOL_NATIVE = "tether"

DEFAULT_MIN_PORT = 10000
DEFAULT_MAX_PORT = 25000

MISCONFIGURED_COOKIE_TEXT = (
    "Misconfigured ServeConfig given to serve this plugin: no magic cookie\n"
    "key or value was set. Please notify the plugin author and report\n"
    "this as a bug.\n"
)

COOKIE_MISMATCH_TEXT = (
    "This binary is a plugin. These are not meant to be executed directly.\n"
    "Please execute the program that consumes these plugins, which will\n"
    "load any plugins automatically\n"
)

_UNRECOGNIZED_HINT = (
    "This usually means\n"
    "  the plugin was not compiled for this architecture,\n"
    "  the plugin is missing dynamic-link libraries necessary to run,\n"
    "  the plugin is not executable by this process due to file permissions, or\n"
    "  the plugin failed to negotiate the initial go-plugin protocol handshake"
)
_NO_LINES_NOTE = "Failed to read any lines from plugin's stdout"
_CORE_FIX_HINT = (
    "To fix this, the plugin usually only needs to be recompiled.\n"
    "Please report this to the plugin author."
)
_NETRPC_NOTE = (
    " tether hosts speak only gRPC (`grpc`) and tether's native protocol (`tether`);"
    " go-plugin's net/rpc protocol is not supported, so the plugin must be built to serve gRPC."
)

_NETWORKS = ("unix", "tcp")
_MIN_FIELDS = 4
_MAX_PORT_NUMBER = 65535


def _go_atoi(text: str) -> int | None:
    # Go's strconv.Atoi syntax, an optional sign and ASCII digits: Python's int() would also
    # take spaces, underscores and non-ASCII digits, which a Go peer rejects. (No regex: its
    # compile is paid by every plugin's start-up.)
    digits = text[1:] if text[:1] in ("+", "-") else text
    return int(text) if digits.isascii() and digits.isdigit() else None


def _go_quote(text: str) -> str:
    # Close to Go's %q: double quotes with escapes, so empty or odd values stay visible.
    import json  # only error messages quote; a plugin's start-up does not pay for json

    return json.dumps(text, ensure_ascii=False)


class _Frozen:
    """An immutable value like a frozen dataclass (equality, hash, repr, pickling), written
    out by hand: importing dataclasses (inspect comes with it) costs a plugin's start-up
    several milliseconds, and creating one more."""

    __slots__ = ()
    _FIELDS: tuple[str, ...] = ()

    def _set(self, **values: object) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"{type(self).__name__}({shown})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(
            f"cannot assign to field {name!r}: a {type(self).__name__} is immutable"
        )

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: a {type(self).__name__} is immutable")

    def __reduce__(self) -> tuple[type[_Frozen], tuple[object, ...]]:
        return type(self), self._values()


class HandshakeConfig(_Frozen):
    """What host and plugin must agree on before anything else: app version and magic cookie."""

    _FIELDS = ("protocol_version", "magic_cookie_key", "magic_cookie_value")
    __slots__ = _FIELDS
    __match_args__ = ("protocol_version", "magic_cookie_key", "magic_cookie_value")

    protocol_version: int
    magic_cookie_key: str
    magic_cookie_value: str

    def __init__(
        self, protocol_version: int, magic_cookie_key: str, magic_cookie_value: str
    ) -> None:
        if (
            isinstance(protocol_version, bool)
            or not isinstance(protocol_version, int)
            or protocol_version < 1
        ):
            raise ConfigError(
                "HandshakeConfig.protocol_version must be an integer >= 1, "
                f"got {protocol_version!r}"
            )
        if not magic_cookie_key:
            raise ConfigError(
                "HandshakeConfig.magic_cookie_key is empty: a magic cookie is required"
            )
        if not magic_cookie_value:
            raise ConfigError(
                "HandshakeConfig.magic_cookie_value is empty: a magic cookie is required"
            )
        # The key becomes an environment variable name; these characters cannot be in one.
        if "=" in magic_cookie_key or "\0" in magic_cookie_key:
            raise ConfigError(
                f"HandshakeConfig.magic_cookie_key {magic_cookie_key!r} cannot be an "
                "environment variable name (it contains '=' or NUL)"
            )
        if "\0" in magic_cookie_value:
            raise ConfigError("HandshakeConfig.magic_cookie_value contains a NUL character")
        self._set(
            protocol_version=protocol_version,
            magic_cookie_key=magic_cookie_key,
            magic_cookie_value=magic_cookie_value,
        )


_LINE_FIELDS = (
    "core_version",
    "app_version",
    "network",
    "address",
    "protocol",
    "server_cert",
    "multiplex",
)


class HandshakeLine(_Frozen):
    """The line a plugin prints on stdout to tell the host where and how to connect."""

    _FIELDS = _LINE_FIELDS
    __slots__ = _LINE_FIELDS
    # Spelled out, not _LINE_FIELDS: type checkers read match statements only from literals.
    __match_args__ = (
        "core_version",
        "app_version",
        "network",
        "address",
        "protocol",
        "server_cert",
        "multiplex",
    )

    core_version: int
    app_version: int
    network: str
    address: str
    protocol: str
    server_cert: str
    multiplex: bool | None

    def __init__(
        self,
        core_version: int,
        app_version: int,
        network: str,
        address: str,
        protocol: str,
        server_cert: str = "",
        multiplex: bool | None = None,
    ) -> None:
        self._set(
            core_version=core_version,
            app_version=app_version,
            network=network,
            address=address,
            protocol=protocol,
            server_cert=server_cert,
            multiplex=multiplex,
        )

    def format(self) -> str:
        """The line exactly as a Go plugin prints it, without the trailing newline."""
        for name in ("network", "address", "protocol", "server_cert"):
            value: str = getattr(self, name)
            if "|" in value or "\n" in value or "\r" in value:
                raise ConfigError(
                    f"handshake field {name} cannot contain '|' or a line break: {value!r}"
                )
        line = (
            f"{self.core_version}|{self.app_version}|{self.network}|{self.address}"
            f"|{self.protocol}|{self.server_cert}"
        )
        if self.multiplex is not None:
            line += "|true" if self.multiplex else "|false"
        return line

    @classmethod
    def parse(cls, line: str) -> HandshakeLine:
        """Parse a plugin's first stdout line with go-plugin's host rules.

        Raises `HandshakeError` with go-plugin's texts when the line is not a handshake, the core
        version is not 1, or a field is malformed. The app version and protocol are checked
        against what the host supports by `check_host_side`.
        """
        line = line.strip()
        parts = line.split("|")
        if len(parts) < _MIN_FIELDS:
            raise HandshakeError(_unrecognized_message(line))
        core = _parse_core_version(parts[0])
        app = _parse_app_version(parts[1], line)
        network, address = parts[2], parts[3]
        if network not in _NETWORKS:
            raise HandshakeError(
                f"unknown address type: {network} (address {_go_quote(address)}); "
                f"the handshake line's network must be unix or tcp: {line}"
            )
        if not address:
            raise HandshakeError(f"the handshake line has an empty address: {line}")
        # Plugins from before gRPC support print only four fields and mean net/rpc.
        protocol = parts[4] if len(parts) > _MIN_FIELDS else PROTOCOL_NETRPC
        server_cert = parts[5] if len(parts) > 5 else ""
        # Like go-plugin (>= 1.6), fields after the seventh are ignored.
        multiplex = _parse_multiplex(parts[6], line) if len(parts) > 6 else None
        parsed = cls(core, app, network, address, protocol, server_cert, multiplex)
        if network == "tcp":
            parsed.tcp_address()
        return parsed

    def tcp_address(self) -> tuple[str, int]:
        """Host and port to connect to; an empty host means the loopback address."""
        if self.network != "tcp":
            raise HandshakeError(
                f"the plugin listens on a {self.network} address, not tcp: {self.address}"
            )
        return split_host_port(self.address)


def _unrecognized_message(line: str) -> str:
    text = f"Unrecognized remote plugin message: {line}"
    if not line:
        text += f"\n{_NO_LINES_NOTE}"
    return f"{text}\n{_UNRECOGNIZED_HINT}"


def _parse_core_version(field: str) -> int:
    core = _go_atoi(field)
    if core != CORE_PROTOCOL_VERSION:
        raise HandshakeError(
            "incompatible core API version with plugin. "
            f"Plugin version: {field}, Core version: {CORE_PROTOCOL_VERSION}\n\n{_CORE_FIX_HINT}"
        )
    return CORE_PROTOCOL_VERSION


def _parse_app_version(field: str, line: str) -> int:
    app = _go_atoi(field)
    if app is None:
        raise HandshakeError(
            f"error parsing protocol version {_go_quote(field)}: the app protocol version "
            f"(field 2 of the handshake line) must be an integer: {line}"
        )
    return app


def _parse_multiplex(field: str, line: str) -> bool:
    if field == "true":
        return True
    if field == "false":
        return False
    raise HandshakeError(
        f"invalid multiplex field {_go_quote(field)} (field 7 of the handshake line must be "
        f"true or false): {line}"
    )


def split_host_port(address: str) -> tuple[str, int]:
    # Same shapes as Go's net.SplitHostPort: "host:port", "[v6]:port", ":port".
    if address.startswith("["):
        end = address.find("]")
        if end < 0 or address[end + 1 : end + 2] != ":":
            raise HandshakeError(f"malformed tcp address in handshake: {address!r}")
        host, port_text = address[1:end], address[end + 2 :]
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep or ":" in host:
            raise HandshakeError(
                f"malformed tcp address in handshake (expected host:port): {address!r}"
            )
    port = int(port_text) if port_text.isascii() and port_text.isdigit() else -1
    if not 1 <= port <= _MAX_PORT_NUMBER:
        raise HandshakeError(f"malformed tcp address in handshake (bad port): {address!r}")
    return host or "127.0.0.1", port


def _check_port(name: str, port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= _MAX_PORT_NUMBER:
        raise ConfigError(f"{name} must be a port number between 1 and 65535, got {port!r}")


def _unique_versions(versions: Iterable[int]) -> list[int]:
    unique: list[int] = []
    for version in versions:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ConfigError(f"protocol versions must be integers >= 1, got {version!r}")
        if version not in unique:
            unique.append(version)
    if not unique:
        raise ConfigError("at least one protocol version is required")
    return unique


def host_env(
    handshake: HandshakeConfig,
    versions: Iterable[int],
    *,
    min_port: int = DEFAULT_MIN_PORT,
    max_port: int = DEFAULT_MAX_PORT,
    unix_socket_dir: str | None = None,
    client_cert_pem: str | None = None,
) -> dict[str, str]:
    """The variables a go-plugin host adds to the plugin's environment."""
    _check_port("min_port", min_port)
    _check_port("max_port", max_port)
    if min_port > max_port:
        raise ConfigError(f"min_port ({min_port}) is greater than max_port ({max_port})")
    env = {
        handshake.magic_cookie_key: handshake.magic_cookie_value,
        ENV_MIN_PORT: str(min_port),
        ENV_MAX_PORT: str(max_port),
        ENV_PROTOCOL_VERSIONS: ",".join(str(v) for v in _unique_versions(versions)),
    }
    if unix_socket_dir is not None:
        env[ENV_UNIX_SOCKET_DIR] = unix_socket_dir
    if client_cert_pem is not None:
        env[ENV_CLIENT_CERT] = client_cert_pem
    return env


def check_cookie(handshake: HandshakeConfig, environ: Mapping[str, str]) -> bool:
    """Whether the plugin was started by a host that knows the magic cookie."""
    return environ.get(handshake.magic_cookie_key) == handshake.magic_cookie_value


def negotiate_version(
    plugin_versions: Iterable[int], environ: Mapping[str, str]
) -> tuple[int, list[str]]:
    """The app version a plugin announces, and warnings about the host's version list.

    The highest version both sides speak wins. Without a common version (or with a host too old
    to send any), the plugin's lowest version is announced so that the host reports the mismatch.
    """
    ours = sorted(set(plugin_versions))
    if not ours:
        raise ConfigError("the plugin must support at least one protocol version")
    raw = environ.get(ENV_PROTOCOL_VERSIONS)
    if raw is None:
        return ours[0], []
    offered: set[int] = set()
    warnings: list[str] = []
    for entry in raw.split(","):
        version = _go_atoi(entry)
        if version is None:
            warnings.append(f"server sent invalid plugin version {_go_quote(entry)}")
        else:
            offered.add(version)
    common = [v for v in ours if v in offered]
    return (common[-1] if common else ours[0]), warnings


def check_host_side(
    line: HandshakeLine, host_versions: Iterable[int], allowed_protocols: Iterable[str]
) -> None:
    """Refuse a parsed handshake whose app version or protocol this host does not support."""
    versions = sorted(set(host_versions))
    if line.app_version not in versions:
        listed = ", ".join(str(v) for v in versions) or "(none)"
        raise HandshakeError(
            "incompatible API version with plugin. "
            f"Plugin version: {line.app_version}, Client versions: {listed}"
        )
    allowed = list(allowed_protocols)
    if line.protocol not in allowed:
        message = (
            f"unsupported plugin protocol {_go_quote(line.protocol)}. "
            f"Supported: [{' '.join(allowed)}]"
        )
        if line.protocol == PROTOCOL_NETRPC:
            message += _NETRPC_NOTE
        raise UnsupportedProtocolError(message)


def port_range(environ: Mapping[str, str]) -> tuple[int, int]:
    """The TCP port range a plugin may listen in; ``(0, 0)`` means any port.

    As in go-plugin, an unset (or empty) bound counts as 0, and the minimum must not exceed the
    maximum.
    """
    low = _env_port(environ, ENV_MIN_PORT)
    high = _env_port(environ, ENV_MAX_PORT)
    if low > high:
        raise ConfigError(
            f"{ENV_MIN_PORT} value of {low} is greater than {ENV_MAX_PORT} value of {high}"
        )
    return low, high


def _env_port(environ: Mapping[str, str], name: str) -> int:
    raw = environ.get(name, "")
    if not raw:
        return 0
    port = _go_atoi(raw)
    if port is None or not 0 <= port <= _MAX_PORT_NUMBER:
        raise ConfigError(f"{name} must be a port number between 0 and 65535, got {raw!r}")
    return port

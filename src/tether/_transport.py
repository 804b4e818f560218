"""Sockets between host and plugin: private Unix sockets, and TCP on loopback (TLS only)."""

from __future__ import annotations

import os
import socket
import struct
import sys

from ._errors import ConfigError, HandshakeError

TYPE_CHECKING = False  # not typing's: a plugin answers its first call before importing it
if TYPE_CHECKING:
    from typing import Final

__all__ = [
    "SUN_PATH_MAX",
    "check_peer",
    "connect_tcp",
    "connect_unix",
    "listen_tcp",
    "listen_unix",
    "make_socket_dir",
    "remove_socket_dir",
    "unix_socket_path",
]

# sun_path holds 108 bytes on Linux (104 on macOS), including the terminating NUL.
SUN_PATH_MAX: Final = 104 if sys.platform == "darwin" else 108
_SOCKET_NAME_LEN: Final = len("plugin") + 16
_CRED: Final = struct.Struct("3i")


def make_socket_dir() -> str:
    """A fresh private (0700) directory for a plugin's socket, short enough for sun_path.

    `$TMPDIR` can be long (macOS, CI runners); when a socket path under it would not fit,
    /tmp is used instead, so plugins never fail on the sun_path limit.
    """
    for base in (_temp_dir(), "/tmp"):
        path = _mkdtemp(base)
        if len(os.fsencode(path)) + 1 + _SOCKET_NAME_LEN < SUN_PATH_MAX:
            os.chmod(path, 0o700)
            return path
        os.rmdir(path)
    raise ConfigError("no temporary directory is short enough to hold a Unix socket path")


def _temp_dir() -> str:
    """tempfile.gettempdir() when $TMPDIR (or /tmp) is usable, without importing tempfile.

    tempfile (and the random and shutil it imports) costs a plugin ~8 ms of start-up.
    """
    for name in ("TMPDIR", "TEMP", "TMP"):
        value = os.environ.get(name)
        if value:
            break
    else:
        value = "/tmp"
    if os.path.isdir(value) and os.access(value, os.W_OK | os.X_OK):
        return os.path.abspath(value)
    import tempfile

    return tempfile.gettempdir()


def _mkdtemp(base: str) -> str:
    """tempfile.mkdtemp(prefix="tether-", dir=base): a new 0700 directory of a random name."""
    for _ in range(100):
        path = os.path.join(base, "tether-" + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary directory name in {base}")


def remove_socket_dir(path: str | None) -> None:
    if path:
        import shutil  # only when a plugin or host shuts down

        shutil.rmtree(path, ignore_errors=True)


def unix_socket_path(directory: str) -> str:
    """A fresh socket path inside `directory`, checked against the sun_path limit."""
    path = os.path.join(directory, "plugin" + os.urandom(8).hex())
    if len(os.fsencode(path)) >= SUN_PATH_MAX:
        raise ConfigError(
            f"Unix socket path {path!r} is longer than the {SUN_PATH_MAX - 1}-byte limit; "
            "set PLUGIN_UNIX_SOCKET_DIR or TMPDIR to a shorter directory"
        )
    return path


def listen_unix(directory: str) -> tuple[socket.socket, str]:
    """Listen on a new Unix socket inside `directory` (the plugin side)."""
    path = unix_socket_path(directory)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o077)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        sock.listen(16)
    except BaseException:
        sock.close()
        raise
    return sock, path


def listen_tcp(min_port: int, max_port: int) -> tuple[socket.socket, str]:
    """Listen on 127.0.0.1 within the host's port range (any free port when it is 0..0)."""
    ports = [0] if max_port == 0 else range(max(min_port, 1), max_port + 1)
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen(16)
        host, bound = sock.getsockname()[:2]
        return sock, f"{host}:{bound}"
    raise ConfigError(f"no free TCP port on 127.0.0.1 between {min_port} and {max_port}")


def check_peer(sock: socket.socket) -> None:
    """Refuse a Unix-socket peer running as another user (the socket dir is 0700 as well)."""
    if sock.family != socket.AF_UNIX or not hasattr(socket, "SO_PEERCRED"):
        return
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    _pid, uid, _gid = _CRED.unpack(raw)
    if uid != os.getuid() and uid != 0:
        raise HandshakeError(
            f"refusing a connection from uid {uid}: plugin and host must run as the same user"
        )


def connect_unix(path: str, timeout: float = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.settimeout(None)
        check_peer(sock)
    except OSError as exc:
        sock.close()
        raise HandshakeError(f"cannot connect to the plugin at {path}: {exc}") from exc
    except BaseException:
        sock.close()
        raise
    return sock


def connect_tcp(host: str, port: int, timeout: float = 10.0) -> socket.socket:
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise HandshakeError(f"cannot connect to the plugin at {host}:{port}: {exc}") from exc
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock

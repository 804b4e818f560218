"""The admin endpoint of a running `tether run`: how `tether status` and `tether health`
in another terminal ask it.

A Unix socket in a private (0700) directory; its name is derived from the configuration
file's absolute path, so each configuration has its own. One request per connection:
a JSON line `{"command": "status"}`, answered by one JSON line `{"ok": true, "result": ...}`
or `{"ok": false, "error": "..."}`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .._errors import ConfigError, TetherError

__all__ = ["AdminServer", "ask", "socket_path"]

log = logging.getLogger("tether.cli.admin")

_MAX_REQUEST = 4096


def _private_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        base = Path(runtime) / "tether"
    else:
        base = Path(tempfile.gettempdir()) / f"tether-{os.getuid()}"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = base.stat()
    # A directory someone else made (or opened up) in a shared temp dir must not be used:
    # whoever controls it could answer for our `tether run`.
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ConfigError(
            f"{base} is not private to this user (owner uid {info.st_uid}, mode "
            f"{info.st_mode & 0o777:o}); remove it or set XDG_RUNTIME_DIR"
        )
    return base


def socket_path(config: Path) -> Path:
    """Where the `tether run` of `config` listens."""
    digest = hashlib.sha256(str(config.resolve()).encode()).hexdigest()[:16]
    return _private_dir() / f"run-{digest}.sock"


class AdminServer:
    """Answers requests on the admin socket from a background thread."""

    def __init__(self, path: Path, handlers: Mapping[str, Callable[[], Any]]) -> None:
        self.path = path
        self._handlers = dict(handlers)
        if ask(path, "ping") is not None:
            raise ConfigError(
                f"a `tether run` is already running for this configuration (admin socket {path})"
            )
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by a run that was killed
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        os.chmod(path, 0o600)
        self._sock.listen(8)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tether-admin", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(10.0)
                request = json.loads(_read_line(conn))
                command = request.get("command") if isinstance(request, dict) else None
                handler = self._handlers.get(str(command))
                if command == "ping":
                    reply: dict[str, Any] = {"ok": True, "result": os.getpid()}
                elif handler is None:
                    reply = {"ok": False, "error": f"unknown admin command {command!r}"}
                else:
                    reply = {"ok": True, "result": handler()}
            except Exception as exc:  # one bad request must not stop the admin endpoint
                log.debug("admin request failed", exc_info=True)
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            try:
                conn.sendall(json.dumps(reply, default=str).encode() + b"\n")
            except OSError:
                pass

    def close(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._thread.join(2.0)


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > _MAX_REQUEST and b"\n" not in data:
            raise ValueError("request too long")
    return data.split(b"\n", 1)[0]


def ask(path: Path, command: str, timeout: float = 30.0) -> Any | None:
    """The running `tether run`'s answer to `command`, or None when none is running."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        sock.sendall(json.dumps({"command": command}).encode() + b"\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    if not data:
        raise TetherError(f"the `tether run` at {path} closed the admin connection without reply")
    reply = json.loads(data)
    if not reply.get("ok"):
        raise TetherError(f"the running `tether run` could not answer: {reply.get('error')}")
    return reply.get("result")

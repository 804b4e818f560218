"""Starting a plugin, shared by `Client` and `AsyncClient`: verify, spawn, handshake."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import shutil
import ssl
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Literal

from . import _handshake as hs
from ._errors import ChecksumMismatchError, ConfigError, HandshakeError, stderr_suffix
from ._process import PluginProcess
from ._transport import make_socket_dir, remove_socket_dir

if TYPE_CHECKING:
    from ._grpc_tls import GRPCTLS

__all__ = [
    "Launch",
    "ReattachConfig",
    "Started",
    "plugin_name",
    "verify_checksum",
]

from ._env import ENV_LOG_LEVEL, ENV_SPEEDUPS, ENV_SPIN_US, ENV_TRANSPORT, ENV_WATCH_STDIN


@dataclass(frozen=True, slots=True)
class ReattachConfig:
    """Everything needed to connect to a plugin that is already running."""

    protocol: str
    protocol_version: int
    network: str
    address: str
    pid: int


@dataclass(slots=True)
class Started:
    """A plugin past its handshake, not yet connected."""

    process: PluginProcess
    line: hs.HandshakeLine
    socket_dir: str | None
    # AutoMTLS: the native protocol's TLS context, or the gRPC connection's certificates
    # (grpcio's TLS or the relay, see _grpc_tls); both None without AutoMTLS.
    tls: ssl.SSLContext | None
    grpc_tls: GRPCTLS | None = None


def verify_checksum(path: str, expected: str | bytes) -> None:
    """Check the sha256 of `path` before it is executed (go-plugin's SecureConfig)."""
    if isinstance(expected, str):
        text = expected.removeprefix("sha256:").strip()
        try:
            want = bytes.fromhex(text)
        except ValueError:
            raise ConfigError(f"checksum {expected!r} is not a hex sha256 digest") from None
    else:
        want = expected
    if len(want) != hashlib.sha256().digest_size:
        raise ConfigError("checksum must be a sha256 digest (32 bytes, 64 hex digits)")
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ChecksumMismatchError(f"cannot read {path} to verify its checksum: {exc}") from exc
    if not hmac.compare_digest(digest.digest(), want):
        raise ChecksumMismatchError(
            f"checksums did not match: {path} has sha256 {digest.hexdigest()}, expected "
            f"{want.hex()}; the plugin was not started"
        )


@dataclass(slots=True)
class Launch:
    """How to start one plugin; `start()` runs up to and including the handshake."""

    cmd: Sequence[str]
    handshake: hs.HandshakeConfig
    versions: Sequence[int]
    name: str
    logger: logging.Logger
    start_timeout: float = 60.0
    env: Mapping[str, str] | None = None
    inherit_env: bool = True
    cwd: str | None = None
    transport: Literal["unix", "tcp"] = "unix"
    auto_mtls: bool = False
    checksum: str | bytes | None = None
    min_port: int = hs.DEFAULT_MIN_PORT
    max_port: int = hs.DEFAULT_MAX_PORT
    allowed_protocols: Sequence[str] = (hs.PROTOCOL_NATIVE, hs.PROTOCOL_GRPC)
    stdout: IO[str] | None = None
    stderr: IO[str] | None = None
    # Called with the pid once the process is spawned, before its handshake is read.
    on_spawn: Callable[[int], None] | None = None
    _cert: object = field(default=None, repr=False)

    def validate(self) -> None:
        if not self.cmd:
            raise ConfigError("the plugin command is empty")
        if self.start_timeout <= 0:
            raise ConfigError(f"start_timeout must be positive, got {self.start_timeout}")
        if self.transport not in ("unix", "tcp"):
            raise ConfigError(f"transport must be 'unix' or 'tcp', got {self.transport!r}")
        if self.transport == "tcp" and not self.auto_mtls:
            raise ConfigError("TCP transport is only available with TLS: pass auto_mtls=True")

    def executable(self) -> str:
        exe = self.cmd[0]
        if os.sep not in exe:
            found = shutil.which(exe, path=(self.env or os.environ).get("PATH"))
            if found is None:
                raise ConfigError(f"plugin executable {exe!r} was not found on PATH")
            exe = found
        return exe

    def start(self) -> Started:
        self.validate()
        if self.checksum is not None:
            verify_checksum(self.executable(), self.checksum)
        socket_dir = make_socket_dir() if self.transport == "unix" else None
        process: PluginProcess | None = None
        try:
            cert_pem = self._make_cert()
            process = PluginProcess(
                self.cmd,
                env=self._environment(socket_dir, cert_pem),
                cwd=self.cwd,
                logger=self.logger,
                stdout_sink=self.stdout,
                stderr_sink=self.stderr,
            )
            process.start()
            if self.on_spawn is not None and process.pid is not None:
                self.on_spawn(process.pid)
            raw = process.read_handshake(self.start_timeout)
            line = hs.HandshakeLine.parse(raw)
            hs.check_host_side(line, self.versions, self.allowed_protocols)
            tls, grpc_tls = self._tls_context(line)
            return Started(process, line, socket_dir, tls, grpc_tls)
        except BaseException as exc:
            # go-plugin kills the process on any start failure; so do we, and we clean up.
            if process is not None:
                process.close()
            remove_socket_dir(socket_dir)
            if isinstance(exc, HandshakeError) and process is not None:
                tail = process.stderr_tail()
                if tail and "stderr" not in str(exc):
                    exc.add_note(stderr_suffix(tail).lstrip("\n"))
            raise

    def _make_cert(self) -> str | None:
        if not self.auto_mtls:
            return None
        from ._mtls import generate_certificate

        # P-256, not go-plugin's P-521: a gRPC plugin in Python can then use grpcio's own TLS
        # (see _grpc_tls), and Go plugins, like Python's ssl, accept either curve.
        cert = generate_certificate("P-256")
        self._cert = cert
        return cert.cert_pem.decode()

    def _environment(self, socket_dir: str | None, cert_pem: str | None) -> dict[str, str]:
        env: dict[str, str] = dict(os.environ) if self.inherit_env else {}
        if self.env:
            env.update(self.env)
        env.update(
            hs.host_env(
                self.handshake,
                self.versions,
                min_port=self.min_port,
                max_port=self.max_port,
                unix_socket_dir=socket_dir,
                client_cert_pem=cert_pem,
            )
        )
        env[ENV_WATCH_STDIN] = "1"
        env[ENV_LOG_LEVEL] = logging.getLevelName(self.logger.getEffectiveLevel())
        # The host's polling budget and speedups switch reach the plugin even through an
        # env allow-list; the plugin's own `env` wins.
        for name in (ENV_SPIN_US, ENV_SPEEDUPS):
            value = os.environ.get(name)
            if value is not None and name not in (self.env or {}):
                env[name] = value
        if self.transport == "tcp":
            env[ENV_TRANSPORT] = "tcp"
        else:
            env.pop(ENV_TRANSPORT, None)
        # Python plugins must flush the handshake line themselves; an inherited
        # PYTHONUNBUFFERED would hide a plugin that forgets to.
        if "PYTHONUNBUFFERED" not in (self.env or {}):
            env.pop("PYTHONUNBUFFERED", None)
        return env

    def _tls_context(self, line: hs.HandshakeLine) -> tuple[ssl.SSLContext | None, GRPCTLS | None]:
        if not self.auto_mtls:
            if line.network == "tcp" and line.protocol == hs.PROTOCOL_NATIVE:
                raise HandshakeError(
                    "the plugin listens on TCP without TLS; tether only connects to TCP "
                    "plugins over TLS (use auto_mtls=True)"
                )
            return None, None
        # go-plugin only trusts field 6 when it is long enough to be a certificate.
        if len(line.server_cert) <= 50:
            raise HandshakeError(
                "AutoMTLS is on but the plugin sent no server certificate in its handshake "
                "line; the plugin must support AutoMTLS (PLUGIN_CLIENT_CERT)"
            )
        from ._mtls import Certificate, client_context, decode_server_cert, der_to_pem

        assert isinstance(self._cert, Certificate)
        peer_der = decode_server_cert(line.server_cert)
        if line.protocol != hs.PROTOCOL_GRPC:
            return client_context(self._cert, peer_der), None
        from ._grpc_tls import GRPCTLS

        grpc_tls = GRPCTLS.between(self._cert, der_to_pem(peer_der))
        if not grpc_tls.native:
            # Fail here, with the plugin's stderr attached, if OpenSSL refuses the certificate,
            # rather than when the relay first dials.
            grpc_tls.client_context()
        return None, grpc_tls


def plugin_name(cmd: Sequence[str] | None, name: str | None) -> str:
    """The name a plugin's logs and errors go by: go-plugin uses the executable's name;
    for a Python interpreter the script (or `-m` module) it runs says more."""
    if name:
        return name
    if not cmd:
        return "plugin"
    exe = os.path.basename(cmd[0])
    if exe.startswith("python") or os.path.realpath(cmd[0]) == os.path.realpath(sys.executable):
        args = list(cmd[1:])
        for i, arg in enumerate(args):
            if arg == "-m" and i + 1 < len(args):
                return args[i + 1].rsplit(".", 1)[-1]
            if arg.endswith(".py"):
                stem = os.path.splitext(os.path.basename(arg))[0]
                # examples/kv/plugin.py says less than its directory: "kv".
                parent = os.path.basename(os.path.dirname(os.path.abspath(arg)))
                return parent if stem in ("plugin", "main", "__main__") and parent else stem
    return exe

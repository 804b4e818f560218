"""The host side: `Client` (blocking) and `AsyncClient` (asyncio) for one plugin."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, TypeVar, overload

from . import _cleanup
from . import _handshake as hs
from ._aio import AsyncEndpoint
from ._dispatch import ExportTable
from ._endpoint import SyncEndpoint
from ._errors import (
    ConfigError,
    ConnectionClosedError,
    HandshakeError,
    PluginCrashedError,
    ProtocolError,
    RemoteError,
    TetherError,
)
from ._fdtransport import open_fd_connection
from ._grpc_broker import GRPCPlugin
from ._interface import Interface, spec_of
from ._launch import Launch, ReattachConfig, Started, plugin_name
from ._process import PluginProcess
from ._proxy import async_proxy, sync_proxy
from ._transport import check_peer, connect_tcp, connect_unix, remove_socket_dir

__all__ = ["AsyncClient", "Client"]

if TYPE_CHECKING:
    from ._describe import PluginDescription
    from ._grpc_client import GRPCConnection

T = TypeVar("T", bound=Interface)
S = TypeVar("S")

log = logging.getLogger("tether.client")


class _Base:
    """Configuration and process bookkeeping shared by both clients."""

    def __init__(
        self,
        cmd: Sequence[str] | None = None,
        *,
        handshake: hs.HandshakeConfig,
        versions: Iterable[int] | None = None,
        name: str | None = None,
        start_timeout: float = 60.0,
        call_timeout: float | None = None,
        kill_timeout: float = 2.0,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        cwd: str | None = None,
        transport: Literal["unix", "tcp"] = "unix",
        auto_mtls: bool = False,
        checksum: str | bytes | None = None,
        reattach: ReattachConfig | None = None,
        min_port: int = hs.DEFAULT_MIN_PORT,
        max_port: int = hs.DEFAULT_MAX_PORT,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        logger: logging.Logger | None = None,
        on_state: Callable[[str, int | None], None] | None = None,
    ) -> None:
        if (cmd is None) == (reattach is None):
            raise ConfigError("give exactly one of a plugin command or a reattach config")
        if reattach is not None and checksum is not None:
            raise ConfigError("a checksum cannot be verified when reattaching to a running plugin")
        if kill_timeout < 0:
            raise ConfigError(f"kill_timeout must not be negative, got {kill_timeout}")
        self.name = plugin_name(cmd, name)
        self.handshake = handshake
        self.versions = tuple(versions) if versions is not None else (handshake.protocol_version,)
        if not self.versions:
            raise ConfigError("versions must name at least one protocol version")
        self.call_timeout = call_timeout
        self.kill_timeout = kill_timeout
        self.logger = logger or logging.getLogger(f"tether.plugin.{self.name}")
        self._reattach = reattach
        self._stdout = stdout
        self._stderr = stderr
        # Progress of start() for supervisors: ("handshaking", pid) once spawned,
        # ("connected", pid) once connected.
        self._on_state = on_state
        self._launch: Launch | None = None
        if cmd is not None:
            self._launch = Launch(
                cmd=list(cmd),
                handshake=handshake,
                versions=self.versions,
                name=self.name,
                logger=self.logger,
                start_timeout=start_timeout,
                env=env,
                inherit_env=inherit_env,
                cwd=cwd,
                transport=transport,
                auto_mtls=auto_mtls,
                checksum=checksum,
                min_port=min_port,
                max_port=max_port,
                stdout=stdout,
                stderr=stderr,
                on_spawn=(lambda pid: on_state("handshaking", pid)) if on_state else None,
            )
            self._launch.validate()
        self._process: PluginProcess | None = None
        self._line: hs.HandshakeLine | None = None
        self._socket_dir: str | None = None
        self._killed = False
        self._killing = False
        self._state_lock = threading.Lock()

    # ----------------------------------------------------------------- facts

    @property
    def pid(self) -> int | None:
        if self._process is not None:
            return self._process.pid
        return self._reattach.pid if self._reattach else None

    @property
    def negotiated_version(self) -> int | None:
        """The app protocol version both sides agreed on (go-plugin's NegotiatedVersion)."""
        return self._line.app_version if self._line else None

    @property
    def protocol(self) -> str | None:
        return self._line.protocol if self._line else None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process is not None else None

    @property
    def exited(self) -> bool:
        if self._process is not None:
            return self._process.returncode is not None
        pid = self.pid
        return pid is None or not _pid_alive(pid)

    @property
    def reattach_config(self) -> ReattachConfig | None:
        """How another client can connect to this running plugin (not with AutoMTLS)."""
        line, pid = self._line, self.pid
        if line is None or pid is None or line.server_cert:
            return None
        return ReattachConfig(line.protocol, line.app_version, line.network, line.address, pid)

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the plugin process exits and return its exit code; None if it still
        runs after `timeout` seconds, or when this client started no process."""
        process = self._process
        return process.wait(timeout) if process is not None else None

    def stderr_tail(self) -> tuple[str, ...]:
        """The plugin's last stderr lines (for messages about why it exited)."""
        process = self._process
        return process.stderr_tail() if process is not None else ()

    def _connected(self) -> None:
        if self._on_state is not None:
            self._on_state("connected", self.pid)

    def _kill_at_exit(self) -> None:
        raise NotImplementedError

    def _begin_kill(self) -> bool:
        """Mark the client killed; False if it already was (kill is idempotent)."""
        with self._state_lock:
            if self._killed:
                return False
            self._killed = self._killing = True
            return True

    # ----------------------------------------------------------------- helpers

    def _handshake_done(self, started: Started) -> None:
        self._process = started.process
        self._line = started.line
        self._socket_dir = started.socket_dir

    def _reattach_line(self) -> hs.HandshakeLine:
        cfg = self._reattach
        assert cfg is not None
        if cfg.protocol not in (hs.PROTOCOL_NATIVE, hs.PROTOCOL_GRPC):
            raise HandshakeError(
                f"cannot reattach with protocol {cfg.protocol!r}: tether speaks "
                f"{hs.PROTOCOL_NATIVE!r} and {hs.PROTOCOL_GRPC!r}"
            )
        if not _pid_alive(cfg.pid):
            raise HandshakeError(f"plugin process {cfg.pid} to reattach to was not found")
        return hs.HandshakeLine(
            hs.CORE_PROTOCOL_VERSION, cfg.protocol_version, cfg.network, cfg.address, cfg.protocol
        )

    def _lost_error(self, cause: BaseException | None) -> BaseException:
        if self._killing:
            return ConnectionClosedError(f"plugin {self.name!r} was killed")
        if isinstance(cause, ProtocolError):
            log.error("plugin %s broke the protocol: %s", self.name, cause)
            return cause
        process = self._process
        if process is not None:
            returncode = process.wait(1.0)
            if returncode is not None:
                return PluginCrashedError(self.name, returncode, process.stderr_tail())
        reason = f" ({cause})" if cause is not None else ""
        return ConnectionClosedError(f"the connection to plugin {self.name!r} was lost{reason}")

    def _grpc_connect(self, line: hs.HandshakeLine, started: Started | None) -> GRPCConnection:
        from ._grpc_client import GRPCConnection

        return GRPCConnection(
            line,
            name=self.name,
            logger=self.logger,
            tls=started.grpc_tls if started is not None else None,
            stdout=self._stdout,
            stderr=self._stderr,
        )

    def _grpc_kill(self, conn: GRPCConnection) -> None:
        if not conn.closed:
            conn.shutdown(max(self.kill_timeout, 0.05))
        conn.close()

    def _check_interface(self, iface: type[Interface], reply: Any) -> int:
        spec = spec_of(iface)
        if not isinstance(reply, list) or len(reply) != 2 or type(reply[0]) is not int:
            raise ProtocolError(f"unexpected reply to dispense: {reply!r:.100}")
        oid, methods = reply
        missing = sorted(set(spec.methods) - set(methods))
        if missing:
            raise HandshakeError(
                f"plugin {self.name!r} serves {spec.name} without method(s) "
                f"{', '.join(missing)}: host and plugin disagree on the interface"
            )
        return int(oid)

    def _finish_kill(self, graceful: bool) -> None:
        process = self._process
        if process is not None:
            if process.wait(self.kill_timeout if graceful else 0) is None:
                if graceful:
                    self.logger.warning("plugin failed to exit gracefully; killing it")
                process.kill()
            process.close()
        elif self._reattach is not None and graceful:
            deadline = time.monotonic() + self.kill_timeout
            while _pid_alive(self._reattach.pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        remove_socket_dir(self._socket_dir)
        _cleanup.unregister(self)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _connect(line: hs.HandshakeLine, started: Started | None) -> socket.socket:
    if line.network == "unix":
        return connect_unix(line.address)
    host, port = line.tcp_address()
    sock = connect_tcp(host, port)
    if started is None or started.tls is None:
        return sock
    try:
        return started.tls.wrap_socket(sock, server_hostname="localhost")
    except OSError as exc:
        sock.close()
        raise HandshakeError(f"TLS handshake with the plugin failed: {exc}") from exc


class Client(_Base):
    """Runs one plugin process and talks to it over the native protocol (blocking API).

    Usable as a context manager; `kill()` stops the plugin gracefully, then by force.
    The handshake and every option follow go-plugin's ClientConfig where one exists.
    """

    _ep: SyncEndpoint | None = None
    _grpc: GRPCConnection | None = None
    _descriptions: list[PluginDescription] | None = None
    _raw_oids: dict[str, int] | None = None

    def start(self) -> None:
        """Start the plugin and connect to it (safe to call again once started)."""
        with self._state_lock:
            if self._killed:
                raise TetherError("this client was killed; create a new one to start again")
            if self._ep is not None or self._grpc is not None:
                return
            started: Started | None = None
            if self._launch is not None:
                started = self._launch.start()
                self._handshake_done(started)
                line = started.line
            else:
                line = self._reattach_line()
                self._line = line
            _cleanup.register(self)
            try:
                if line.protocol == hs.PROTOCOL_GRPC:
                    self._grpc = self._grpc_connect(line, started)
                else:
                    sock = _connect(line, started)
                    self._ep = SyncEndpoint(
                        sock,
                        name=self.name,
                        exports=ExportTable(),
                        control=_host_control,
                        lost_error=self._lost_error,
                    )
            except BaseException:
                self._killed = True
                self._finish_kill(graceful=False)
                raise
        self._connected()

    def _endpoint(self) -> SyncEndpoint:
        if self._ep is None and self._grpc is None:
            self.start()
        if self._ep is None:
            raise TetherError(
                f"plugin {self.name!r} speaks gRPC: dispense a tether.GRPCPlugin to use it"
            )
        return self._ep

    @overload
    def dispense(self, name: str, interface: type[T], *, timeout: float | None = None) -> T: ...

    @overload
    def dispense(
        self,
        name: str,
        interface: GRPCPlugin[S] | type[GRPCPlugin[S]],
        *,
        timeout: float | None = None,
    ) -> S: ...

    def dispense(self, name: str, interface: Any, *, timeout: float | None = None) -> Any:
        """The plugin called `name`: a proxy typed as the `Interface` class given, or for a
        gRPC plugin, whatever the `GRPCPlugin`'s `client()` builds (usually a stub)."""
        if self._ep is None and self._grpc is None:
            self.start()
        if self._grpc is not None:
            return self._grpc.dispense(interface)
        if not (isinstance(interface, type) and issubclass(interface, Interface)):
            raise TetherError(
                f"plugin {self.name!r} speaks tether's native protocol: dispense it with its "
                f"tether.Interface class, not {interface!r}"
            )
        ep = self._endpoint()
        reply = ep.control_call("dispense", [name, spec_of(interface).name], 30.0)
        oid = self._check_interface(interface, reply)
        return sync_proxy(ep, oid, interface, timeout if timeout is not None else self.call_timeout)

    def ping(self, timeout: float | None = 10.0) -> None:
        """Check the plugin answers; raises if it does not."""
        if self._ep is None and self._grpc is None:
            self.start()
        if self._grpc is not None:
            self._grpc.ping(timeout)
            return
        self._endpoint().control_call("ping", [], timeout)

    def describe(self, timeout: float | None = 30.0) -> list[PluginDescription]:
        """What the plugin serves: each name with its interface, docstrings and method
        signatures (native plugins only; asked once, then remembered)."""
        if self._descriptions is None:
            from ._describe import descriptions_from_wire

            try:
                reply = self._endpoint().control_call("describe", [], timeout)
            except RemoteError as exc:
                raise TetherError(
                    f"plugin {self.name!r} cannot describe itself ({exc.remote_message}); "
                    "it needs a newer tether"
                ) from None
            self._descriptions = descriptions_from_wire(reply)
        return self._descriptions

    def call(self, name: str, method: str, *args: Any, timeout: float | None = None) -> Any:
        """Call `method` of the plugin served as `name`, knowing neither by type: the
        arguments are sent as they are (the plugin checks them against its signature) and
        the result comes back as plain data (dataclasses and structs as dicts). A streaming
        method returns an iterator of items."""
        from ._describe import raw_method_spec

        described = {d.name: d for d in self.describe()}
        plugin = described.get(name)
        if plugin is None:
            raise ConfigError(
                f"plugin {self.name!r} serves no {name!r}{_did_you_mean(name, described)}"
            )
        found = plugin.method(method)
        if found is None:
            known = [m.name for m in plugin.methods]
            raise ConfigError(
                f"{plugin.interface} has no method {method!r}{_did_you_mean(method, known)}"
            )
        if self._raw_oids is None:
            self._raw_oids = {}
        ep = self._endpoint()
        oid = self._raw_oids.get(name)
        if oid is None:
            reply = ep.control_call("dispense", [name, plugin.interface], 30.0)
            if not isinstance(reply, list) or len(reply) != 2 or type(reply[0]) is not int:
                raise ProtocolError(f"unexpected reply to dispense: {reply!r:.100}")
            oid = self._raw_oids[name] = reply[0]
        spec = raw_method_spec(plugin.interface, found, len(args))
        limit = timeout if timeout is not None else self.call_timeout
        if spec.stream:
            return ep.call_stream(oid, spec, args, {}, limit)
        return ep.call(oid, spec, args, {}, limit)

    def kill(self) -> None:
        """Stop the plugin: ask it to shut down, wait `kill_timeout`, then SIGKILL (idempotent)."""
        if not self._begin_kill():
            return
        ep = self._ep
        graceful = ep is not None and not ep.closed
        if ep is not None:
            if graceful:
                try:
                    ep.control_call("shutdown", [], max(self.kill_timeout, 0.05))
                except TetherError:
                    pass
            ep.close()
        if self._grpc is not None:
            graceful = not self._grpc.closed
            self._grpc_kill(self._grpc)
        self._finish_kill(graceful=graceful)

    def _kill_at_exit(self) -> None:
        self.kill()

    def __enter__(self) -> Client:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()

    def __repr__(self) -> str:
        return f"<tether.Client {self.name!r} pid={self.pid}>"


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    import difflib

    options = sorted(choices)
    close = [o for o in options if o.startswith(word) or word.startswith(o)]
    close = close or difflib.get_close_matches(word, options, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" (known: {', '.join(options) or 'none'})"


def _host_control(endpoint: SyncEndpoint, method: str, args: list[Any]) -> Any:
    if method == "ping":
        return True
    raise ConfigError(f"the host has no control method {method!r}")


class AsyncClient(_Base):
    """Runs one plugin process and talks to it over the native protocol (asyncio API)."""

    _ep: AsyncEndpoint | None = None
    _grpc: GRPCConnection | None = None
    _aio_channel: Any = None
    _start_lock: asyncio.Lock | None = None

    async def start(self) -> None:
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._killed:
                raise TetherError("this client was killed; create a new one to start again")
            if self._ep is not None or self._grpc is not None:
                return
            started: Started | None = None
            if self._launch is not None:
                started = await asyncio.to_thread(self._launch.start)
                self._handshake_done(started)
                line = started.line
            else:
                line = self._reattach_line()
                self._line = line
            _cleanup.register(self)
            try:
                if line.protocol == hs.PROTOCOL_GRPC:
                    await self._open_grpc(line, started)
                else:
                    self._ep = await self._open(line, started)
            except BaseException:
                self._killed = True
                await asyncio.to_thread(self._finish_kill, False)
                raise

    async def _open(self, line: hs.HandshakeLine, started: Started | None) -> AsyncEndpoint:
        loop = asyncio.get_running_loop()
        endpoint = AsyncEndpoint(name=self.name, exports=ExportTable(), lost_error=self._lost_error)
        try:
            if line.network == "unix":
                transport: asyncio.Transport = await open_fd_connection(endpoint, line.address)
            else:
                host, port = line.tcp_address()
                tls = started.tls if started is not None else None
                transport, _ = await loop.create_connection(
                    lambda: endpoint,
                    host,
                    port,
                    ssl=tls,
                    server_hostname="localhost" if tls is not None else None,
                )
        except OSError as exc:
            raise HandshakeError(f"cannot connect to the plugin at {line.address}: {exc}") from exc
        sock = transport.get_extra_info("socket")
        if sock is not None and line.network == "unix":
            try:
                check_peer(sock)
            except BaseException:
                transport.abort()
                raise
        return endpoint

    async def _open_grpc(self, line: hs.HandshakeLine, started: Started | None) -> None:
        # Control traffic (broker, stdio, health, shutdown) runs on a blocking channel in
        # threads; the application's stubs get an asyncio channel to the same target.
        self._grpc = conn = await asyncio.to_thread(self._grpc_connect, line, started)
        self._aio_channel = conn.dialed.aio_channel()

    def _endpoint(self) -> AsyncEndpoint:
        if self._ep is None:
            if self._grpc is not None:
                raise TetherError(
                    f"plugin {self.name!r} speaks gRPC: dispense a tether.GRPCPlugin to use it"
                )
            raise TetherError("call `await client.start()` (or use `async with`) first")
        return self._ep

    @overload
    async def dispense(
        self, name: str, interface: type[T], *, timeout: float | None = None
    ) -> T: ...

    @overload
    async def dispense(
        self,
        name: str,
        interface: GRPCPlugin[S] | type[GRPCPlugin[S]],
        *,
        timeout: float | None = None,
    ) -> S: ...

    async def dispense(self, name: str, interface: Any, *, timeout: float | None = None) -> Any:
        """A proxy for the plugin called `name` whose methods are coroutines; for a gRPC
        plugin, what its `GRPCPlugin.client()` builds on an asyncio (`grpc.aio`) channel."""
        if self._ep is None and self._grpc is None:
            await self.start()
        if self._grpc is not None:
            instance = interface() if isinstance(interface, type) else interface
            if not isinstance(instance, GRPCPlugin):
                raise TetherError(
                    f"plugin {self.name!r} speaks gRPC: dispense a tether.GRPCPlugin, "
                    f"not {interface!r}"
                )
            return instance.client(self._grpc.broker, self._aio_channel)
        ep = self._endpoint()
        reply = await ep.control_call("dispense", [name, spec_of(interface).name], 30.0)
        oid = self._check_interface(interface, reply)
        return async_proxy(
            ep, oid, interface, timeout if timeout is not None else self.call_timeout
        )

    async def ping(self, timeout: float | None = 10.0) -> None:
        if self._ep is None and self._grpc is None:
            await self.start()
        if self._grpc is not None:
            await asyncio.to_thread(self._grpc.ping, timeout)
            return
        await self._endpoint().control_call("ping", [], timeout)

    async def kill(self) -> None:
        """Stop the plugin: ask it to shut down, wait `kill_timeout`, then SIGKILL (idempotent)."""
        if not self._begin_kill():
            return
        ep = self._ep
        graceful = ep is not None and not ep.closed
        if ep is not None:
            if graceful:
                try:
                    await ep.control_call("shutdown", [], max(self.kill_timeout, 0.05))
                except TetherError:
                    pass
            await ep.aclose()
        if self._grpc is not None:
            graceful = not self._grpc.closed
            if self._aio_channel is not None:
                await self._aio_channel.close()
            await asyncio.to_thread(self._grpc_kill, self._grpc)
        await asyncio.shield(asyncio.to_thread(self._finish_kill, graceful))

    def _kill_at_exit(self) -> None:
        # The event loop is gone at interpreter exit: stop the process directly.
        if not self._begin_kill():
            return
        process = self._process
        if self._grpc is not None:
            self._grpc_kill(self._grpc)
        elif process is not None and process.pid is not None and process.returncode is None:
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self._finish_kill(graceful=True)

    async def __aenter__(self) -> AsyncClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.kill()

    def __repr__(self) -> str:
        return f"<tether.AsyncClient {self.name!r} pid={self.pid}>"

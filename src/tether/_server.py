"""The plugin side: `serve()` checks the host's cookie, listens, prints the handshake line
and serves the native protocol until the host shuts it down or goes away."""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
import time

from . import _handshake as hs
from ._declare import Interface, find_interface, served_interfaces
from ._env import ENV_LOG_LEVEL, ENV_TRANSPORT, ENV_WATCH_STDIN
from ._errors import ConfigError, HandshakeError, TetherError
from ._transport import (
    check_peer,
    listen_tcp,
    listen_unix,
    make_socket_dir,
    remove_socket_dir,
)

# Neither typing nor logging at start-up (nor msgspec, through the endpoint): a plugin
# answers its first calls before importing them (see _firstcall). Not typing.TYPE_CHECKING
# for the same reason; type checkers treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    import signal as _signal  # typeshed has no stub for _signal, which signal re-exports
    import ssl
    from collections.abc import Callable, Mapping
    from typing import Any, Final, TypeGuard

    from ._endpoint import SyncEndpoint
    from ._firstcall import Dispensed
    from ._grpc_broker import GRPCPlugin
    from ._grpc_server import GRPCServe

    Plugin = Interface | GRPCPlugin[Any]
else:
    import _signal

__all__ = ["serve"]

_PARENT_POLL: Final = 0.25  # seconds between checks that the host is still alive
# Host levels at which setting logging up after the first calls hides nothing the host would
# show: below WARNING, INFO and DEBUG records of start-up would be lost.
_QUIET_LEVELS: Final = frozenset({"WARNING", "WARN", "ERROR", "CRITICAL", "FATAL"})
_logging_deferred = False  # serve() left setting up logging to the end of the first calls


def _log() -> logging.Logger:
    """The server's logger; logging is set up first if serve() deferred it."""
    import logging

    if _logging_deferred:
        _configure_logging()
    return logging.getLogger("tether.server")


def serve(
    handshake: hs.HandshakeConfig,
    plugins: Mapping[str, Plugin] | None = None,
    *,
    versioned_plugins: Mapping[int, Mapping[str, Plugin]] | None = None,
    configure_logging: bool = True,
) -> None:
    """Serve plugin implementations to the host that started this process.

    `plugins` maps names to implementation objects, served as protocol version
    `handshake.protocol_version`; `versioned_plugins` maps several versions to their own
    sets, and the version is negotiated with the host as go-plugin does. A set of
    `Interface` implementations is served over tether's native protocol; a set of
    `GRPCPlugin`s over go-plugin's gRPC protocol (so a Go host can use it).

    Returns once the host has shut the plugin down; exits the process when the host dies,
    and with go-plugin's message and exit code 1 when the magic cookie is wrong.
    """
    sets = _plugin_sets(handshake, plugins, versioned_plugins)
    if not hs.check_cookie(handshake, os.environ):
        sys.stderr.write(hs.COOKIE_MISMATCH_TEXT)
        sys.stderr.flush()
        sys.exit(1)
    version, warnings = hs.negotiate_version(sets, os.environ)
    if configure_logging:
        level = os.environ.get(ENV_LOG_LEVEL, "INFO").upper()
        if "logging" in sys.modules or warnings or level not in _QUIET_LEVELS:
            _configure_logging()
        else:
            global _logging_deferred
            _logging_deferred = True  # done once the first calls are answered
    for warning in warnings:
        _log().warning("%s", warning)
    try:
        _PluginServer(sets[version], version).run()
    except TetherError as exc:
        _log().error("%s", exc)
        sys.exit(1)


def _plugin_sets(
    handshake: hs.HandshakeConfig,
    plugins: Mapping[str, Plugin] | None,
    versioned: Mapping[int, Mapping[str, Plugin]] | None,
) -> dict[int, Mapping[str, Plugin]]:
    sets: dict[int, Mapping[str, Plugin]] = dict(versioned or {})
    if plugins is not None:
        sets[handshake.protocol_version] = plugins
    if not sets:
        raise ConfigError("serve() needs `plugins` or `versioned_plugins`")
    for version, members in sets.items():
        for name, impl in members.items():
            if not isinstance(impl, Interface) and not _is_grpc(impl):
                raise ConfigError(
                    f"plugin {name!r} (version {version}) is a {type(impl).__qualname__}, "
                    "neither an implementation of a tether.Interface nor a tether.GRPCPlugin"
                )
        kinds = {_is_grpc(impl) for impl in members.values()}
        if len(kinds) > 1:
            raise ConfigError(
                f"plugin set version {version} mixes gRPC plugins and native interfaces; "
                "one version is served over one protocol (use versioned_plugins)"
            )
    return sets


def _is_grpc(impl: object) -> TypeGuard[GRPCPlugin[Any]]:
    """Whether impl is a GRPCPlugin, without importing the gRPC side for native plugins.

    A GRPCPlugin instance exists only once its module is imported, so an unimported module
    means "no"; native plugins never pay for the import.
    """
    module = sys.modules.get("tether._grpc_broker")
    return module is not None and isinstance(impl, module.GRPCPlugin)


def _configure_logging() -> None:
    global _logging_deferred
    _logging_deferred = False
    from ._plugin_logging import configure

    configure()


class _SpareThread:
    """A connection thread started ahead of its connection: the host's first connection
    (usually its only one) is served without a thread start while the host waits."""

    def __init__(self, serve: Callable[[socket.socket], None]) -> None:
        self._serve = serve
        self._conn: socket.socket | None = None
        self._decided = False
        self._given = threading.Lock()
        self._given.acquire()
        threading.Thread(target=self._run, name="tether-conn", daemon=True).start()

    def give(self, conn: socket.socket | None) -> None:
        """Serve `conn`; None lets the thread end unused (the plugin stops first). Only the
        first call counts: the accept loop's thread alone makes them."""
        if self._decided:
            return
        self._decided = True
        self._conn = conn
        self._given.release()

    def _run(self) -> None:
        self._given.acquire()
        conn, self._conn = self._conn, None
        if conn is not None:
            self._serve(conn)


class _PluginServer:
    def __init__(self, plugins: Mapping[str, Plugin], version: int) -> None:
        self.plugins = dict(plugins)
        self.version = version
        self._listener: socket.socket | None = None
        self._path: str | None = None
        self._own_dir: str | None = None
        self._host_dir: str | None = None  # a tether host's socket directory for us
        self._tls: ssl.SSLContext | None = None
        self._stopping = threading.Event()
        self._endpoints: set[SyncEndpoint] = set()
        self._lock = threading.Lock()
        self._grpc: GRPCServe | None = None
        self.is_grpc = any(_is_grpc(p) for p in self.plugins.values())
        # The first connection's first calls are served before the full endpoint's imports,
        # unless something already imported them (see _firstcall).
        self._lean = not self.is_grpc and "tether._endpoint" not in sys.modules
        self._lean_socks: set[socket.socket] = set()  # connections still in their first calls

    # ----------------------------------------------------------------- start-up

    def run(self) -> None:
        # _signal, not signal: the wrapper builds enums of all signals on import (~0.7 ms of
        # a plugin's start-up) and adds nothing these two calls need.
        _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # go-plugin: the host decides
        _signal.signal(_signal.SIGTERM, lambda *_: self.stop())
        first: _SpareThread | None = None
        try:
            line = self._start_grpc() if self.is_grpc else self._listen()
            if self._tls is not None:
                self._lean = False  # _firstcall reads plain sockets only
            # Threads start before the line, while the host only waits for it: a thread
            # started once the host is busy connecting can wait milliseconds for a CPU on a
            # loaded machine, with the host's first call waiting too.
            self._watch_parent()
            first = None if self._grpc is not None else _SpareThread(self._serve_connection)
            sys.stdout.flush()
            os.write(1, (line.format() + "\n").encode())
            if self._grpc is not None:
                self._grpc.capture_stdio()
                self._grpc.wait()
            else:
                assert first is not None
                if self._lean:
                    from ._firstcall import prepare

                    prepare(self.plugins)  # while the host connects, as _read_specs()
                else:
                    self._read_specs()
                self._accept_loop(first)
        finally:
            if first is not None:
                first.give(None)  # a no-op once it has its connection
            self._cleanup()

    def _start_grpc(self) -> hs.HandshakeLine:
        from ._grpc_server import GRPCServe

        env = os.environ
        self._grpc = GRPCServe(
            {n: p for n, p in self.plugins.items() if _is_grpc(p)},
            self.version,
            host_cert_pem=env.get(hs.ENV_CLIENT_CERT) or None,
            stop=self._stopping,
        )
        return self._grpc.start(env, tcp=env.get(ENV_TRANSPORT) == "tcp")

    def _listen(self) -> hs.HandshakeLine:
        env = os.environ
        cert_b64 = ""
        client_pem = env.get(hs.ENV_CLIENT_CERT, "")
        if client_pem:
            from ._mtls import encode_server_cert, generate_certificate, server_context

            cert = generate_certificate()
            self._tls = server_context(cert, client_pem)
            cert_b64 = encode_server_cert(cert.cert_der)
        if env.get(ENV_TRANSPORT) == "tcp":
            if self._tls is None:
                raise HandshakeError(
                    "refusing to serve over TCP without TLS: the host must set "
                    f"{hs.ENV_CLIENT_CERT} (AutoMTLS)"
                )
            min_port, max_port = hs.port_range(env)
            self._listener, address = listen_tcp(min_port, max_port)
            network = "tcp"
        else:
            directory = env.get(hs.ENV_UNIX_SOCKET_DIR)
            if not directory:
                directory = self._own_dir = make_socket_dir()
            elif env.get(ENV_WATCH_STDIN) == "1":
                # A tether host made this directory for us alone; if it dies (SIGKILL) it
                # cannot remove it, so we do (see _host_gone).
                self._host_dir = directory
            self._listener, address = listen_unix(directory)
            self._path = address
            network = "unix"
        if "logging" in sys.modules:  # else nobody could see the record
            _log().debug("plugin address", extra={"network": network, "address": address})
        return hs.HandshakeLine(
            hs.CORE_PROTOCOL_VERSION, self.version, network, address, hs.PROTOCOL_NATIVE, cert_b64
        )

    def _watch_parent(self) -> None:
        """Exit when the host dies, even by SIGKILL: stdin EOF, or a change of parent.

        One thread watches both, sleeping in poll() on stdin between looks at the parent:
        each thread start is paid before the first call is served.
        """
        ppid = os.getppid()
        # Our host gives us a pipe as stdin and never writes to it: EOF means it died.
        # Other hosts (go-plugin) pass their own stdin, which we must not read.
        watch_stdin = os.environ.get(ENV_WATCH_STDIN) == "1"
        stopping = self._stopping

        def watch() -> None:
            poller: select.poll | None = None
            if watch_stdin:
                poller = select.poll()
                poller.register(0, select.POLLIN)  # hang-ups are reported as well
            while not stopping.is_set():
                if poller is None:
                    if stopping.wait(_PARENT_POLL):
                        return
                elif poller.poll(_PARENT_POLL * 1000):
                    try:
                        data = os.read(0, 4096)
                    except OSError:
                        poller = None  # stdin is unusable: watch the parent only
                        continue
                    if not data:
                        self._host_gone("the host closed our stdin")
                if os.getppid() != ppid:
                    self._host_gone("the host process is gone")

        threading.Thread(target=watch, name="tether-host-watch", daemon=True).start()

    def _read_specs(self) -> None:
        """Read the served interfaces' specs while the host connects, not in its first
        dispense, where the host waits for them.

        The interfaces are the Interface classes an implementation derives from (or its own
        class when it derives from Interface directly). A spec that cannot be read is left
        for the dispense to report.
        """
        from ._interface import spec_of

        for impl in self.plugins.values():
            for cls in served_interfaces(impl):
                try:
                    spec_of(cls)
                except ConfigError:
                    pass

    def _host_gone(self, why: str) -> None:
        if self._stopping.is_set():
            return
        _log().warning("%s; plugin exiting", why)
        self._cleanup()
        if self._host_dir is not None:
            try:
                os.rmdir(self._host_dir)  # only if empty: nothing but our socket was in it
            except OSError:
                pass
        import logging

        logging.shutdown()
        os._exit(0)

    # ----------------------------------------------------------------- serving

    def _accept_loop(self, first: _SpareThread) -> None:
        listener = self._listener
        assert listener is not None
        spare: _SpareThread | None = first
        while not self._stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                if self._stopping.is_set():
                    break
                time.sleep(0.01)
                continue
            if spare is not None:
                spare.give(conn)
                spare = None
                continue
            threading.Thread(
                target=self._serve_connection, args=(conn,), name="tether-conn", daemon=True
            ).start()
        with self._lock:
            endpoints = list(self._endpoints)
            lean_socks = list(self._lean_socks)
        for endpoint in endpoints:
            endpoint.close()
        for sock in lean_socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes its reader, which closes it
            except OSError:
                pass

    def _serve_connection(self, conn: socket.socket) -> None:
        try:
            if conn.family == socket.AF_UNIX:
                check_peer(conn)
            else:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                conn.settimeout(10.0)
                conn = self._tls.wrap_socket(conn, server_side=True)
                conn.settimeout(None)
        except (OSError, HandshakeError) as exc:
            _log().warning("rejected a connection: %s", exc)
            conn.close()
            return
        with self._lock:
            lean, self._lean = self._lean, False
            if lean:
                self._lean_socks.add(conn)
        if not lean:
            self._serve_endpoint(self._make_endpoint(conn, b"", []))
            return
        from ._firstcall import FirstCalls

        def make_endpoint(rest: bytes, dispensed: Dispensed) -> SyncEndpoint:
            with self._lock:
                self._lean_socks.discard(conn)
            return self._make_endpoint(conn, rest, dispensed)

        FirstCalls(conn, self.plugins, make_endpoint, self._serve_endpoint).serve()
        with self._lock:
            self._lean_socks.discard(conn)  # closed there if it was not handed over

    def _make_endpoint(
        self, conn: socket.socket, initial: bytes, dispensed: Dispensed
    ) -> SyncEndpoint:
        """The full endpoint for a connection, given what its first calls read and dispensed."""
        if _logging_deferred:
            _configure_logging()
        from ._dispatch import ExportTable
        from ._endpoint import SyncEndpoint

        exports = ExportTable()
        failure: ConfigError | None = None
        for impl, cls in dispensed:
            try:
                exports.add(impl, cls)  # the ids the first calls gave out, in the same order
            except ConfigError as exc:
                # _firstcall dispenses only what it judges spec_of() will read; should it
                # misjudge, ids after this one would be wrong: the connection ends instead.
                failure = exc
                break
        endpoint = SyncEndpoint(
            conn,
            name="host",
            exports=exports,
            control=self._control,
            inline=True,
            initial=initial,
        )
        if failure is not None:
            _log().error("closing the host's connection: %s", failure)
            endpoint.close()
        return endpoint

    def _serve_endpoint(self, endpoint: SyncEndpoint) -> None:
        with self._lock:
            self._endpoints.add(endpoint)
        try:
            endpoint.serve()
        finally:
            with self._lock:
                self._endpoints.discard(endpoint)

    def _control(self, endpoint: SyncEndpoint, method: str, args: list[Any]) -> Any:
        if method == "ping":
            return True
        if method == "dispense":
            return self._dispense(endpoint, args)
        if method == "shutdown":
            from ._dispatch import AfterReply

            return AfterReply(True, self.stop)
        if method == "describe":
            from ._describe import describe_served

            return describe_served(self.plugins)
        raise ConfigError(f"unknown control method {method!r}")

    def _dispense(self, endpoint: SyncEndpoint, args: list[Any]) -> list[Any]:
        if len(args) != 2 or not all(isinstance(a, str) for a in args):
            raise ConfigError("dispense takes a plugin name and an interface name")
        name, iface_name = args
        impl = self.plugins.get(name)
        if impl is None:
            served = ", ".join(sorted(self.plugins)) or "none"
            raise ConfigError(
                f"no plugin named {name!r} at protocol version {self.version} "
                f"(this plugin serves: {served})"
            )
        cls = find_interface(impl, iface_name)
        if cls is None:
            raise ConfigError(
                f"plugin {name!r} ({type(impl).__qualname__}) does not implement {iface_name}"
            )
        from ._interface import spec_of

        oid = endpoint.exports.add(impl, cls)
        return [oid, sorted(spec_of(cls).methods)]

    # ----------------------------------------------------------------- stopping

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        listener = self._listener
        if listener is not None:
            # shutdown() is what wakes a thread blocked in accept() on Linux.
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()

    def _cleanup(self) -> None:
        self._stopping.set()
        if self._grpc is not None:
            self._grpc.stop()
        if self._listener is not None:
            self._listener.close()
        if self._path is not None:
            try:
                os.unlink(self._path)
            except OSError:
                pass
        remove_socket_dir(self._own_dir)

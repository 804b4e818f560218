"""TLS in front of grpcio, on Python's `ssl` module.

go-plugin's AutoMTLS certificates use ECDSA P-521, which grpcio's TLS (BoringSSL) cannot
verify or present; OpenSSL, behind Python's `ssl`, can. So with AutoMTLS and a Go peer (a
P-521 certificate on either side; between tether processes grpcio does TLS itself, see
`_grpc_tls`), grpcio talks plaintext to a private Unix socket and a relay carries the bytes
over TLS:

- plugin side, `ServerRelay`: accepts TLS on the public address, forwards to grpcio's socket;
- host side, `ClientRelay`: grpcio connects to a private Unix socket, the relay dials the
  plugin over TLS.

The private sockets live in 0700 directories. All relays of a process share one event-loop
thread; asyncio's TLS runs over memory BIOs, so reads and writes of one connection never
touch an OpenSSL object from two threads at once. The relay is built on bare Protocols
(each received chunk is written straight to the other side, with flow control through
pause/resume) because streams cost a coroutine switch per chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

from ._handshake import split_host_port
from ._transport import SUN_PATH_MAX, make_socket_dir, remove_socket_dir

__all__ = ["ClientRelay", "ServerRelay", "tls_dialer"]

Dialer = Callable[[Callable[[], asyncio.Protocol]], Awaitable[tuple[asyncio.BaseTransport, Any]]]


class _Loop:
    """The relay event loop thread, started on first use."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="tether-tls-relay", daemon=True
                ).start()
                cls._loop = loop
            return cls._loop

    @classmethod
    def run(cls, coro: Any, timeout: float = 10.0) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, cls.get())
        return future.result(timeout)


class _Half(asyncio.Protocol):
    """One side of a spliced pair: what it receives, its peer writes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Half | None = None
        self._early: list[bytes] = []
        self._eof = False
        self._tls = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._tls = transport.get_extra_info("sslcontext") is not None
        if self.peer is not None:
            self.peer.flush()

    def attach(self, peer: _Half) -> None:
        """Pair with `peer`; data that arrived before both sides were up is sent then."""
        self.peer = peer
        self.flush()

    def flush(self) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            return
        for data in self._early:
            peer.transport.write(data)
        self._early.clear()
        if self._eof:
            _close_write(peer.transport)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self._early.append(data)
        else:
            peer.transport.write(data)

    def eof_received(self) -> bool:
        self._eof = True
        if self.peer is not None and self.peer.transport is not None:
            _close_write(self.peer.transport)
        # Keep our write side open until the peer finishes too (TLS cannot half-close).
        return not self._tls

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    # Back-pressure: when our outgoing buffer fills, stop reading from the peer.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


def _close_write(transport: asyncio.Transport) -> None:
    with contextlib.suppress(Exception):
        if transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()


class _Relay:
    def __init__(self) -> None:
        self._server: asyncio.AbstractServer | None = None
        self._halves: set[_Half] = set()
        self._dialing: set[asyncio.Future[None]] = set()

    def _accepted(self, dial: Dialer) -> _Half:
        """The protocol for an accepted connection; dials the other side behind it."""
        near = _Half()
        self._halves.add(near)

        async def connect() -> None:
            try:
                _far_transport, far = await dial(_Half)
            except (TimeoutError, OSError, ssl.SSLError):
                if near.transport is not None:
                    near.transport.close()
                return
            assert isinstance(far, _Half)
            self._halves.add(far)
            far.attach(near)
            near.attach(far)

        task = asyncio.ensure_future(connect())
        self._dialing.add(task)
        task.add_done_callback(self._dialing.discard)
        return near

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for half in list(self._halves):
                if half.transport is not None:
                    half.transport.close()

        with contextlib.suppress(Exception):
            _Loop.run(stop(), 5.0)


class ServerRelay(_Relay):
    """Plugin side: TLS on `listener` (a bound, listening socket) → grpcio at `backend`."""

    def __init__(self, listener: socket.socket, tls: ssl.SSLContext, backend: str) -> None:
        super().__init__()

        async def dial_backend(
            factory: Callable[[], asyncio.Protocol],
        ) -> tuple[asyncio.BaseTransport, Any]:
            loop = asyncio.get_running_loop()
            return await loop.create_unix_connection(factory, backend)

        async def start() -> None:
            loop = asyncio.get_running_loop()
            factory = lambda: self._accepted(dial_backend)  # noqa: E731
            if listener.family == socket.AF_UNIX:
                self._server = await loop.create_unix_server(
                    factory, sock=listener, ssl=tls, ssl_handshake_timeout=10.0
                )
            else:
                self._server = await loop.create_server(
                    factory, sock=listener, ssl=tls, ssl_handshake_timeout=10.0
                )

        _Loop.run(start())


class ClientRelay(_Relay):
    """Host side: a private Unix socket whose connections are carried over TLS by `dial`."""

    def __init__(self, dial: Dialer) -> None:
        super().__init__()
        self._dir = make_socket_dir()
        self.path = os.path.join(self._dir, "relay")
        assert len(os.fsencode(self.path)) < SUN_PATH_MAX

        async def start() -> None:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_unix_server(
                lambda: self._accepted(dial), path=self.path
            )

        _Loop.run(start())

    def close(self) -> None:
        super().close()
        remove_socket_dir(self._dir)


def tls_dialer(network: str, address: str, tls: ssl.SSLContext) -> Dialer:
    """Opens a TLS connection to a plugin's (or a broker server's) address."""

    async def dial(
        factory: Callable[[], asyncio.Protocol],
    ) -> tuple[asyncio.BaseTransport, Any]:
        loop = asyncio.get_running_loop()
        if network == "unix":
            connecting = loop.create_unix_connection(
                factory, address, ssl=tls, server_hostname="localhost"
            )
        else:
            host, port = split_host_port(address)
            connecting = loop.create_connection(
                factory, host, port, ssl=tls, server_hostname="localhost"
            )
        return await asyncio.wait_for(connecting, 10.0)

    return dial

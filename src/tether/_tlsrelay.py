"""TLS in front of grpcio, on Python's `ssl` module.

go-plugin's AutoMTLS certificates use ECDSA P-521, which grpcio's TLS (BoringSSL) cannot
verify or present; OpenSSL, behind Python's `ssl`, can. So with AutoMTLS, grpcio talks
plaintext to a private Unix socket and a relay carries the bytes over TLS:

- plugin side, `ServerRelay`: accepts TLS on the public address, forwards to grpcio's socket;
- host side, `ClientRelay`: grpcio connects to a private Unix socket, the relay dials the
  plugin over TLS.

The private sockets live in 0700 directories. All relays of a process share one event-loop
thread; asyncio's TLS runs over memory BIOs, so reads and writes of one connection never
touch an OpenSSL object from two threads at once.
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
from typing import Any, Final

from ._transport import SUN_PATH_MAX, make_socket_dir, remove_socket_dir

__all__ = ["ClientRelay", "ServerRelay"]

_CHUNK: Final = 256 * 1024


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
    def run(cls, coro: Awaitable[Any], timeout: float = 10.0) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, cls.get())  # type: ignore[arg-type]
        return future.result(timeout)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


async def _splice(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    try:
        await asyncio.gather(_pump(a[0], b[1]), _pump(b[0], a[1]))
    finally:
        for writer in (a[1], b[1]):
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class _Relay:
    def __init__(self) -> None:
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _track(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()

        with contextlib.suppress(Exception):
            _Loop.run(stop(), 5.0)


class ServerRelay(_Relay):
    """Plugin side: TLS on `listener` (an already bound, listening socket) → `backend`."""

    def __init__(self, listener: socket.socket, tls: ssl.SSLContext, backend: str) -> None:
        super().__init__()
        self._backend = backend
        self._tls = tls
        self.handshake_errors = 0

        async def start() -> None:
            if listener.family == socket.AF_UNIX:
                self._server = await asyncio.start_unix_server(
                    self._serve, sock=listener, ssl=tls, ssl_handshake_timeout=10.0
                )
            else:
                self._server = await asyncio.start_server(
                    self._serve, sock=listener, ssl=tls, ssl_handshake_timeout=10.0
                )

        _Loop.run(start())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            backend = await asyncio.open_unix_connection(self._backend)
        except OSError:
            writer.close()
            return
        self._track(_splice((reader, writer), backend))


class ClientRelay(_Relay):
    """Host side: a private Unix socket whose connections are carried over TLS to `connect`."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]],
    ) -> None:
        super().__init__()
        self._connect = connect
        self._dir = make_socket_dir()
        self.path = os.path.join(self._dir, "relay")
        assert len(os.fsencode(self.path)) < SUN_PATH_MAX

        async def start() -> None:
            self._server = await asyncio.start_unix_server(self._serve, path=self.path)

        _Loop.run(start())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            remote = await self._connect()
        except (TimeoutError, OSError, ssl.SSLError):
            writer.close()
            return
        self._track(_splice((reader, writer), remote))

    def close(self) -> None:
        super().close()
        remove_socket_dir(self._dir)


def tls_dialer(
    network: str, address: str, tls: ssl.SSLContext
) -> Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]:
    """A coroutine factory that opens a TLS connection to a plugin's address."""

    async def dial() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if network == "unix":
            return await asyncio.wait_for(
                asyncio.open_unix_connection(address, ssl=tls, server_hostname="localhost"),
                10.0,
            )
        host, _, port = address.rpartition(":")
        return await asyncio.wait_for(
            asyncio.open_connection(
                host.strip("[]") or "127.0.0.1", int(port), ssl=tls, server_hostname="localhost"
            ),
            10.0,
        )

    return dial

"""The asyncio driver of the native protocol, used by `AsyncClient`.

A `BufferedProtocol` with one reused receive buffer: stock `asyncio.Protocol` allocates a
fresh 256 KiB buffer per read, which costs an mmap/munmap per message.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, NoReturn

import msgspec

from . import _shm
from ._context import (
    TIMEOUT,
    UNSET,
    CallContext,
    effective_timeout,
    reset_current,
    set_current,
)
from ._dispatch import (
    ExportTable,
    cancelled_message,
    error_message,
    exception_from,
    resolve,
)
from ._endpoint import STREAM_WINDOW
from ._errors import (
    ArgumentError,
    CallTimeoutError,
    ConnectionClosedError,
    ProtocolError,
    TetherError,
)
from ._fdtransport import FdTransport
from ._interface import Interface, MethodSpec
from ._wire import (
    CANCEL,
    CONTROL_OBJECT,
    CREDIT,
    DEFAULT_MAX_FRAME,
    ERROR,
    LARGE_FRAME,
    RELEASE,
    REQUEST,
    RESPONSE,
    STREAM_END,
    STREAM_ITEM,
    Codec,
    FrameDecoder,
    ObjectRef,
    _pack_header,
    check_message,
)

__all__ = ["AsyncEndpoint", "AsyncStream"]

_BUFFER_SIZE: Final = 256 * 1024
_SHM_ASK_TIMEOUT: Final = 10.0

LostError = Callable[[BaseException | None], BaseException]


class _StreamState:
    __slots__ = ("done", "error", "event", "items")

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self.event = asyncio.Event()
        self.done = False
        self.error: BaseException | None = None


class _Task:
    __slots__ = ("credit", "credit_event", "ctx", "task")

    def __init__(self, ctx: CallContext) -> None:
        self.ctx = ctx
        self.task: asyncio.Task[None] | None = None
        self.credit = STREAM_WINDOW
        self.credit_event = asyncio.Event()


class AsyncEndpoint(asyncio.BufferedProtocol):
    """Both halves of the native protocol on an asyncio transport."""

    def __init__(
        self,
        *,
        name: str,
        exports: ExportTable,
        lost_error: LostError | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self.name = name
        self.exports = exports
        self._lost_error = lost_error
        self._codec = Codec(export=exports.export, max_frame=max_frame)
        self._decoder = FrameDecoder(max_frame)
        self._buffer = bytearray(_BUFFER_SIZE)
        self._view = memoryview(self._buffer)
        self._transport: asyncio.Transport | None = None
        self._peer_fds: bool | None = None  # None: not asked yet (see _ask_shm)
        self._pending: dict[int, asyncio.Future[Any] | _StreamState] = {}
        self._tasks: dict[int, _Task] = {}
        self._next_id = itertools.count(1).__next__
        self._failed: BaseException | None = None
        self._local_close = False
        self._loop = asyncio.get_running_loop()
        self._closed: asyncio.Future[None] = self._loop.create_future()

    # ----------------------------------------------------------------- asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        # Only the descriptor-carrying transport can take the shared-memory path.
        if isinstance(transport, FdTransport):
            self._codec.shm_ready = self._shm_ready

    def _shm_ready(self) -> bool:
        return self._peer_fds is True

    async def _ask_shm(self, message: list[Any], buffers: bool) -> None:
        """Ask the peer once, before the first large buffer, whether it takes descriptors."""
        if not buffers or self._peer_fds is not None or self._codec.shm_ready is None:
            return
        if not _shm.wanted(message):
            return
        try:
            answer = await self._roundtrip(
                CONTROL_OBJECT, _shm.CONTROL_METHOD, [], _shm.CONTROL_METHOD, _SHM_ASK_TIMEOUT
            )
        except ConnectionClosedError:
            raise
        except TetherError:
            answer = False  # a peer without shared memory support: stay inline
        if self._peer_fds is None:
            self._peer_fds = answer is True

    def fds_received(self, ancillary: list[tuple[int, int, bytes]], flags: int) -> None:
        """Queue descriptors that came with received data, for the frames that refer to them."""
        _shm.fds_from_ancillary(ancillary, flags, self._codec.fds_in)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        pending = self._pending
        raw_decode = self._codec._decoder.decode
        try:
            for payload in self._decoder.split(self._view[:nbytes]):
                # The answer to a plain call, the most common message, skips Codec.decode()
                # and _dispatch() (a Python call each): a RESPONSE is valid as soon as it is a
                # list of three with an integer id, which is all of check_message() for it.
                try:
                    message = raw_decode(payload)
                except ProtocolError:
                    raise
                except (msgspec.DecodeError, ValueError, TypeError, RecursionError) as exc:
                    # As in Codec.decode() (never decoded twice: the extension hook takes
                    # shared-memory descriptors).
                    raise ProtocolError(f"malformed message: {exc}") from None
                if (
                    type(message) is list
                    and len(message) == 3
                    and message[0] == RESPONSE
                    and type(message[0]) is int
                    and type(message[1]) is int
                ):
                    slot = pending.get(message[1])
                    if slot is not None and not isinstance(slot, _StreamState):
                        del pending[message[1]]
                        if not slot.done():
                            slot.set_result(message[2])
                        continue
                self._dispatch(check_message(message))
        except ProtocolError as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc)

    # ----------------------------------------------------------------- calling the peer

    def _write(self, message: list[Any]) -> None:
        if self._failed is not None:
            raise self._failed
        assert self._transport is not None
        self._transport.write(self._codec.encode(message))

    def _start(
        self,
        oid: int,
        method: str,
        args: list[Any],
        slot: Any,
        buffers: bool = False,
        kept: list[tuple[int, int]] | None = None,
    ) -> int:
        if self._failed is not None:
            raise self._failed
        cid = self._next_id()
        try:
            frame = self._codec.encode_parts([REQUEST, cid, oid, method, args], buffers, kept)
        except (TypeError, ValueError) as exc:
            raise ArgumentError(f"{method}(): arguments cannot be sent: {exc}") from None
        self._pending[cid] = slot
        self._send(frame)
        return cid

    def _send(self, frame: bytes | tuple[bytes, bytes] | _shm.FdFrame) -> None:
        transport = self._transport
        assert transport is not None
        if isinstance(frame, bytes):
            transport.write(frame)
        elif isinstance(frame, tuple):
            transport.writelines(frame)
        else:
            assert isinstance(transport, FdTransport)
            transport.send_fds(frame.data, frame.fds)

    async def _write_parts(self, message: list[Any], buffers: bool) -> None:
        """_write() for results and stream items, which may take the shared-memory path."""
        await self._ask_shm(message, buffers)
        if self._failed is not None:
            raise self._failed
        self._send(self._codec.encode_parts(message, buffers))

    async def call(
        self,
        oid: int,
        spec: MethodSpec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None = None,
    ) -> Any:
        wire_args = spec.check_call(args, kwargs)
        if spec.buffer_args:
            await self._ask_shm([REQUEST, 0, oid, spec.name, wire_args], True)
            value = await self._roundtrip(oid, spec.name, wire_args, spec.qualname, timeout, True)
        else:
            limit = TIMEOUT.get()
            if limit == UNSET:
                limit = timeout
            if limit is None:
                # _roundtrip() for scalar arguments without a deadline, inlined: the usual
                # call, where a function call and a try block cost ~1 µs of the ~10 spent.
                if self._failed is not None:
                    raise self._failed
                future = self._loop.create_future()
                cid = self._next_id()
                codec = self._codec
                try:
                    body = codec._encoder.encode([REQUEST, cid, oid, spec.name, wire_args])
                except (TypeError, ValueError) as exc:
                    raise ArgumentError(f"{spec.name}(): arguments cannot be sent: {exc}") from None
                size = len(body)
                if size > codec.max_frame:
                    raise ProtocolError(
                        f"frame of {size} bytes exceeds the limit of {codec.max_frame}"
                    )
                self._pending[cid] = future
                transport = self._transport
                assert transport is not None
                if size < LARGE_FRAME:
                    transport.write(_pack_header(size) + body)
                else:
                    transport.writelines((_pack_header(size), body))
                try:
                    value = await future
                except asyncio.CancelledError:
                    self._abandon(cid)
                    raise
            else:
                value = await self._roundtrip(oid, spec.name, wire_args, spec.qualname, limit)
        if type(value) is spec._result_scalar:
            return value  # check_result()'s fast path, inlined
        return spec.check_result(value, self._make_proxy)

    async def control_call(self, method: str, args: list[Any], timeout: float | None = None) -> Any:
        return await self._roundtrip(CONTROL_OBJECT, method, args, method, timeout)

    async def _roundtrip(
        self,
        oid: int,
        method: str,
        args: list[Any],
        what: str,
        timeout: float | None,
        buffers: bool = False,
    ) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # The memfds of large bytes/bytearray arguments, kept for the next call once this one
        # is answered (see _shm.Spares).
        kept: list[tuple[int, int]] | None = [] if buffers else None
        try:
            cid = self._start(oid, method, args, future, buffers, kept)
        except BaseException:
            if kept:
                self._codec.spares.settle(kept, False)
            raise
        limit = effective_timeout(timeout)
        try:
            if limit is None:
                return await future
            async with asyncio.timeout(limit):
                return await future
        except TimeoutError:
            self._abandon(cid)
            raise CallTimeoutError(
                f"{what}() on plugin {self.name!r} did not complete in time; the plugin was "
                "asked to cancel it"
            ) from None
        except asyncio.CancelledError:
            self._abandon(cid)
            raise
        finally:
            if kept:
                answered = future.done() and not future.cancelled() and self._failed is None
                self._codec.spares.settle(kept, answered)

    def _abandon(self, cid: int) -> None:
        if self._pending.pop(cid, None) is not None and self._failed is None:
            self._write_quiet([CANCEL, cid])

    def _write_quiet(self, message: list[Any]) -> None:
        try:
            self._write(message)
        except TetherError:
            pass

    def call_stream(
        self,
        oid: int,
        spec: MethodSpec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None = None,
    ) -> AsyncStream:
        wire_args = spec.check_args(spec.bind(args, kwargs))
        state = _StreamState()
        cid = self._start(oid, spec.name, wire_args, state)
        limit = effective_timeout(timeout)
        deadline = None if limit is None else asyncio.get_running_loop().time() + limit
        return AsyncStream(self, cid, state, spec, deadline)

    # ----------------------------------------------------------------- receiving

    def _dispatch(self, message: list[Any]) -> None:
        kind, cid = message[0], message[1]
        if kind == REQUEST:
            self._serve(message)
            return
        if kind == CANCEL:
            entry = self._tasks.get(cid)
            if entry is not None:
                entry.ctx.cancel()
                if entry.task is not None:
                    entry.task.cancel()
            return
        if kind == CREDIT:
            entry = self._tasks.get(cid)
            if entry is not None and type(message[2]) is int:
                entry.credit += message[2]
                entry.credit_event.set()
            return
        if kind == RELEASE:
            self.exports.release(cid)
            return
        slot = self._pending.get(cid)
        if slot is None:
            return
        if isinstance(slot, _StreamState):
            if kind == STREAM_ITEM:
                slot.items.append(message[2])
            else:
                del self._pending[cid]
                slot.done = True
                if kind == ERROR:
                    slot.error = exception_from(message)
            slot.event.set()
            return
        del self._pending[cid]
        if slot.done():
            return
        if kind == RESPONSE:
            slot.set_result(message[2])
        elif kind == ERROR:
            slot.set_exception(exception_from(message))

    def _serve(self, message: list[Any]) -> None:
        _, cid, oid, method, args = message
        if oid == CONTROL_OBJECT:
            if method == "ping":
                self._write_quiet([RESPONSE, cid, True])
            elif method == _shm.CONTROL_METHOD:
                # Read with recvmsg() from now on, before the answer lets descriptors come.
                transport = self._transport
                reads = isinstance(transport, FdTransport)
                if isinstance(transport, FdTransport):
                    transport.read_fds()
                self._write_quiet([RESPONSE, cid, reads])
            else:
                self._write_quiet(
                    [ERROR, cid, 3, "tether.UnknownMethod", f"no control method {method!r}", ""]
                )
            return
        found = resolve(self.exports, oid, method)
        if isinstance(found, list):
            self._write_quiet([ERROR, cid, *found])
            return
        func, spec, is_async = found
        entry = _Task(CallContext(cid, spec.qualname))
        self._tasks[cid] = entry
        entry.task = asyncio.get_running_loop().create_task(
            self._run(cid, func, spec, is_async, args, entry)
        )

    async def _run(
        self,
        cid: int,
        func: Callable[..., Any],
        spec: MethodSpec,
        is_async: bool,
        args: list[Any],
        entry: _Task,
    ) -> None:
        token = set_current(entry.ctx)
        try:
            checked = spec.check_args(args, self._make_proxy)
            if is_async:
                result = func(*checked)
            else:
                # A blocking callback must not stall the event loop.
                result = await asyncio.to_thread(func, *checked)
            if spec.stream:
                await self._send_stream(cid, spec, result, entry)
                return
            if inspect.isawaitable(result):
                result = await result
            await self._write_parts(
                [RESPONSE, cid, spec.prepare_result(result)], spec.buffer_result
            )
        except asyncio.CancelledError:
            self._write_quiet(cancelled_message(cid))
        except Exception as exc:
            self._write_quiet(error_message(cid, exc))
        finally:
            reset_current(token)
            self._tasks.pop(cid, None)

    async def _send_stream(self, cid: int, spec: MethodSpec, items: Any, entry: _Task) -> None:
        async for item in _aiter(items):
            while entry.credit <= 0:
                entry.credit_event.clear()
                await entry.credit_event.wait()
            entry.credit -= 1
            await self._write_parts(
                [STREAM_ITEM, cid, spec.prepare_result(item)], spec.buffer_result
            )
        self._write([STREAM_END, cid])

    # ----------------------------------------------------------------- references

    def _make_proxy(self, ref: ObjectRef, iface: type[Interface]) -> Any:
        from ._proxy import async_proxy

        proxy = async_proxy(self, ref.object_id, iface, None)
        weakref.finalize(proxy, self._release, ref.object_id)
        return proxy

    def _release(self, oid: int) -> None:
        if self._failed is None and self._transport is not None:
            try:
                self._transport.get_extra_info("socket")
                loop = self._closed.get_loop()
                loop.call_soon_threadsafe(self._write_quiet, [RELEASE, oid])
            except RuntimeError:
                pass

    # ----------------------------------------------------------------- closing

    @property
    def closed(self) -> bool:
        return self._failed is not None

    def _fail(self, cause: BaseException | None) -> None:
        if self._failed is not None:
            return
        if self._local_close or self._lost_error is None:
            if isinstance(cause, ProtocolError):
                error: BaseException = cause
            else:
                error = ConnectionClosedError(f"connection to plugin {self.name!r} is closed")
        else:
            error = self._lost_error(cause)
        self._failed = error
        pending, self._pending = self._pending, {}
        for slot in pending.values():
            if isinstance(slot, _StreamState):
                slot.error = error
                slot.done = True
                slot.event.set()
            elif not slot.done():
                slot.set_exception(error)
        for entry in list(self._tasks.values()):
            if entry.task is not None:
                entry.task.cancel()
        if self._transport is not None:
            self._transport.abort()
        self._codec.close_fds()
        if not self._closed.done():
            self._closed.set_result(None)

    async def aclose(self) -> None:
        self._local_close = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        else:
            self._fail(None)
        await asyncio.shield(self._closed)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)


async def _aiter(items: Any) -> AsyncIterator[Any]:
    if hasattr(items, "__aiter__"):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class AsyncStream(AsyncIterator[Any]):
    """The host side of a streaming call: `async for` over it; `aclose()` cancels the rest."""

    def __init__(
        self,
        endpoint: AsyncEndpoint,
        cid: int,
        state: _StreamState,
        spec: MethodSpec,
        deadline: float | None,
    ) -> None:
        self._ep = endpoint
        self._cid = cid
        self._state = state
        self._spec = spec
        self._deadline = deadline  # event-loop time by which the whole stream must end
        self._consumed = 0
        self._finished = False

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        state = self._state
        while True:
            if self._finished:
                raise StopAsyncIteration
            if self._deadline is not None and asyncio.get_running_loop().time() >= self._deadline:
                await self._timed_out()
            if state.items:
                item = state.items.popleft()
                self._consumed += 1
                if self._consumed >= STREAM_WINDOW // 2:
                    self._ep._write_quiet([CREDIT, self._cid, self._consumed])
                    self._consumed = 0
                return self._spec.check_result(item, self._ep._make_proxy)
            if state.done:
                self._finished = True
                if state.error is not None:
                    raise state.error
                raise StopAsyncIteration
            state.event.clear()
            try:
                async with asyncio.timeout_at(self._deadline):
                    await state.event.wait()
            except TimeoutError:
                await self._timed_out()
            except asyncio.CancelledError:
                await self.aclose()
                raise

    async def _timed_out(self) -> NoReturn:
        await self.aclose()
        raise CallTimeoutError(
            f"{self._spec.qualname}() stream on plugin {self._ep.name!r} did not "
            "finish in time; the plugin was asked to cancel it"
        )

    async def aclose(self) -> None:
        """Stop the stream early; the plugin is told to cancel its generator."""
        if not self._finished:
            self._finished = True
            self._state.items.clear()
            self._ep._abandon(self._cid)

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

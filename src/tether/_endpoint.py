"""The blocking driver of the native protocol: one connected socket, shared by many threads.

There is no dedicated reader thread. Threads that wait (callers waiting for a response,
workers waiting for a request) take turns as the *leader*, the one thread reading the socket;
it delivers what it reads to the others and hands the role on when it is done. A sequential
call is therefore sent and received by the calling thread itself, with no thread hop.

A request read off the socket is run by the thread that read it, after it has handed the
reading role to another thread (spawning one if nobody waits), so calls never queue behind a
slow one and cancellations keep arriving while an implementation runs.
"""

from __future__ import annotations

import array
import functools
import inspect
import itertools
import logging
import os
import select
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol

import msgspec

from . import _shm
from ._context import (
    CURRENT,
    TIMEOUT,
    UNSET,
    CallContext,
    effective_timeout,
    reset_current,
    set_current,
)
from ._dispatch import (
    AfterReply,
    ExportTable,
    cancelled_message,
    error_message,
    exception_from,
    resolve,
)
from ._env import ENV_SPEEDUPS, ENV_SPIN_US
from ._errors import (
    ArgumentError,
    CallTimeoutError,
    ConnectionClosedError,
    ProtocolError,
    TetherError,
)
from ._interface import Interface, MethodSpec
from ._wire import (
    _ARITY,
    _KINDS,
    CANCEL,
    CONTROL_OBJECT,
    CREDIT,
    DEFAULT_MAX_FRAME,
    ERROR,
    HEADER,
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

if TYPE_CHECKING:
    pass

__all__ = ["STREAM_WINDOW", "SyncEndpoint"]


STREAM_WINDOW: Final = 64  # stream items a plugin may send ahead of the consumer
_RECV_SIZE: Final = 256 * 1024
_SHM_ASK_TIMEOUT: Final = 10.0  # for the peer's answer to the shared-memory question
_MAX_WORKERS: Final = 256
_DEFAULT_SPIN_US: Final = 50
_SPIN_BACKOFF_MAX: Final = 5  # at most 2**5 - 1 waits without a poll after misses in a row
_log = logging.getLogger("tether")
_TEMP_WORKER_POLL: Final = 0.2  # how often a host-side helper reader checks if it is needed
# At most this many replies wait for a later one of the same read: sending all of a read's
# replies at once (16 callers: 16) left the host idle until the last request had run, which
# halved the throughput; groups of up to 4 raised it by ~15% over one send per reply.
_CORK_MAX: Final = 3
# An inline request running longer than _WATCHDOG_MIN gets the reading role taken from it;
# the watchdog backs off to _WATCHDOG_MAX between checks while nothing runs inline.
_WATCHDOG_MIN: Final = 0.001
_WATCHDOG_MAX: Final = 0.02
# Results of these types are never awaitable: skips inspect.isawaitable() (~1 µs here).
_NEVER_AWAITABLE: Final = frozenset({int, float, str, bytes, bool, type(None), list, dict, tuple})

# What _lead() returns when it ran a request inline and lost the reading role meanwhile.
_HANDED_ON: Final[list[Any]] = []

ControlHandler = Callable[["SyncEndpoint", str, list[Any]], Any]
LostError = Callable[[BaseException | None], BaseException]


_envelope: msgspec.msgpack.Decoder[Any] | None = None


def _request_envelope() -> msgspec.msgpack.Decoder[Any]:
    """A decoder of a request that leaves its arguments undecoded (built on first use)."""
    global _envelope
    if _envelope is None:
        _envelope = msgspec.msgpack.Decoder(tuple[int, int, int, str, msgspec.Raw])
    return _envelope


class _Waiter:
    """One thread waiting on the endpoint: for a response, stream items, or a request.

    Class-level defaults and no __init__: one is made per call, and this halves its cost.
    """

    # Created (held) the first time the thread has to sleep: most sequential calls never
    # do, and a lock per call is measurable.
    lock: threading.Lock | None = None
    done = False
    value: Any = None
    error: BaseException | None = None
    items: deque[Any] | None = None
    lead = False
    waiting = False


def _wake(w: _Waiter) -> None:
    lock = w.lock
    assert lock is not None  # a waiter is only woken while it sleeps on its lock
    lock.release()


class _Inflight:
    """A request from the peer that this side is running.

    Class-level defaults and no __init__, as for _Waiter: one is made per request.
    """

    ctx: CallContext  # set right after creation
    cid = 0
    credit = STREAM_WINDOW
    cond: threading.Condition | None = None
    on_credit: Callable[[], None] | None = None  # wakes an async generator's sender


class SyncEndpoint:
    """Both halves of the native protocol over one blocking socket."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        name: str,
        exports: ExportTable,
        control: ControlHandler,
        lost_error: LostError | None = None,
        inline: bool = False,
        max_frame: int = DEFAULT_MAX_FRAME,
        initial: bytes = b"",
    ) -> None:
        """`initial`: bytes already read from `sock` (by _firstcall), read before it."""
        sock.setblocking(True)
        self.name = name
        self.exports = exports
        self._sock = sock
        self._control = control
        self._lost_error = lost_error or _default_lost_error
        self._inline = inline
        self._inline_owner: int | None = None
        # The request the owner runs, registered in _inflight only if the role is taken.
        self._inline_entry: _Inflight | None = None
        self._inline_since = 0.0
        self._watchdog_started = False
        # Shared memory: whether the peer was asked and agreed to receive descriptors (None:
        # not asked yet), and whether this side reads with recvmsg() (the peer asked).
        self._peer_fds: bool | None = None
        self._reads_fds = False
        self._codec = Codec(
            export=exports.export,
            max_frame=max_frame,
            shm_ready=self._shm_ready if _shm.supported(sock) else None,
        )
        self._decoder = FrameDecoder(max_frame)
        if initial:
            self._decoder.feed(initial)
        # Payloads of one read that held several frames: slices of the receive buffer, all
        # consumed (by whichever thread reads) before the buffer is read into again.
        self._payloads: deque[memoryview | bytes] = deque()
        # One receive buffer, reused: recv(n) would allocate (and for large n, mmap) n bytes
        # on every read.
        self._rbuf = bytearray(_RECV_SIZE)
        self._rview = memoryview(self._rbuf)
        self._send_lock = threading.Lock()
        # Replies held back (send lock held to touch it) while more requests of the same
        # read wait to run: they go out together in one send (see _reply).
        self._corked: list[bytes] = []
        # Requests waiting for the send lock's holder to send them (see _drain_outbox).
        self._outbox: list[bytes] = []
        self._mu = threading.Lock()
        self._leading = False
        self._idle: dict[_Waiter, None] = {}
        self._pending: dict[int, _Waiter] = {}
        self._inflight: dict[int, _Inflight] = {}
        self._executing = 0
        self._workers = 0
        self._next_id = itertools.count(1).__next__
        self._failed: BaseException | None = None
        self._closing = False
        self._closed_event = threading.Event()
        self._releases: list[int] = []
        self._poller: select.poll | None = None  # the socket's, for _readable and _spin
        self._spin_skip = 0  # waits left that sleep at once, after a poll that came to nothing
        self._spin_misses = 0  # polls in a row that came to nothing
        # Only plain sockets: a TLS socket may hold decrypted bytes that poll() cannot see.
        self._spin_ns = spin_budget_ns() if type(sock) is socket.socket else 0
        # The C extension's decoders work on what was read, from any socket; its socket
        # calls only on plain sockets (a TLS socket's own methods encrypt and decrypt).
        self._speedups = load_speedups()
        speedups = self._speedups if type(sock) is socket.socket else None
        self._sendall: Callable[[bytes | memoryview], None]
        self._recv_into: Callable[[bytearray], int]
        if speedups is None:
            self._sendall, self._recv_into = sock.sendall, sock.recv_into
            self._spin_recv = None
        else:
            self._sendall = functools.partial(speedups.sendall, sock)
            self._recv_into = functools.partial(speedups.recv_into, sock)
            self._spin_recv = speedups.spin_recv_into if self._spin_ns else None
        self._aio: _AsyncRunner | None = None
        self._local_close = False

    # ----------------------------------------------------------------- calling the peer

    def call(
        self,
        oid: int,
        spec: MethodSpec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None = None,
    ) -> Any:
        wire_args = spec.check_call(args, kwargs)
        # Inlined effective_timeout() and _deadline(): a function call costs ~0.4 µs here.
        limit = TIMEOUT.get()
        if limit == UNSET:
            limit = timeout
        w = _Waiter()
        # The memfds of large bytes/bytearray arguments, kept for the next call once this one
        # is answered (see _shm.Spares).
        kept: list[tuple[int, int]] | None = [] if spec.buffer_args else None
        try:
            cid, lead = self._request(oid, spec.name, wire_args, w, True, spec.buffer_args, kept)
            if limit is None:
                if lead:
                    # _wait()'s first round, inlined for the usual sequential call: this thread
                    # reads its own answer, then steps down (a function call costs ~0.4 µs here).
                    request = None
                    try:
                        request = self._lead(w, None)
                    finally:
                        if request is None or not self._inline:
                            with self._mu:
                                if self._idle or request is not None:
                                    self._pass_lead_locked(spawn=request is not None)
                                else:
                                    self._leading = False
                    if request is not None:
                        # A request (a callback) came first: run it, then wait as _wait() does.
                        lead = request is not _HANDED_ON and self._execute(request)
                        request = None  # not kept alive while this thread waits
                        self._wait(w, None, lead)
                    elif not (w.done or w.items or self._failed is not None):
                        self._wait(w, None)
                else:
                    self._wait(w, None)  # without a deadline, all _await() does
            else:
                self._await(cid, w, spec.qualname, time.monotonic() + limit, lead)
        finally:
            if kept:
                self._codec.spares.settle(kept, w.done and self._failed is None)
        if w.error is not None:
            raise w.error
        value = w.value
        if type(value) is spec._result_scalar:
            return value  # check_result()'s fast path, inlined
        return spec.check_result(value, self._make_proxy)

    def call_stream(
        self,
        oid: int,
        spec: MethodSpec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None = None,
    ) -> Stream:
        wire_args = spec.check_args(spec.bind(args, kwargs))
        w = _Waiter()
        w.items = deque()
        cid, _ = self._request(
            oid, spec.name, wire_args, w, may_lead=False, buffers=spec.buffer_args
        )
        return Stream(self, cid, w, spec, _deadline(timeout))

    def control_call(self, method: str, args: list[Any], timeout: float | None = None) -> Any:
        w = _Waiter()
        cid, lead = self._request(CONTROL_OBJECT, method, args, w)
        self._await(cid, w, method, _deadline(timeout), lead)
        if w.error is not None:
            raise w.error
        return w.value

    def _request(
        self,
        oid: int,
        method: str,
        args: list[Any] | tuple[Any, ...],
        w: _Waiter,
        may_lead: bool = True,
        buffers: bool = False,
        kept: list[tuple[int, int]] | None = None,
    ) -> tuple[int, bool]:
        """Send a REQUEST; also take the reading role if it is free (one mutex round)."""
        cid = self._next_id()
        codec = self._codec
        frame: bytes | tuple[bytes, bytes] | _shm.FdFrame
        try:
            if buffers and codec.shm_ready is not None:
                frame = codec.encode_parts([REQUEST, cid, oid, method, args], True, kept)
            else:
                # encode_parts() without buffers, inlined: a call costs ~0.4 µs here.
                body = codec._encoder.encode([REQUEST, cid, oid, method, args])
                size = len(body)
                if size > codec.max_frame:
                    raise ProtocolError(
                        f"frame of {size} bytes exceeds the limit of {codec.max_frame}"
                    )
                frame = (
                    _pack_header(size) + body if size < LARGE_FRAME else (_pack_header(size), body)
                )
        except (TypeError, ValueError) as exc:
            raise ArgumentError(f"{method}(): arguments cannot be sent: {exc}") from None
        lead = False
        with self._mu:
            if self._failed is not None:
                if type(frame) is _shm.FdFrame:
                    _shm.close_fds(frame.fds)
                raise self._failed
            self._pending[cid] = w
            if may_lead and not self._leading:
                self._leading = lead = True
        lock = self._send_lock
        try:
            if type(frame) is bytes and not self._releases:
                if not lock.acquire(False):
                    # Queued for the thread that holds the send lock instead of waiting for
                    # it: with many calling threads one send carries several requests, and
                    # the others go on to wait for their answers without sleeping here.
                    self._outbox.append(frame)
                    self._drain_outbox()
                    return cid, lead
                try:
                    self._sendall(frame)
                finally:
                    lock.release()
            else:
                self._send(frame)  # raises the connection's failure if it fails
            if self._outbox:
                self._drain_outbox()
        except BaseException as exc:
            if type(frame) is _shm.FdFrame:
                _shm.close_fds(frame.fds)  # empties the list: never closed twice
            if isinstance(exc, OSError):
                self._fail(exc)
            if lead:
                self._step_down(False)
            if isinstance(exc, OSError):
                # Another thread may be failing the connection right now (its lost_error
                # waits for the process): wait until the error is recorded.
                self._closed_event.wait()
                assert self._failed is not None
                raise self._failed from None
            raise
        return cid, lead

    def _await(
        self, cid: int, w: _Waiter, what: str, deadline: float | None, lead: bool = False
    ) -> None:
        if self._wait(w, deadline, lead):
            return
        # Timed out: tell the plugin to stop, and never deliver a late answer.
        with self._mu:
            self._pending.pop(cid, None)
            done = w.done
        if done:
            return
        self._send_quiet([CANCEL, cid])
        raise CallTimeoutError(
            f"{what}() on plugin {self.name!r} did not complete in time; the plugin was "
            "asked to cancel it"
        )

    def _drain_outbox(self) -> None:
        """Send the requests queued in the outbox unless a thread holding the send lock
        will: every holder looks again after releasing it, so none is left behind."""
        outbox, lock = self._outbox, self._send_lock
        while outbox and lock.acquire(False):
            try:
                while outbox:
                    count = len(outbox)
                    data = outbox[0] if count == 1 else b"".join(outbox[:count])
                    del outbox[:count]
                    self._sendall(data)
            except OSError as exc:
                del outbox[:]  # their callers learn of the failure as they wait
                lock.release()
                self._fail(exc)
                return
            lock.release()

    def _send(self, frame: bytes | tuple[bytes, bytes] | _shm.FdFrame) -> None:
        releases = self._releases
        try:
            with self._send_lock:
                if releases:
                    self._flush_releases()
                if self._corked:
                    self._flush_corked_locked()
                if isinstance(frame, bytes):
                    self._sendall(frame)
                elif isinstance(frame, tuple):
                    for part in frame:
                        self._sendall(part)
                else:
                    self._send_fd_frame(frame)
            if self._outbox:
                self._drain_outbox()
        except OSError as exc:
            if type(frame) is _shm.FdFrame:
                _shm.close_fds(frame.fds)
            self._fail(exc)
            self._closed_event.wait()  # as in _request
            assert self._failed is not None
            raise self._failed from None

    def _shm_ready(self) -> bool:
        """Whether the peer takes descriptors; asks it the first time (one round trip)."""
        ready = self._peer_fds
        if ready is None:
            # Two threads may ask at once: harmless, the peer answers both alike.
            try:
                ready = self.control_call(_shm.CONTROL_METHOD, [], timeout=_SHM_ASK_TIMEOUT) is True
            except ConnectionClosedError:
                raise
            except TetherError:
                ready = False  # a peer without shared memory support: stay inline
            self._peer_fds = ready
        return ready

    def _send_fd_frame(self, frame: _shm.FdFrame) -> None:
        """Send a frame with its shared-memory descriptors (send lock held), then close them."""
        try:
            data = frame.data
            sent = self._sock.sendmsg(
                [data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", frame.fds))]
            )
            if sent < len(data):
                self._sendall(memoryview(data)[sent:])
        finally:
            _shm.close_fds(frame.fds)

    def _recv_with_fds(self, buf: bytearray) -> int:
        """recv_into() that also queues descriptors the peer sent along (Unix sockets)."""
        size, ancillary, flags, _ = self._sock.recvmsg_into([buf], _shm.ANC_SIZE, _shm.RECV_FLAGS)
        if ancillary or flags & _shm.MSG_CTRUNC:
            _shm.fds_from_ancillary(ancillary, flags, self._codec.fds_in)
        return size

    def _send_quiet(self, message: list[Any]) -> None:
        try:
            self._send(self._codec.encode(message))
        except TetherError:
            pass

    def _flush_corked_locked(self) -> None:
        """Send the replies held back (send lock held)."""
        corked = self._corked
        data = corked[0] if len(corked) == 1 else b"".join(corked)
        corked.clear()
        self._sendall(data)

    def _flush_corked(self) -> None:
        """Send the replies held back, if any: before this thread sleeps or hands on."""
        try:
            with self._send_lock:
                if self._corked:
                    self._flush_corked_locked()
            if self._outbox:
                self._drain_outbox()
        except OSError as exc:
            self._fail(exc)

    def _flush_releases(self) -> None:
        # Called with the send lock held; RELEASE messages come from proxy finalizers, which
        # may run in any thread at any time, so they are queued instead of sent there.
        pending, self._releases[:] = list(self._releases), []
        for oid in pending:
            self._sendall(self._codec.encode([RELEASE, oid]))

    # ----------------------------------------------------------------- waiting and reading

    def _wait(self, w: _Waiter, deadline: float | None, lead: bool = False) -> bool:
        """Wait until `w` is signalled (True) or the deadline passes (False).

        `lead` says the calling thread already holds the reading role (a fresh worker).
        """
        mu = self._mu
        nested = False  # called from inside an inline request this thread runs
        while True:
            if not lead:
                with mu:
                    if w.done or w.items or self._failed is not None:
                        return True
                    if not self._leading:
                        self._leading = lead = True
                    elif self._inline_owner == threading.get_ident():
                        # A call made from inside an inline request: this thread still
                        # holds the reading role, so it keeps reading.
                        self._end_inline_locked()
                        lead = nested = True
                    else:
                        if w.lock is None:
                            w.lock = threading.Lock()
                            w.lock.acquire()
                        w.waiting = True
                        self._idle[w] = None
            if lead:
                lead = False
                request = None
                try:
                    request = self._lead(w, deadline)
                finally:
                    if request is None or not self._inline:
                        # Inlined _step_down(); the common case is that nobody waits.
                        with mu:
                            if self._idle or request is not None:
                                self._pass_lead_locked(spawn=request is not None)
                            elif nested:
                                # Back to the inline request: it owns the role again, so
                                # the watchdog hands it on if the request goes on long
                                # (else nobody would read, say, a CANCEL for it).
                                self._inline_since = time.monotonic()
                                self._inline_owner = threading.get_ident()
                            else:
                                self._leading = False
                if request is not None:
                    lead = request is not _HANDED_ON and self._execute(request)
                    # A thread may now sleep for long: it must not keep the request's
                    # arguments (say a 64 MiB buffer or its mapping) alive meanwhile.
                    request = None
                    continue
                if w.done or w.items or self._failed is not None:
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                continue
            lock = w.lock
            assert lock is not None
            if deadline is None:
                lock.acquire()
            elif not lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
                with mu:
                    if w.waiting:
                        w.waiting = False
                        del self._idle[w]
                        return bool(w.done or w.items)
                # Woken at the same moment the wait timed out: take the wake-up.
                lock.acquire()
            if w.lead:
                w.lead = False
                lead = True
            elif w.done or w.items:
                return True

    def _ensure_watchdog(self) -> None:
        if self._watchdog_started:
            return
        self._watchdog_started = True
        threading.Thread(
            target=self._watchdog, name=f"tether-{self.name}-watchdog", daemon=True
        ).start()

    def _watchdog(self) -> None:
        """Hand the reading role on when an inline request runs longer than a moment."""
        interval = _WATCHDOG_MIN
        while self._failed is None:
            time.sleep(interval)
            with self._mu:
                owner, since = self._inline_owner, self._inline_since
                if owner is None:
                    interval = min(interval * 2, _WATCHDOG_MAX)
                    continue
                interval = _WATCHDOG_MIN
                if time.monotonic() - since < _WATCHDOG_MIN:
                    continue
                self._end_inline_locked()
                self._pass_lead_locked(spawn=True)
            # Replies held back for the requests read with this one must not wait for it.
            self._flush_corked()

    def _end_inline_locked(self) -> None:
        """The inline request's thread stops reading while it runs (mutex held)."""
        self._inline_owner = None
        # Someone else reads from now on: CANCEL and CREDIT for it must find it.
        self._register_inline_locked()

    def _register_inline_locked(self) -> None:
        """Register the inline request in _inflight, if it is not yet (mutex held)."""
        entry = self._inline_entry
        if entry is not None:
            self._inline_entry = None
            self._inflight[entry.cid] = entry
            self._executing += 1

    def _step_down(self, read_request: bool) -> None:
        with self._mu:
            self._pass_lead_locked(spawn=read_request)

    def _pass_lead_locked(self, spawn: bool) -> None:
        """Give the reading role to a waiting thread, or a new worker (mutex held)."""
        if self._idle:
            nxt = next(iter(self._idle))
            del self._idle[nxt]
            nxt.waiting = False
            nxt.lead = True
            _wake(nxt)
            return
        if spawn and self._failed is None and self._workers < _MAX_WORKERS:
            self._workers += 1
            self._start_worker()
            return
        self._leading = False

    def _lead(self, w: _Waiter, deadline: float | None) -> list[Any] | None:
        """Read and deliver messages until `w` is signalled, time runs out or a request comes."""
        decoder, codec, pending = self._decoder, self._codec, self._pending
        rbuf, rview = self._rbuf, self._rview
        sock, rbufs = self._sock, [rbuf]
        recv_into = self._recv_into
        # _recv_with_fds(), inlined below while `reads_fds`: a call costs ~0.4 µs here.
        reads_fds = self._reads_fds
        decode = codec._decoder.decode
        spin_ns, spin_recv = self._spin_ns, self._spin_recv
        payloads = self._payloads
        payload: bytes | bytearray | memoryview | None
        while not (w.done or w.items):
            if payloads:
                payload = payloads.popleft()
                buffered = True
            else:
                # decoder.buffered without the property call: the decoder empties its buffer
                # whenever all of it is consumed, so a non-empty buffer means bytes wait.
                buffered = bool(decoder._buf)
                payload = decoder.next_payload() if buffered else None
            if payload is None:
                if self._corked:
                    self._flush_corked()  # before this thread may sleep
                if deadline is not None and not self._readable(deadline):
                    return None
                size = -1
                if spin_ns and deadline is None and len(pending) <= 1 and not self._executing:
                    if self._spin_skip:
                        self._spin_skip -= 1
                    elif spin_recv is not None and not reads_fds:
                        # The poll is the read (C): one system call sees the bytes and takes
                        # them, where poll() and then recv_into() take two and more Python.
                        try:
                            size = spin_recv(sock, rbuf, spin_ns)
                        except OSError as exc:
                            self._fail(exc)
                            return None
                        if size < 0:
                            self._spin_missed()
                        else:
                            self._spin_misses = 0
                    else:
                        self._spin(spin_ns)
                try:
                    if size >= 0:
                        pass  # read while polling
                    elif reads_fds:
                        size, ancillary, flags, _ = sock.recvmsg_into(
                            rbufs, _shm.ANC_SIZE, _shm.RECV_FLAGS
                        )
                        if ancillary or flags & _shm.MSG_CTRUNC:
                            _shm.fds_from_ancillary(ancillary, flags, codec.fds_in)
                    else:
                        size = recv_into(rbuf)
                except (OSError, ProtocolError) as exc:
                    self._fail(exc)
                    return None
                if not size:
                    self._fail(None)
                    return None
                try:
                    if (
                        not buffered
                        and size >= 4
                        and HEADER.unpack_from(rbuf)[0] + 4 == size
                        and size - 4 <= codec.max_frame
                    ):
                        # The usual case: exactly one whole frame arrived; decode it in
                        # place instead of copying it through the decoder's buffer.
                        payload = rview[4:size]
                    elif not buffered:
                        # Several frames (pipelined calls): decoded in place, in turn.
                        got = decoder.split(rview[:size])
                        if got:
                            payload = got[0]
                            if len(got) > 1:
                                payloads.extend(got[1:])
                    else:
                        decoder.feed(rview[:size])
                        payload = decoder.next_payload()
                    if payload is None:
                        rest = decoder.start_large()
                        if rest is not None:
                            payload = self._recv_large(rest, deadline)
                            if payload is None:
                                return None
                except ProtocolError as exc:
                    self._fail(exc)
                    return None
                if payload is None:
                    continue
            # codec.decode(), inlined: a call costs ~0.4 µs here.
            try:
                if len(payload) < LARGE_FRAME or (typed := self._typed_request(payload)) is None:
                    message: list[Any] = decode(payload)
                    if not (
                        type(message) is list
                        and message
                        and type(kind := message[0]) is int
                        and 0 <= kind < _KINDS
                        and len(message) == _ARITY[kind]
                        and type(message[1]) is int
                        and (
                            kind != REQUEST
                            or (
                                type(message[2]) is int
                                and type(message[3]) is str
                                and type(message[4]) is list
                            )
                        )
                    ):
                        check_message(message)  # raises, saying what is wrong
                else:
                    message, kind = typed, REQUEST
            except ProtocolError as exc:
                self._fail(exc)
                return None
            except (msgspec.DecodeError, ValueError, TypeError, RecursionError) as exc:
                # As in Codec.decode(); RecursionError: deeply nested arrays from a hostile peer.
                self._fail(ProtocolError(f"malformed message: {exc}"))
                return None
            if kind == REQUEST:
                if message[2] == CONTROL_OBJECT and message[3] == _shm.CONTROL_METHOD:
                    # Switch to recvmsg() here, in the reading thread, before the answer
                    # lets the peer send descriptors.
                    self._reads_fds = reads_fds = self._codec.shm_ready is not None
                    self._send_quiet([RESPONSE, message[1], self._reads_fds])
                    continue
                if self._inline:
                    if CURRENT.get() is not None:
                        # This thread is inside a request, reading for a call it made. Run
                        # here, the new request would sit on top of that one, which could
                        # not go on before it ends (a deadlock if it waits for the first).
                        threading.Thread(
                            target=self._execute,
                            args=(message, True),
                            name=f"tether-{self.name}-request",
                            daemon=True,
                        ).start()
                        continue
                    # Run it here, still reading afterwards: returning it to _wait() to be
                    # run and coming back costs a call and this loop's set-up per request.
                    # Its reply may wait for those of the requests read with it (one send).
                    if self._execute(message, False, bool(payloads)):
                        reads_fds = self._reads_fds  # a nested call may have read the switch
                        continue
                    return _HANDED_ON
                return message
            if kind <= ERROR and pending.get(message[1]) is w:
                # Our own answer: only this thread looks at `w`, so no mutex is needed.
                pending.pop(message[1], None)
                if kind == RESPONSE:
                    w.value = message[2]
                else:
                    w.error = exception_from(message)
                w.done = True
                continue
            self._deliver(message)
        return None

    def _typed_request(self, payload: bytes | bytearray | memoryview) -> list[Any] | None:
        """A large request with its arguments decoded straight into their types, or None.

        None leaves the payload to the usual decode and check_args(), which also word any
        complaint: so does anything unusual here (not a request of a known method with
        plain-data parameters, or arguments that do not fit its types). The arguments come
        as a tuple, which only this path makes: _execute() then skips check_args().
        """
        if payload[0] != 0x95 or payload[1] != REQUEST:  # an array of 5 starting with kind 0
            return None
        speedups = self._speedups
        raw: msgspec.Raw | memoryview
        head = None if speedups is None else speedups.request_head(payload)
        if head is not None:
            # The ids and name read in C, the arguments not at all (msgspec would walk them
            # all to find their end); the decode below checks that they end the payload.
            cid, oid, method, start = head
            raw = memoryview(payload)[start:]
        else:
            try:
                _, cid, oid, method, raw = _request_envelope().decode(payload)
            except (msgspec.DecodeError, ValueError, TypeError, RecursionError):
                return None
        found = resolve(self.exports, oid, method)
        if type(found) is not tuple:
            return None
        spec = found[1]
        if spec.float_kinds is not None and speedups is not None:
            fast = speedups.decode_float_args(raw, spec.float_kinds)
            if fast is not None:
                return [REQUEST, cid, oid, method, fast]
        decoder = spec.args_decoder()
        if decoder is None:
            return None
        try:
            args = decoder.decode(raw)
        except (msgspec.DecodeError, ValueError, TypeError, RecursionError):
            return None
        return [REQUEST, cid, oid, method, args]

    def _spin(self, budget_ns: int) -> None:
        """Poll the socket for up to `budget_ns` before the caller sleeps in recv().

        Sequential traffic: the answer (or the next request) usually comes within
        microseconds, sooner than a sleeping thread is woken up again. When it does not
        (the peer thinks between calls, or the CPUs are busy with other work and polling
        only takes time from the peer), the next waits sleep at once, more of them after
        each miss in a row.
        """
        ready = self._socket_poll().poll
        if ready(0):
            self._spin_misses = 0
            return
        monotonic_ns = time.monotonic_ns
        end = monotonic_ns() + budget_ns
        while not ready(0):
            if monotonic_ns() >= end:
                self._spin_missed()
                return
        self._spin_misses = 0

    def _spin_missed(self) -> None:
        # Misses in a row back off further each time: 1, 3, 7 ... 31 waits.
        misses = self._spin_misses = min(self._spin_misses + 1, _SPIN_BACKOFF_MAX)
        self._spin_skip = (1 << misses) - 1

    def _recv_large(self, rest: memoryview, deadline: float | None) -> bytearray | None:
        """Read the rest of a large frame straight into its buffer (None: failed or late)."""
        filled, total = 0, len(rest)
        while filled < total:
            if deadline is not None and not self._readable(deadline):
                # The frame is half read: the connection cannot be resynchronised.
                self._fail(ProtocolError("a call timed out while a large frame was arriving"))
                return None
            try:
                size = self._sock.recv_into(rest[filled:])
            except OSError as exc:
                self._fail(exc)
                return None
            if not size:
                self._fail(None)
                return None
            filled += size
        return self._decoder.finish_large()

    def _readable(self, deadline: float) -> bool:
        sock = self._sock
        pending = getattr(sock, "pending", None)
        if pending is not None and pending():
            return True
        poller = self._socket_poll()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        return bool(poller.poll(remaining * 1000))

    def _socket_poll(self) -> select.poll:
        poller = self._poller
        if poller is None:
            poller = self._poller = select.poll()
            poller.register(self._sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        return poller

    def _deliver(self, message: list[Any]) -> None:
        kind, cid = message[0], message[1]
        if kind in (CANCEL, CREDIT):
            self._deliver_to_inflight(kind, cid, message)
            return
        if kind == RELEASE:
            self.exports.release(cid)
            return
        with self._mu:
            w = self._pending.get(cid)
            if w is None:
                return  # an answer to a call that timed out or was cancelled
            if kind == STREAM_ITEM:
                if w.items is None:
                    return
                w.items.append(message[2])
            else:
                del self._pending[cid]
                if kind == RESPONSE:
                    w.value = message[2]
                elif kind == ERROR:
                    w.error = exception_from(message)
                w.done = True
            if w.waiting:
                w.waiting = False
                del self._idle[w]
                _wake(w)

    def _deliver_to_inflight(self, kind: int, cid: int, message: list[Any]) -> None:
        with self._mu:
            entry = self._inflight.get(cid)
        if entry is None:
            return
        if kind == CANCEL:
            entry.ctx.cancel()
            if entry.cond is not None:
                with entry.cond:
                    entry.cond.notify_all()
        elif entry.cond is not None:
            count = message[2]
            if type(count) is int and count > 0:
                with entry.cond:
                    entry.credit += count
                    entry.cond.notify_all()
                if entry.on_credit is not None:
                    entry.on_credit()

    # ----------------------------------------------------------------- serving requests

    def _execute(self, message: list[Any], detached: bool = False, more: bool = False) -> bool:
        """Run a request the calling thread read; True if it still holds the reading role.

        Inline mode (the plugin side) keeps the reading role while running the request, so a
        sequential call costs no thread hop; the watchdog hands the role to another thread
        if the request runs long. Otherwise (or `detached`, in a thread of its own) the
        role was handed on before running it.
        """
        _, cid, oid, method, args = message
        # resolve()'s cache hit, inlined: a function call costs ~0.4 µs here.
        found = self.exports.resolved.get((oid, method))
        if found is None:
            if oid == CONTROL_OBJECT:
                return self._execute_other(cid, method, args, None, detached)
            resolved = resolve(self.exports, oid, method)
            if isinstance(resolved, list):
                return self._execute_other(cid, method, args, resolved, detached)
            found = resolved
        func, spec, is_async = found
        entry = _Inflight()
        entry.ctx = ctx = CallContext(cid, spec.qualname)
        inline = self._inline and not detached
        me = threading.get_ident() if inline else None
        if inline:
            # While this thread owns the reading role nobody else reads, so no CANCEL or
            # CREDIT can come for the request: the watchdog registers it in _inflight if it
            # takes the role away. No mutex round here (~0.5 µs): the watchdog reads the
            # owner first, so these are written last to first.
            entry.cid = cid
            self._inline_entry = entry
            self._inline_since = time.monotonic()
            self._inline_owner = me
            if not self._watchdog_started:
                self._ensure_watchdog()
        else:
            with self._mu:
                self._inflight[cid] = entry
                self._executing += 1
        token = CURRENT.set(ctx)
        handed_off = False
        try:
            # check_args()'s fast path (scalars of their hinted types, ints for floats),
            # inlined: a function call costs ~0.4 µs here.
            scalars = spec._scalar_types
            checked: list[Any] | None = None
            if scalars is not None and len(args) == len(scalars):
                checked = args
                for i, expected in enumerate(scalars):
                    value = args[i]
                    if type(value) is not expected:
                        if expected is float and type(value) is int:
                            args[i] = float(value)
                        else:
                            checked = None
                            break
            if checked is None:
                # Not kept in a local: proxies among the arguments must die (and queue their
                # RELEASE) as soon as the implementation returns, before the reply goes out.
                # A tuple was decoded into its types already (_typed_request).
                result = func(
                    *(args if type(args) is tuple else spec.check_args(args, self._make_proxy))
                )
            else:
                result = func(*checked)
            if is_async or (type(result) not in _NEVER_AWAITABLE and inspect.isawaitable(result)):
                handed_off = True
                if inline:
                    # The event loop thread ends it (finish_inflight): registered now,
                    # unless the watchdog already did.
                    with self._mu:
                        self._register_inline_locked()
                self._async_runner().submit(self, cid, spec, result, entry)
            elif spec.stream:
                self._send_stream(cid, spec, result, entry)
            else:
                self._reply(cid, spec, result, entry if more else None)
        except Exception as exc:
            self._send_quiet(error_message(cid, exc))
        finally:
            CURRENT.reset(token)
            with self._mu:
                still_leader = inline and self._inline_owner == me
                if still_leader:
                    self._inline_owner = None
                if self._inline_entry is entry:
                    self._inline_entry = None  # inline all along: never registered
                elif not handed_off and self._inflight.pop(cid, None) is not None:
                    # Registered: not inline, or the role was taken meanwhile (the watchdog,
                    # or a nested call of its own that read for a while, see _wait).
                    self._executing -= 1
        return still_leader

    def _execute_other(
        self, cid: int, method: str, args: list[Any], refusal: list[Any] | None, detached: bool
    ) -> bool:
        """_execute() for a control call (no refusal) or a request refused by resolve()."""
        inline = self._inline and not detached
        me = threading.get_ident()
        if inline:
            with self._mu:
                self._inline_owner = me
                self._inline_since = time.monotonic()
            self._ensure_watchdog()
        try:
            if refusal is None:
                self._execute_control(cid, method, args)
            else:
                self._send_quiet([ERROR, cid, *refusal])
        finally:
            with self._mu:
                still_leader = inline and self._inline_owner == me
                if still_leader:
                    self._inline_owner = None
        return still_leader

    def adopt(self, ctx: CallContext) -> _Inflight:
        """Register a request begun before this endpoint existed (see _firstcall), so that a
        CANCEL for it reaches its context; answer_adopted() ends it."""
        entry = _Inflight()
        entry.ctx = ctx
        entry.cid = ctx.call_id
        with self._mu:
            self._inflight[ctx.call_id] = entry
            self._executing += 1
        return entry

    def answer_adopted(
        self, cid: int, spec: MethodSpec, result: Any, error: Exception | None
    ) -> None:
        """Answer a request that ran before this endpoint existed (see _firstcall) as
        _execute() answers its own: the result or the exception, an awaitable run first."""
        with self._mu:
            entry = self._inflight.get(cid)
        if error is not None:
            self._send_quiet(error_message(cid, error))
        else:
            try:
                if inspect.isawaitable(result):
                    if entry is None:  # not adopted: it ran and returned before a rescue
                        entry = self.adopt(CallContext(cid, spec.qualname))
                    self._async_runner().submit(self, cid, spec, result, entry)
                    return  # the event loop's thread ends it
                self._reply(cid, spec, result)
            except Exception as exc:
                self._send_quiet(error_message(cid, exc))
        self.finish_inflight(cid)

    def finish_inflight(self, cid: int) -> None:
        with self._mu:
            if self._inflight.pop(cid, None) is not None:
                self._executing -= 1

    def _reply(
        self, cid: int, spec: MethodSpec, result: Any, held: _Inflight | None = None
    ) -> None:
        """Send a request's result; `held`: other requests of the same read wait to run in
        this thread, so the reply may be held back to go out with theirs in one send.

        Under 16 concurrent callers a read brings ~16 requests: one send per reply was the
        plugin's costliest step. A held reply waits no longer than the requests after it:
        the reader sends it before it sleeps, any send takes it along, and the watchdog
        sends it when a request runs long.
        """
        try:
            if spec.ref_result is not None:  # prepare_result(), inlined
                result = spec.prepare_result(result)
            codec = self._codec
            if spec.buffer_result and codec.shm_ready is not None:
                frame = codec.encode_parts([RESPONSE, cid, result], True)
            else:
                # encode_parts() without buffers, inlined as in _request().
                body = codec._encoder.encode([RESPONSE, cid, result])
                size = len(body)
                if size > codec.max_frame:
                    raise ProtocolError(
                        f"frame of {size} bytes exceeds the limit of {codec.max_frame}"
                    )
                frame = (
                    _pack_header(size) + body if size < LARGE_FRAME else (_pack_header(size), body)
                )
        except (TypeError, ValueError, ArgumentError) as exc:
            frame = self._codec.encode(
                error_message(
                    cid,
                    ArgumentError(f"{spec.qualname}() returned a value that cannot be sent: {exc}"),
                )
            )
        # _send()'s common case (bytes, no pending releases), inlined: a call costs ~0.4 µs.
        if type(frame) is not bytes or self._releases:
            self._send(frame)
            return
        try:
            with self._send_lock:
                corked = self._corked
                if held is not None and self._inline_entry is held and len(corked) < _CORK_MAX:
                    # Still inline (checked under the send lock, which the watchdog takes
                    # to send held replies after it hands the role on): this thread reads
                    # again next, and sends the held replies before it sleeps.
                    corked.append(frame)
                elif corked:
                    corked.append(frame)
                    self._flush_corked_locked()
                else:
                    self._sendall(frame)
            if self._outbox:
                self._drain_outbox()
        except OSError as exc:
            self._fail(exc)
            self._closed_event.wait()  # as in _send
            assert self._failed is not None
            raise self._failed from None

    def _send_stream(self, cid: int, spec: MethodSpec, items: Any, entry: _Inflight) -> None:
        entry.cond = threading.Condition()
        ctx = entry.ctx
        iterator = iter(items)
        try:
            for item in iterator:
                with entry.cond:
                    while entry.credit <= 0 and not ctx.is_cancelled() and not self._failed:
                        entry.cond.wait(1.0)
                    entry.credit -= 1
                if ctx.is_cancelled() or self._failed:
                    break
                message = [STREAM_ITEM, cid, spec.prepare_result(item)]
                self._send(self._codec.encode_parts(message, spec.buffer_result))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        if ctx.is_cancelled():
            self._send_quiet(cancelled_message(cid))
        else:
            self._send(self._codec.encode([STREAM_END, cid]))

    def _execute_control(self, cid: int, method: str, args: list[Any]) -> None:
        try:
            result = self._control(self, method, args)
        except Exception as exc:
            self._send_quiet(error_message(cid, exc))
            return
        action = None
        if isinstance(result, AfterReply):
            result, action = result.value, result.action
        self._send_quiet([RESPONSE, cid, result])
        if action is not None:
            action()

    def _start_worker(self) -> None:
        """Start a thread that takes over the reading role, which the caller holds for it."""
        thread = threading.Thread(
            target=self._worker, name=f"tether-{self.name}-worker", daemon=True
        )
        thread.start()

    def _worker(self) -> None:
        w = _Waiter()
        lead = True
        try:
            while self._failed is None:
                if self._inline:
                    self._wait(w, None, lead)
                else:
                    self._wait(w, time.monotonic() + _TEMP_WORKER_POLL, lead)
                    with self._mu:
                        if not self._executing:
                            return
                lead = False
        finally:
            with self._mu:
                self._workers -= 1
                if w.waiting:
                    w.waiting = False
                    del self._idle[w]

    def serve(self) -> None:
        """Serve requests in the calling thread (plus helpers) until the connection closes."""
        w = _Waiter()
        while self._failed is None:
            self._wait(w, None)
        self._closed_event.wait()

    # ----------------------------------------------------------------- references

    def _make_proxy(self, ref: ObjectRef, iface: type[Interface]) -> Any:
        from ._proxy import sync_proxy

        proxy = sync_proxy(self, ref.object_id, iface, None)
        weakref.finalize(proxy, self._release_later, ref.object_id)
        return proxy

    def _release_later(self, oid: int) -> None:
        if self._failed is None:
            self._releases.append(oid)

    # ----------------------------------------------------------------- closing

    @property
    def closed(self) -> bool:
        return self._failed is not None

    def _fail(self, cause: BaseException | None) -> None:
        with self._mu:
            if self._failed is not None or self._closing:
                return
            self._closing = True
        error: BaseException = ConnectionClosedError(
            f"connection to plugin {self.name!r} is closed"
        )
        if not self._local_close:
            error = self._lost_error(cause)
        with self._mu:
            self._failed = error
            waiters = list(self._pending.values())
            self._pending.clear()
            inflight = list(self._inflight.values())
            if self._inline_entry is not None:
                inflight.append(self._inline_entry)
            for w in waiters:
                w.error = error
                w.done = True
            for w in list(self._idle):
                w.waiting = False
                w.done = True
                _wake(w)
            self._idle.clear()
        for entry in inflight:
            entry.ctx.cancel()
            if entry.cond is not None:
                with entry.cond:
                    entry.cond.notify_all()
        self._shutdown_socket()
        self._codec.close_fds()
        self._closed_event.set()

    def _shutdown_socket(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass

    def close(self) -> None:
        """Close the connection; waiting calls fail with ConnectionClosedError."""
        self._local_close = True
        # Waking a thread blocked in recv() needs shutdown(); it then sees EOF and fails
        # everything. If nobody is reading, fail directly.
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        with self._mu:
            leading = self._leading
        if not leading or not self._closed_event.wait(2.0):
            self._fail(None)
        if self._aio is not None:
            self._aio.stop()

    def wait_closed(self, timeout: float | None = None) -> bool:
        return self._closed_event.wait(timeout)

    def _async_runner(self) -> _AsyncRunner:
        if self._aio is None:
            with self._mu:
                if self._aio is None:
                    self._aio = _AsyncRunner(self.name)
        return self._aio


def spin_budget_ns() -> int:
    """How long a reader polls before it sleeps in recv(), from TETHER_SPIN_US (default 50 µs).

    Polling only pays when the peer runs on another CPU at the same time: with one CPU
    allowed, it would take the time the peer needs to answer.
    """
    raw = os.environ.get(ENV_SPIN_US)
    micros = _DEFAULT_SPIN_US
    if raw is not None:
        try:
            micros = int(raw)
            if micros < 0:
                raise ValueError
        except ValueError:
            # A connection is no place to fail over a tuning knob: say so and go on.
            _log.warning(
                "%s=%r is not a whole number of microseconds >= 0; using %d",
                ENV_SPIN_US,
                raw,
                _DEFAULT_SPIN_US,
            )
            micros = _DEFAULT_SPIN_US
    if micros and len(os.sched_getaffinity(0)) < 2:
        return 0
    return micros * 1000


class Speedups(Protocol):
    """What the endpoint uses of tether._speedups (mypy checks the module against it)."""

    def spin_recv_into(self, sock: socket.socket, buffer: bytearray, budget_ns: int, /) -> int: ...

    def sendall(self, sock: socket.socket, data: bytes | memoryview, /) -> None: ...

    def recv_into(self, sock: socket.socket, buffer: bytearray, /) -> int: ...

    def request_head(
        self, payload: bytes | bytearray | memoryview, /
    ) -> tuple[int, int, str, int] | None: ...

    def decode_float_args(
        self, data: msgspec.Raw | memoryview, kinds: tuple[bool, ...], /
    ) -> tuple[Any, ...] | None: ...


def load_speedups() -> Speedups | None:
    """The C extension (tether._speedups), or None: TETHER_SPEEDUPS=0, or not built (no C
    compiler or Python headers where tether was installed)."""
    if os.environ.get(ENV_SPEEDUPS) == "0":
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    return _speedups


def _default_lost_error(cause: BaseException | None) -> BaseException:
    if isinstance(cause, ProtocolError):
        return cause
    reason = f": {cause}" if cause is not None else ""
    return ConnectionClosedError(f"the connection was closed by the peer{reason}")


def _deadline(timeout: float | None) -> float | None:
    limit = effective_timeout(timeout)
    return None if limit is None else time.monotonic() + limit


class Stream(Iterator[Any]):
    """The host side of a streaming call: iterate it; `close()` cancels the rest."""

    def __init__(
        self,
        endpoint: SyncEndpoint,
        cid: int,
        waiter: _Waiter,
        spec: MethodSpec,
        deadline: float | None,
    ) -> None:
        self._ep = endpoint
        self._cid = cid
        self._w = waiter
        self._spec = spec
        self._deadline = deadline
        self._consumed = 0
        self._finished = False

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Any:
        w = self._w
        items = w.items
        assert items is not None
        if self._finished:
            raise StopIteration
        while True:
            if self._deadline is not None and time.monotonic() >= self._deadline:
                self._timed_out()
            if items:
                item = items.popleft()
                self._consumed += 1
                if self._consumed >= STREAM_WINDOW // 2:
                    self._ep._send_quiet([CREDIT, self._cid, self._consumed])
                    self._consumed = 0
                return self._spec.check_result(item, self._ep._make_proxy)
            if w.done:
                self._finished = True
                if w.error is not None:
                    raise w.error
                raise StopIteration
            if not self._ep._wait(w, self._deadline):
                self._timed_out()

    def _timed_out(self) -> NoReturn:
        self.close()
        raise CallTimeoutError(
            f"{self._spec.qualname}() stream on plugin {self._ep.name!r} did not "
            "finish in time; the plugin was asked to cancel it"
        )

    def close(self) -> None:
        """Stop the stream early; the plugin is told to cancel its generator."""
        if self._finished:
            return
        self._finished = True
        with self._ep._mu:
            still_running = self._ep._pending.pop(self._cid, None) is not None
        if still_running:
            self._ep._send_quiet([CANCEL, self._cid])

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not self._finished and not self._ep.closed:
            self._ep._pending.pop(self._cid, None)


class _AsyncRunner:
    """An event loop thread for `async def` implementations on the plugin side."""

    def __init__(self, name: str) -> None:
        import asyncio  # only plugins with async implementations pay for it

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name=f"tether-{name}-asyncio", daemon=True
        )
        self._thread.start()

    def submit(
        self, ep: SyncEndpoint, cid: int, spec: MethodSpec, result: Any, entry: _Inflight
    ) -> None:
        import asyncio

        future = asyncio.run_coroutine_threadsafe(
            self._run(ep, cid, spec, result, entry), self.loop
        )

        def cancel() -> None:
            future.cancel()

        entry.ctx.on_cancel(cancel)

    async def _run(
        self, ep: SyncEndpoint, cid: int, spec: MethodSpec, result: Any, entry: _Inflight
    ) -> None:
        import asyncio

        token = set_current(entry.ctx)
        try:
            if inspect.isasyncgen(result) or (spec.stream and hasattr(result, "__aiter__")):
                await self._stream(ep, cid, spec, result, entry)
            else:
                value = await result
                ep._reply(cid, spec, value)
        except asyncio.CancelledError:
            ep._send_quiet(cancelled_message(cid))
        except Exception as exc:
            ep._send_quiet(error_message(cid, exc))
        finally:
            reset_current(token)
            ep.finish_inflight(cid)

    async def _stream(
        self, ep: SyncEndpoint, cid: int, spec: MethodSpec, agen: Any, entry: _Inflight
    ) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        credit = asyncio.Event()

        def wake() -> None:
            loop.call_soon_threadsafe(credit.set)

        entry.on_credit = wake
        entry.cond = threading.Condition()
        try:
            async for item in agen:
                while entry.credit <= 0:
                    # Cancellation arrives as CancelledError through this wait.
                    credit.clear()
                    if entry.credit <= 0:
                        await credit.wait()
                entry.credit -= 1
                message = [STREAM_ITEM, cid, spec.prepare_result(item)]
                ep._send(ep._codec.encode_parts(message, spec.buffer_result))
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None:
                await aclose()
        ep._send(ep._codec.encode([STREAM_END, cid]))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is self._thread:
            return  # closed from an implementation: the loop stops once it returns
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self.loop.close()

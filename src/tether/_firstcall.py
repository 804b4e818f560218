"""A plugin's first calls, answered before the heavy imports.

A native plugin's process would otherwise import msgspec, typing, inspect and logging (about
40 ms, more than the interpreter's own start-up) before it could answer anything, and the
host waits for all of it. `FirstCalls` serves a new connection's first requests with the
standard library alone: control pings, dispenses, and one call of a method whose parameters
and result are hinted as plain scalars (`float`, `int`, `str`, `bool`, or `None` returned).
Then it builds the full endpoint (`make_endpoint`) and hands the connection over, with any
bytes it read but did not use.

Anything else (another message kind, a refused dispense, arguments that do not fit, a result
that is not a plain scalar, an exception) is left to the full endpoint, so every complaint
is worded in one place: the message goes over unread, or for a call that ran already, its
outcome is answered through the endpoint. A first call that runs long (a request it waits
for may come next) gets the full endpoint built beside it after `RESCUE_AFTER`, reading
while it runs, as the endpoint's own watchdog does for its requests.
"""

from __future__ import annotations

import _thread
import builtins
import struct
import threading
import types  # imported with socket already (through enum)

from ._context import CallContext, reset_current, set_current
from ._declare import find_interface, interface_methods, served_interfaces

TYPE_CHECKING = False  # not typing's: see tether/__init__.py
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Mapping
    from typing import Any, Final

    from ._declare import Interface
    from ._endpoint import SyncEndpoint

    Dispensed = list[tuple[object, type[Interface]]]
    MakeEndpoint = Callable[[bytes, Dispensed], SyncEndpoint]

__all__ = ["RESCUE_AFTER", "FirstCalls", "NotLean", "decode", "encode", "prepare"]

# The message kinds and control object id of _wire, which imports msgspec. A test checks
# that they agree.
REQUEST: Final = 0
RESPONSE: Final = 1
CONTROL_OBJECT: Final = 0

# Seconds a first call may run before the full endpoint is built beside it.
RESCUE_AFTER: Final = 0.005
# Frames this large go to the full endpoint, which reads them in place (see _wire).
_MAX_FRAME: Final = 1 << 16
_RECV_SIZE: Final = 1 << 16
_MAX_DEPTH: Final = 32

_SCALAR_PARAMS: Final = frozenset({float, int, str, bool})
_SCALAR_RESULTS: Final = frozenset({float, int, str, bool, type(None)})
_FUNCTION: Final = types.FunctionType
_METHOD: Final = types.MethodType
# Code flags of a function taking *args or **kwargs (keyword-only parameters show in
# co_kwonlyargcount), and those plus the flags of generators and coroutines of any kind.
_VARARGS: Final = 0x04 | 0x08
_NOT_PLAIN: Final = _VARARGS | 0x20 | 0x80 | 0x100 | 0x200

_HEADER: Final = struct.Struct(">I")
_F64: Final = struct.Struct(">d")


class NotLean(Exception):
    """Raised inside this module for what the full endpoint must handle."""


# ----------------------------------------------------------------------------- codec


def decode(data: bytes | bytearray | memoryview, pos: int = 0, depth: int = 0) -> tuple[Any, int]:
    """One msgpack value at `pos`: (value, position after it). The subset of msgpack a first
    call needs: nil, booleans, integers, floats, strings, arrays and maps. Anything else
    (binary, extensions, truncation, bad UTF-8) raises NotLean."""
    try:
        code = data[pos]
        pos += 1
        if code <= 0x7F:
            return code, pos
        if code >= 0xE0:
            return code - 0x100, pos
        if 0xA0 <= code <= 0xBF:
            return _text(data, pos, code & 0x1F)
        if 0x90 <= code <= 0x9F:
            return _array(data, pos, code & 0x0F, depth)
        if 0x80 <= code <= 0x8F:
            return _map(data, pos, code & 0x0F, depth)
        fixed = _FIXED.get(code)
        if fixed is not None:
            unpack, size = fixed
            end = pos + size
            if end > len(data):
                raise NotLean("truncated")
            return unpack(data, pos)[0], end
        if code == 0xC0:
            return None, pos
        if code == 0xC2:
            return False, pos
        if code == 0xC3:
            return True, pos
        sized = _SIZED.get(code)
        if sized is None:
            raise NotLean(f"msgpack type 0x{code:02x}")
        kind, unpack, size = sized
        count = unpack(data, pos)[0]
        pos += size
        if kind == "str":
            return _text(data, pos, count)
        if kind == "array":
            return _array(data, pos, count, depth)
        return _map(data, pos, count, depth)
    except (IndexError, struct.error, UnicodeDecodeError, TypeError) as exc:
        raise NotLean(str(exc)) from None


def _text(data: bytes | bytearray | memoryview, pos: int, size: int) -> tuple[str, int]:
    end = pos + size
    if end > len(data):
        raise NotLean("truncated")
    return str(data[pos:end], "utf-8"), end


def _array(
    data: bytes | bytearray | memoryview, pos: int, count: int, depth: int
) -> tuple[list[Any], int]:
    if depth >= _MAX_DEPTH or count > len(data):
        raise NotLean("too deep or too long")
    out = []
    for _ in range(count):
        value, pos = decode(data, pos, depth + 1)
        out.append(value)
    return out, pos


def _map(
    data: bytes | bytearray | memoryview, pos: int, count: int, depth: int
) -> tuple[dict[Any, Any], int]:
    if depth >= _MAX_DEPTH or count > len(data):
        raise NotLean("too deep or too long")
    out = {}
    for _ in range(count):
        key, pos = decode(data, pos, depth + 1)
        out[key], pos = decode(data, pos, depth + 1)  # TypeError: a key that is unhashable
    return out, pos


_FIXED: Final = {
    0xCA: (struct.Struct(">f").unpack_from, 4),
    0xCB: (_F64.unpack_from, 8),
    0xCC: (struct.Struct(">B").unpack_from, 1),
    0xCD: (struct.Struct(">H").unpack_from, 2),
    0xCE: (struct.Struct(">I").unpack_from, 4),
    0xCF: (struct.Struct(">Q").unpack_from, 8),
    0xD0: (struct.Struct(">b").unpack_from, 1),
    0xD1: (struct.Struct(">h").unpack_from, 2),
    0xD2: (struct.Struct(">i").unpack_from, 4),
    0xD3: (struct.Struct(">q").unpack_from, 8),
}
_SIZED: Final = {
    0xD9: ("str", struct.Struct(">B").unpack_from, 1),
    0xDA: ("str", struct.Struct(">H").unpack_from, 2),
    0xDB: ("str", struct.Struct(">I").unpack_from, 4),
    0xDC: ("array", struct.Struct(">H").unpack_from, 2),
    0xDD: ("array", struct.Struct(">I").unpack_from, 4),
    0xDE: ("map", struct.Struct(">H").unpack_from, 2),
    0xDF: ("map", struct.Struct(">I").unpack_from, 4),
}


def encode(value: Any, out: bytearray) -> None:
    """Append `value` as msgpack: None, booleans, integers that fit 64 bits, floats, strings
    and lists of them. Anything else raises NotLean."""
    kind = type(value)
    if value is None:
        out.append(0xC0)
    elif kind is bool:
        out.append(0xC3 if value else 0xC2)
    elif kind is int:
        if 0 <= value <= 0x7F:
            out.append(value)
        elif -32 <= value < 0:
            out.append(value + 0x100)
        elif 0 <= value < 1 << 64:
            out += b"\xcf" + value.to_bytes(8, "big")
        elif -(1 << 63) <= value < 0:
            out += b"\xd3" + value.to_bytes(8, "big", signed=True)
        else:
            raise NotLean("an integer beyond 64 bits")
    elif kind is float:
        out += b"\xcb" + _F64.pack(value)
    elif kind is str:
        try:
            raw = value.encode()
        except UnicodeEncodeError:
            raise NotLean("a string that is not UTF-8") from None
        size = len(raw)
        if size < 32:
            out.append(0xA0 | size)
        elif size < 1 << 8:
            out += b"\xd9" + size.to_bytes(1, "big")
        elif size < 1 << 16:
            out += b"\xda" + size.to_bytes(2, "big")
        else:
            out += b"\xdb" + size.to_bytes(4, "big")
        out += raw
    elif kind is list:
        size = len(value)
        if size < 16:
            out.append(0x90 | size)
        elif size < 1 << 16:
            out += b"\xdc" + size.to_bytes(2, "big")
        else:
            out += b"\xdd" + size.to_bytes(4, "big")
        for item in value:
            encode(item, out)
    else:
        raise NotLean(f"a {kind.__qualname__}")


def frame(message: list[Any]) -> bytes:
    body = bytearray(4)
    encode(message, body)
    body[:4] = _HEADER.pack(len(body) - 4)
    return bytes(body)


# ----------------------------------------------------------------------------- declarations


def _hint(func: Callable[..., Any], name: str) -> Any:
    """The hint `name` of a function if it is a plain object or a bare name (as `from
    __future__ import annotations` leaves hints), else NotLean."""
    annotations = func.__annotations__
    if name not in annotations:
        raise NotLean(f"no hint for {name}")
    hint = annotations[name]
    if type(hint) is not str:
        return hint
    if hint == "None":
        return None
    if not hint.isidentifier():
        raise NotLean(f"hint {hint!r}")
    namespace = func.__globals__
    if hint in namespace:
        return namespace[hint]
    if hint in vars(builtins):
        return vars(builtins)[hint]
    raise NotLean(f"hint {hint!r} is not defined")


def prepare(plugins: Mapping[str, object]) -> None:
    """Read the served interfaces' method names ahead of the first dispense (the host waits
    for that one); an interface this module cannot vouch for is left to the dispense."""
    for impl in plugins.values():
        for cls in served_interfaces(impl):
            try:
                _declared_names(cls)
            except NotLean:
                pass


_names: dict[type, list[str]] = {}  # _declared_names' answers, by interface


def _declared_names(cls: type[Interface]) -> list[str]:
    """The method names an interface's spec will have, if building it cannot fail.

    spec_of() refuses parameters that are not positional and hints it cannot resolve; a
    dispense that might meet either is left to the full endpoint, which words the refusal.
    """
    known = _names.get(cls)
    if known is None:
        known = _names[cls] = _read_names(cls)
    return known


def _read_names(cls: type[Interface]) -> list[str]:
    methods = interface_methods(cls)
    if not methods:
        raise NotLean("no methods")
    for func in methods.values():
        if type(func) is not _FUNCTION:
            raise NotLean("not a plain function")
        code = func.__code__
        if code.co_flags & _VARARGS or code.co_kwonlyargcount:
            raise NotLean("*args, **kwargs or keyword-only parameters")
        for name in func.__annotations__:
            hint = func.__annotations__[name]
            if type(hint) is str and not (hint == "None" or hint.isidentifier()):
                # Resolved as get_type_hints() would: if this fails, so does the spec.
                try:
                    hint = eval(hint, func.__globals__)
                except Exception:
                    raise NotLean(f"hint {hint!r}") from None
            else:
                hint = _hint(func, name)
            if _has_forward_ref(hint):
                raise NotLean("a hint naming a type in a string")
    return sorted(methods)


def _has_forward_ref(hint: Any, depth: int = 0) -> bool:
    """Whether a hint holds a type named in a string (list["Item"]), which get_type_hints()
    resolves too and which may fail there."""
    if type(hint) is str or depth > _MAX_DEPTH:
        return True
    return any(_has_forward_ref(arg, depth + 1) for arg in getattr(hint, "__args__", ()))


class _Method:
    """A method a first call may run: its implementation, arity and qualified name."""

    __slots__ = ("arity", "cls", "func", "name", "param_types", "qualname")

    def __init__(self, impl: object, cls: type[Interface], name: str) -> None:
        declared = interface_methods(cls).get(name)
        if type(declared) is not _FUNCTION:
            raise NotLean("not a declared method")
        bound: Any = getattr(impl, name, None)
        func: Any = getattr(bound, "__func__", None)
        if type(bound) is not _METHOD or type(func) is not _FUNCTION:
            raise NotLean("not a plain method")
        for code in (declared.__code__, func.__code__):
            if code.co_flags & _NOT_PLAIN or code.co_kwonlyargcount:
                raise NotLean("a generator, coroutine or unusual signature")
        code = declared.__code__
        params = code.co_varnames[1 : code.co_argcount]
        types = tuple(_hint(declared, p) for p in params)
        if not all(t in _SCALAR_PARAMS for t in types):
            raise NotLean("parameters that are not plain scalars")
        result = _hint(declared, "return")
        if (type(None) if result is None else result) not in _SCALAR_RESULTS:
            raise NotLean("a result that is not a plain scalar")
        self.func = bound
        self.cls = cls
        self.name = name
        self.param_types = types
        self.arity = len(types)
        self.qualname = f"{cls.__qualname__}.{name}"

    def check(self, args: list[Any]) -> list[Any]:
        """The arguments as the full endpoint's scalar check leaves them (ints for floats)."""
        if len(args) != self.arity:
            raise NotLean("arguments omitted (defaults) or too many")
        for i, expected in enumerate(self.param_types):
            value = args[i]
            if type(value) is not expected:
                if expected is float and type(value) is int:
                    args[i] = float(value)
                else:
                    raise NotLean("an argument of another type")
        return args


# ----------------------------------------------------------------------------- serving


class FirstCalls:
    """Serves one connection: its first requests here, the rest through the full endpoint."""

    def __init__(
        self,
        sock: socket.socket,
        plugins: Mapping[str, object],
        make_endpoint: MakeEndpoint,
        serve_endpoint: Callable[[SyncEndpoint], None],
    ) -> None:
        self._sock = sock
        self._plugins = plugins
        self._make_endpoint = make_endpoint
        self._serve_endpoint = serve_endpoint
        self._buf = bytearray(_RECV_SIZE)
        self._start = 0  # the unread bytes are _buf[_start:_end]
        self._end = 0
        self._exports: Dispensed = []  # object id i + 1
        # Between a first call and its rescuer (see _run_call).
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._rescued = False
        self._endpoint: SyncEndpoint | None = None
        self._endpoint_ready = threading.Event()

    def serve(self) -> None:
        """Serve until the connection closes (or, once rescued, until the call that ran here
        is answered: the rescuer serves the rest)."""
        while True:
            payload = self._next_payload()
            if payload is None:
                self._sock.close()
                return
            start, end = payload
            call: tuple[_Method, int, list[Any]] | bool | None = None
            try:
                if end >= 0:
                    message, used = decode(self._buf, start)
                    if used == end:
                        call = self._request(message)
            except NotLean:
                call = None
            except OSError:
                self._sock.close()  # a reply could not be sent: the host is gone
                return
            if call is None:
                self._start = start - 4  # the whole frame, header included, goes over
                self._serve_endpoint(self._hand_over())
                return
            if isinstance(call, bool):
                continue
            method, cid, args = call
            self._run_call(method, cid, args)
            return

    # ------------------------------------------------------------------ reading

    def _next_payload(self) -> tuple[int, int] | None:
        """The next frame's payload as (start, end) in _buf, reading as needed; None once the
        peer has closed. A frame too large to read here comes back as (start, -1)."""
        buf = self._buf
        while True:
            available = self._end - self._start
            if available >= 4:
                size = _HEADER.unpack_from(buf, self._start)[0]
                if size > _MAX_FRAME - 4:
                    return self._start + 4, -1
                if available >= 4 + size:
                    start = self._start + 4
                    self._start = start + size
                    return start, start + size
            if self._start and self._start == self._end:
                self._start = self._end = 0
            elif self._end == len(buf):
                buf[: self._end - self._start] = buf[self._start : self._end]
                self._end -= self._start
                self._start = 0
            try:
                got = self._sock.recv_into(memoryview(buf)[self._end :])
            except OSError:
                return None
            if not got:
                return None
            self._end += got

    # ------------------------------------------------------------------ requests

    def _request(self, message: Any) -> tuple[_Method, int, list[Any]] | bool | None:
        """True for a request answered here, a call to run, or None for the full endpoint."""
        if not (
            type(message) is list
            and len(message) == 5
            and type(message[0]) is int
            and message[0] == REQUEST
            and type(message[1]) is int
            and type(message[2]) is int
            and type(message[3]) is str
            and type(message[4]) is list
        ):
            return None
        _, cid, oid, name, args = message
        if oid == CONTROL_OBJECT:
            if name == "ping" and not args:
                self._sock.sendall(frame([RESPONSE, cid, True]))
                return True
            if name == "dispense":
                reply = self._dispense(args)
                if reply is None:
                    return None
                self._sock.sendall(frame([RESPONSE, cid, reply]))
                return True
            return None
        if not 0 < oid <= len(self._exports):
            return None
        impl, cls = self._exports[oid - 1]
        method = _Method(impl, cls, name)  # one call is run here at most: nothing to cache
        return method, cid, method.check(args)

    def _dispense(self, args: list[Any]) -> list[Any] | None:
        if len(args) != 2 or type(args[0]) is not str or type(args[1]) is not str:
            return None
        impl = self._plugins.get(args[0])
        cls = None if impl is None else find_interface(impl, args[1])
        if cls is None:
            return None
        names = _declared_names(cls)
        for i, (obj, kind) in enumerate(self._exports):
            if obj is impl and kind is cls:  # as ExportTable.add: one id per pair
                return [i + 1, names]
        self._exports.append((impl, cls))
        return [len(self._exports), names]

    # ------------------------------------------------------------------ the call

    def _run_call(self, method: _Method, cid: int, args: list[Any]) -> None:
        ctx = CallContext(cid, method.qualname)
        # A bare thread: threading.Thread.start() would wait until it runs (the host waits
        # for this answer); it ends within RESCUE_AFTER unless the call runs long.
        _thread.start_new_thread(self._rescue, (ctx,))
        result: Any = None
        error: Exception | None = None
        token = set_current(ctx)
        try:
            result = method.func(*args)
        except Exception as exc:
            error = exc
        finally:
            reset_current(token)
            with self._lock:
                self._finished.set()
                rescued = self._rescued
        if rescued:
            # The rescuer serves the connection now; answer through its endpoint.
            self._endpoint_ready.wait()
            if self._endpoint is not None:  # else the rescue failed: the socket is closed
                self._answer(self._endpoint, cid, method, result, error)
            return
        if error is None:
            try:
                reply = frame([RESPONSE, cid, result])
            except NotLean:
                pass
            else:
                try:
                    self._sock.sendall(reply)
                except OSError:
                    pass  # the endpoint built next sees the connection fail
                self._serve_endpoint(self._hand_over())
                return
        endpoint = self._hand_over()
        self._answer(endpoint, cid, method, result, error)
        self._serve_endpoint(endpoint)

    def _rescue(self, ctx: CallContext) -> None:
        if self._finished.wait(RESCUE_AFTER):
            return
        with self._lock:
            if self._finished.is_set():
                return
            self._rescued = True
        try:
            endpoint = self._hand_over()
            endpoint.adopt(ctx)
            self._endpoint = endpoint
        finally:
            self._endpoint_ready.set()  # the call's thread waits for it either way
        self._serve_endpoint(endpoint)

    def _answer(
        self,
        endpoint: SyncEndpoint,
        cid: int,
        method: _Method,
        result: Any,
        error: Exception | None,
    ) -> None:
        from ._interface import spec_of

        spec = spec_of(method.cls).methods[method.name]
        endpoint.answer_adopted(cid, spec, result, error)

    def _hand_over(self) -> SyncEndpoint:
        rest = bytes(self._buf[self._start : self._end])
        self._start = self._end = 0
        try:
            return self._make_endpoint(rest, self._exports)
        except BaseException:
            self._sock.close()  # the host sees the connection end rather than wait on it
            raise

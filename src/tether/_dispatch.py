"""What both drivers share: exported objects, request resolution and error translation."""

from __future__ import annotations

import builtins
import inspect
import itertools
import threading
import traceback
from collections.abc import Callable
from typing import Any, Final, TypeVar

from ._errors import ArgumentError, ProtocolError, RemoteError, TetherError
from ._interface import Exported, InterfaceSpec, MethodSpec, interface_of, spec_of
from ._wire import (
    ERR_CANCELLED,
    ERR_REMOTE,
    ERR_UNKNOWN_METHOD,
    ERR_UNKNOWN_OBJECT,
    ERR_VALIDATION,
    ERROR,
)

__all__ = [
    "AfterReply",
    "ExportTable",
    "error_message",
    "exception_from",
    "remote_exception",
    "resolve",
]


class AfterReply:
    """A control-call result whose `action` must run once the reply has been sent."""

    __slots__ = ("action", "value")

    def __init__(self, value: Any, action: Callable[[], None]) -> None:
        self.value = value
        self.action = action


class ExportTable:
    """Objects one side serves to its peer, by object id.

    Named plugins are dispensed into it, and objects passed by reference are exported into
    it on first send (the same object and interface always get the same id).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[int, tuple[object, InterfaceSpec]] = {}
        self._ids: dict[tuple[int, type], int] = {}
        self._next = itertools.count(1).__next__
        # (object id, method) -> (bound method, spec, is async): resolving costs more than
        # a small call, so it is done once per method.
        self.resolved: dict[tuple[int, str], tuple[Callable[..., Any], MethodSpec, bool]] = {}

    def add(self, obj: object, interface: type[Any]) -> int:
        key = (id(obj), interface)
        with self._lock:
            oid = self._ids.get(key)
            if oid is None:
                oid = self._next()
                self._ids[key] = oid
                self._objects[oid] = (obj, spec_of(interface))
            return oid

    def export(self, value: object) -> int:
        """The codec's hook for values that are not plain data."""
        if isinstance(value, Exported):
            return self.add(value.obj, value.interface)
        return self.add(value, interface_of(value))

    def get(self, oid: int) -> tuple[object, InterfaceSpec] | None:
        return self._objects.get(oid)

    def release(self, oid: int) -> None:
        with self._lock:
            entry = self._objects.pop(oid, None)
            for key in [k for k in self.resolved if k[0] == oid]:
                del self.resolved[key]
            if entry is not None:
                self._ids.pop((id(entry[0]), entry[1].cls), None)

    def __len__(self) -> int:
        return len(self._objects)


def resolve(
    exports: ExportTable, oid: int, method: str
) -> tuple[Callable[..., Any], MethodSpec, bool] | list[Any]:
    """The bound method, its spec and whether it is async, or an ERROR body to send back."""
    found = exports.resolved.get((oid, method))
    if found is not None:
        return found
    entry = exports.get(oid)
    if entry is None:
        return [ERR_UNKNOWN_OBJECT, "tether.UnknownObject", f"no object with id {oid}", ""]
    obj, spec = entry
    mspec = spec.methods.get(method)
    if mspec is None:
        return [
            ERR_UNKNOWN_METHOD,
            "tether.UnknownMethod",
            f"{spec.name} has no method {method!r}",
            "",
        ]
    func = getattr(obj, method, None)
    if func is None:
        return [
            ERR_UNKNOWN_METHOD,
            "tether.UnknownMethod",
            f"{type(obj).__qualname__} does not implement {spec.name}.{method}",
            "",
        ]
    is_async = inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)
    found = (func, mspec, is_async)
    exports.resolved[(oid, method)] = found
    return found


def _type_name(exc: BaseException) -> str:
    return _type_name_of(type(exc))


def _type_name_of(cls: type) -> str:
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def error_message(call_id: int, exc: BaseException) -> list[Any]:
    """The ERROR message that reports `exc`, raised while serving call `call_id`."""
    if isinstance(exc, ArgumentError):
        # No traceback to send: the last field names the method and parameter instead.
        where = [exc.method, exc.parameter]
        return [ERROR, call_id, ERR_VALIDATION, "tether.ArgumentError", str(exc), where]
    if isinstance(exc, RemoteError):
        # Re-raised remote errors keep their original identity as they travel on.
        return [
            ERROR,
            call_id,
            ERR_REMOTE,
            exc.type_name,
            exc.remote_message,
            exc.remote_traceback,
        ]
    try:
        message = str(exc)
    except Exception:
        message = f"<{type(exc).__qualname__}: str() failed>"
    try:
        text = "".join(traceback.format_exception(exc))
    except Exception:
        text = ""
    return [ERROR, call_id, ERR_REMOTE, _type_name(exc), message, text]


def cancelled_message(call_id: int) -> list[Any]:
    return [ERROR, call_id, ERR_CANCELLED, "tether.Cancelled", "the call was cancelled", ""]


_MIRRORS: Final[dict[str, type[RemoteError]]] = {}
_MIRROR_LOCK: Final = threading.Lock()
_REGISTERED: Final[dict[str, type[Exception]]] = {}
# By unqualified name, for plugins that import the shared module under another path; None
# marks a name two registered classes share, which then only matches fully qualified.
_BY_NAME: Final[dict[str, type[Exception] | None]] = {}

E = TypeVar("E", bound=type[Exception])


def remote_exception(cls: E) -> E:
    """Class decorator: let this exception type cross the process boundary.

    Decorate an exception class defined next to the interface (so both sides import it).
    When the plugin raises it, the host raises a `RemoteError` that is also an instance of
    `cls`, so `except CalculatorError:` works on the host as it would in-process.
    """
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        raise TypeError(f"remote_exception needs an Exception subclass, got {cls!r}")
    with _MIRROR_LOCK:
        _REGISTERED[_type_name_of(cls)] = cls
        known = _BY_NAME.get(cls.__qualname__, cls)
        _BY_NAME[cls.__qualname__] = cls if known is cls else None
        _MIRRORS.clear()
    return cls


def _mirror(type_name: str) -> type[RemoteError]:
    """A RemoteError subclass that is also the exception type the plugin raised.

    Builtin exception types and types registered with `remote_exception` are mirrored, so
    `except ZeroDivisionError:` works on the host for a plugin's ZeroDivisionError while
    `except tether.RemoteError:` still catches every remote failure.
    """
    cls = _MIRRORS.get(type_name)
    if cls is not None:
        return cls
    base: object = _REGISTERED.get(type_name)
    if base is None and "." in type_name:
        # The plugin may run its module as __main__, or import it under another package
        # path: fall back to the unqualified class name.
        base = _BY_NAME.get(type_name.rsplit(".", 1)[1])
    if base is None:
        base = getattr(builtins, type_name, None)
    mirror: type[RemoteError] = RemoteError
    if (
        isinstance(base, type)
        and issubclass(base, Exception)
        and not issubclass(base, TetherError | BaseExceptionGroup)
    ):
        try:
            name = type_name.rsplit(".", 1)[-1]
            candidate = type(name, (RemoteError, base), {"__module__": "tether.remote"})
            candidate("probe", "")
            mirror = candidate
        except Exception:
            # Types whose constructor needs other arguments (UnicodeError, custom ones)
            # cannot be mirrored; the caller still gets a RemoteError with the type name.
            mirror = RemoteError
    with _MIRROR_LOCK:
        _MIRRORS[type_name] = mirror
    return mirror


def exception_from(message: list[Any]) -> TetherError:
    """The exception a caller sees for a received ERROR message."""
    _, _, kind, type_name, text, remote_tb = message
    if kind == ERR_VALIDATION:
        where = remote_tb if type(remote_tb) is list and len(remote_tb) == 2 else ["", ""]
        return ArgumentError(str(text), str(where[0]), str(where[1]))
    if kind in (ERR_UNKNOWN_OBJECT, ERR_UNKNOWN_METHOD):
        return ProtocolError(f"the peer refused the call: {text}")
    if kind == ERR_CANCELLED:
        return TetherError(str(text))
    return _mirror(str(type_name))(str(type_name), str(text), str(remote_tb))

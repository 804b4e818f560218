"""Client-side proxies: classes generated per interface whose methods make remote calls."""

from __future__ import annotations

import threading
from typing import Any, Protocol, TypeVar

from ._interface import Interface, MethodSpec, spec_of

__all__ = ["async_proxy", "sync_proxy"]

T = TypeVar("T", bound=Interface)


class _Caller(Protocol):
    name: str

    def call(
        self,
        oid: int,
        spec: MethodSpec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None = None,
    ) -> Any: ...

    def call_stream(
        self,
        oid: int,
        spec: MethodSpec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None = None,
    ) -> Any: ...


_CLASSES: dict[tuple[type, bool], type] = {}
_LOCK = threading.Lock()


def _method(spec: MethodSpec) -> Any:
    # One closure per method; the hot path is a single attribute load and call.
    if spec.stream:

        def stream_method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return self._tether_ep.call_stream(
                self._tether_oid, spec, args, kwargs, self._tether_timeout
            )

        method = stream_method
    else:

        def call_method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return self._tether_ep.call(self._tether_oid, spec, args, kwargs, self._tether_timeout)

        method = call_method
    method.__name__ = spec.name
    method.__qualname__ = f"{spec.interface}Proxy.{spec.name}"
    return method


def _proxy_class(iface: type[T], is_async: bool) -> type[T]:
    key = (iface, is_async)
    cls = _CLASSES.get(key)
    if cls is not None:
        return cls
    spec = spec_of(iface)
    namespace: dict[str, Any] = {name: _method(m) for name, m in spec.methods.items()}
    namespace["__tether_proxy__"] = True
    namespace["__repr__"] = _repr
    namespace["__module__"] = iface.__module__
    kind = "AsyncProxy" if is_async else "Proxy"
    cls = type(f"{iface.__name__}{kind}", (iface,), namespace)
    with _LOCK:
        _CLASSES[key] = cls
    return cls


def _repr(self: Any) -> str:
    return f"<{type(self).__name__} object {self._tether_oid} of plugin {self._tether_ep.name!r}>"


def _make(caller: _Caller, oid: int, iface: type[T], timeout: float | None, is_async: bool) -> T:
    proxy = _proxy_class(iface, is_async).__new__(_proxy_class(iface, is_async))
    proxy._tether_ep = caller  # type: ignore[attr-defined]
    proxy._tether_oid = oid  # type: ignore[attr-defined]
    proxy._tether_timeout = timeout  # type: ignore[attr-defined]
    return proxy


def sync_proxy(caller: _Caller, oid: int, iface: type[T], timeout: float | None) -> T:
    """A proxy whose methods block until the plugin answers."""
    return _make(caller, oid, iface, timeout, False)


def async_proxy(caller: _Caller, oid: int, iface: type[T], timeout: float | None) -> T:
    """A proxy whose methods return awaitables (and async iterators for streams)."""
    return _make(caller, oid, iface, timeout, True)

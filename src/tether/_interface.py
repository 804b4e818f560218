"""Interfaces as typed Python classes: method specs, argument and result validation.

An interface is a subclass of `Interface` whose methods carry type hints. The spec of each
method is read once; validation uses msgspec's converters (written in C) except for methods
whose parameters are all plain scalars, which get a cheaper pure-Python check.
"""

from __future__ import annotations

import collections.abc
import datetime
import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Final

import msgspec

from ._declare import Interface, find_interface
from ._declare import interface_methods as _interface_methods
from ._declare import is_interface as _is_interface
from ._errors import ArgumentError, ConfigError
from ._wire import ObjectRef

__all__ = [
    "Exported",
    "Interface",
    "InterfaceSpec",
    "MethodSpec",
    "find_interface",
    "interface_of",
    "spec_of",
]

_SCALARS: Final = frozenset({int, float, str, bytes, bool, type(None)})
_NO_BUFFER: Final = frozenset({int, float, str, bool, type(None)})
_STREAM_ORIGINS: Final = frozenset(
    {
        collections.abc.Iterator,
        collections.abc.Iterable,
        collections.abc.Generator,
        collections.abc.AsyncIterator,
        collections.abc.AsyncIterable,
        collections.abc.AsyncGenerator,
    }
)
_MakeProxy = Callable[[ObjectRef, "type[Interface]"], Any]
# msgspec reports where a value failed as "- at `$[1].x`" or "- at `key` in `$[1]`".
# Compiled on the first failure: a plugin's start-up would pay for it otherwise.
_PATH_PATTERN: Final = r" - at (`key` in )?`\$\[(\d+)\](.*)`$"
# Values a caller passes must already have their hinted type: msgspec must not accept a
# JSON-style stand-in (a str silently base64-decoded into bytes, or parsed as a datetime).
_strict_out: tuple[type, ...] | None = None


def _strict_out_types() -> tuple[type, ...]:
    """The types a caller's values must already have (see above), built on first use.

    decimal and uuid take ~9 ms to import and a plugin that only receives calls never needs
    them, so tether does not import them itself (msgspec 0.23's _core imports both anyway).
    """
    global _strict_out
    if _strict_out is None:
        import decimal
        import uuid

        _strict_out = (
            bytes,
            bytearray,
            memoryview,
            datetime.datetime,
            datetime.date,
            datetime.time,
            datetime.timedelta,
            uuid.UUID,
            decimal.Decimal,
        )
    return _strict_out


# Off the wire, msgpack carries bytes natively but naive datetimes, dates, times, durations,
# UUIDs and Decimals as strings, which msgspec converts back.
_STRICT_IN: Final = (bytes, bytearray, memoryview)


class MethodSpec:
    """One interface method: how to check its arguments and convert its result.

    A plain slotted class rather than a dataclass: every plugin imports this module before
    its handshake, and creating a dataclass costs ~1 ms there.
    """

    __slots__ = (
        "_args_decoder",
        "_args_type",
        "_needs_result_convert",
        "_plain_args",
        "_result_scalar",
        "_scalar_types",
        "_signature",
        "buffer_args",
        "buffer_result",
        "defaults",
        "float_kinds",
        "interface",
        "name",
        "param_types",
        "params",
        "qualname",
        "ref_params",
        "ref_result",
        "return_type",
        "stream",
    )

    def __init__(
        self,
        *,
        interface: str,
        name: str,
        params: tuple[str, ...],
        param_types: tuple[Any, ...],
        defaults: tuple[Any, ...],
        return_type: Any,
        stream: bool,
        ref_params: dict[int, type[Interface]],
        ref_result: type[Interface] | None,
        signature: inspect.Signature | None = None,
    ) -> None:
        self.interface = interface
        self.name = name
        self.params = params
        self.param_types = param_types
        self.defaults = defaults
        self.return_type = return_type
        self.stream = stream
        self.ref_params = ref_params
        self.ref_result = ref_result
        self._args_type: Any = None
        # Whether every parameter is plain data (see _is_plain): then a large request's
        # arguments may be decoded straight into their types, checked in the same pass.
        self._plain_args = False
        self._args_decoder: msgspec.msgpack.Decoder[Any] | None = None
        # Every parameter `float` (False) or `list[float]` (True), one of them a list: the C
        # decoder (_speedups.decode_float_args) may take a large request's arguments.
        self.float_kinds: tuple[bool, ...] | None = None
        self._scalar_types: tuple[type, ...] | None = None
        self._result_scalar: type | None = None
        self._needs_result_convert = True
        # Whether arguments / results may hold a buffer for the shared-memory path: methods
        # of scalars only skip looking for one on every call.
        self.buffer_args = True
        self.buffer_result = True
        self._signature = signature
        # Computed once: both sides used to format it on every call.
        self.qualname = f"{interface}.{name}"

    def __repr__(self) -> str:
        return (
            f"MethodSpec({self.qualname}, params={self.params!r}, "
            f"param_types={self.param_types!r}, return_type={self.return_type!r}, "
            f"stream={self.stream!r})"
        )

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        """Turn a call's positional and keyword arguments into the positional wire list."""
        if not kwargs and len(args) == len(self.params):
            return list(args)
        assert self._signature is not None
        try:
            bound = self._signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            raise ArgumentError(f"{self.qualname}(): {exc}", self.qualname) from None
        bound.apply_defaults()
        return list(bound.args[1:])

    def check_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """bind() and check_args() for the sending side, with the common case in one call.

        Positional arguments that all have their hinted scalar type are sent as they are
        (a tuple goes on the wire as an array, like a list).
        """
        scalars = self._scalar_types
        if not kwargs and scalars is not None and len(args) == len(scalars):
            # check_args()'s fast path, inlined (ints given for floats included): bind() and
            # check_args() would cost two more calls and a list per call.
            converted: list[Any] | None = None
            for i, expected in enumerate(scalars):
                value = args[i]
                if type(value) is not expected:
                    if expected is float and type(value) is int:
                        if converted is None:
                            converted = list(args)
                        converted[i] = float(value)
                    else:
                        break
            else:
                return args if converted is None else converted
        wire = self.bind(args, kwargs)
        if self._plain_args:
            for value in wire:
                if type(value) in _PLAIN_CONTAINERS and len(value) >= _BULK_ITEMS:
                    # The receiver checks plain data as it decodes it into its types (or in
                    # check_args(), with the same words): a pass here too would cost a tenth
                    # of the call for 100,000 floats. A mistake costs a round trip instead.
                    return wire
        return self.check_args(wire)

    def check_args(self, args: list[Any], make_proxy: _MakeProxy | None = None) -> list[Any]:
        """Validate (and convert, e.g. dicts into dataclasses) positional arguments.

        On the sending side `make_proxy` is None and interface-typed arguments are wrapped
        in `Exported`; on the receiving side references become proxies via `make_proxy`.
        """
        scalars = self._scalar_types
        if scalars is not None and len(args) == len(scalars):
            for i, expected in enumerate(scalars):
                value = args[i]
                if type(value) is not expected:
                    if expected is float and type(value) is int:
                        args[i] = float(value)
                    else:
                        break
            else:
                return args
        if len(args) < len(self.params) and len(args) >= len(self.params) - len(self.defaults):
            args = args + list(self.defaults[len(args) - len(self.params) :])
        if len(args) != len(self.params):
            raise ArgumentError(
                f"{self.qualname}() takes {len(self.params)} arguments, got {len(args)}",
                self.qualname,
            )
        refs = {i: args[i] for i in self.ref_params}
        try:
            converted = list(
                msgspec.convert(
                    args,
                    self._args_type,
                    strict=True,
                    builtin_types=_strict_out_types() if make_proxy is None else _STRICT_IN,
                )
            )
        except msgspec.ValidationError as exc:
            raise self._argument_error(str(exc)) from None
        for i, iface in self.ref_params.items():
            converted[i] = _ref_value(refs[i], iface, make_proxy, self, self.params[i])
        return converted

    def args_decoder(self) -> msgspec.msgpack.Decoder[Any] | None:
        """A decoder of the wire arguments into their types, or None (not plain data).

        Decoding and checking in one pass spares check_args()'s second pass over the
        values and the copy it makes: for 100,000 floats that is ~0.7 ms of a ~5 ms call.
        Built on first use: a plugin's start-up need not pay for the decoders.
        """
        decoder = self._args_decoder
        if decoder is None and self._plain_args:
            decoder = self._args_decoder = msgspec.msgpack.Decoder(self._args_type)
        return decoder

    def prepare_result(self, value: Any) -> Any:
        """What the implementation returned, made ready to send."""
        if self.ref_result is not None:
            return _ref_value(value, self.ref_result, None, self, "")
        return value

    def check_result(self, value: Any, make_proxy: _MakeProxy | None = None) -> Any:
        """Validate and convert a received result (or stream item)."""
        if self.ref_result is not None:
            return _ref_value(value, self.ref_result, make_proxy, self, "")
        if not self._needs_result_convert:
            return value
        expected = self._result_scalar
        if expected is not None:
            if type(value) is expected:
                return value
            if expected is float and type(value) is int:
                return float(value)
        try:
            return msgspec.convert(value, self.return_type, strict=True, builtin_types=_STRICT_IN)
        except msgspec.ValidationError as exc:
            raise ArgumentError(
                f"{self.qualname}() returned a value that does not match its type hint: "
                f"{_strip_path(str(exc))}",
                self.qualname,
            ) from None

    def _argument_error(self, text: str) -> ArgumentError:
        match = re.search(_PATH_PATTERN, text)
        if match is None:
            return ArgumentError(f"{self.qualname}(): {text}", self.qualname)
        is_key, index, rest = match.group(1), int(match.group(2)), match.group(3)
        param = self.params[index] if index < len(self.params) else f"#{index}"
        where = f" (at {param}{rest})" if rest else ""
        if is_key:
            where = f" (a key of {param}{rest})"
        return ArgumentError(
            f"{self.qualname}() argument {param!r}: {text[: match.start()]}{where}",
            self.qualname,
            param,
        )


def _strip_path(text: str) -> str:
    return re.sub(_PATH_PATTERN, "", text)


def _ref_value(
    value: Any,
    iface: type[Interface],
    make_proxy: _MakeProxy | None,
    spec: MethodSpec,
    param: str,
) -> Any:
    if value is None:
        return None
    if make_proxy is None:
        if isinstance(value, iface):
            return Exported(value, iface)
    elif isinstance(value, ObjectRef):
        return make_proxy(value, iface)
    what = f"argument {param!r}" if param else "result"
    wanted = "an object implementing" if make_proxy is None else "a reference to"
    raise ArgumentError(
        f"{spec.qualname}() {what}: expected {wanted} {iface.__qualname__}, "
        f"got {type(value).__qualname__}",
        spec.qualname,
        param,
    )


class InterfaceSpec:
    """All methods of an interface, keyed by name (slotted, not a dataclass: see MethodSpec)."""

    __slots__ = ("cls", "methods", "name")

    def __init__(self, name: str, cls: type[Interface], methods: dict[str, MethodSpec]) -> None:
        self.name = name
        self.cls = cls
        self.methods = methods

    def __repr__(self) -> str:
        return f"InterfaceSpec({self.name}, methods={sorted(self.methods)!r})"


def _is_ndarray(hint: Any) -> bool:
    """Whether a hint is numpy.ndarray or numpy.typing.NDArray[...] (without importing numpy)."""
    tp = typing.get_origin(hint) or hint
    return getattr(tp, "__module__", None) == "numpy" and getattr(tp, "__name__", "") == "ndarray"


def _stream_item(hint: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    if origin in _STREAM_ORIGINS:
        targs = typing.get_args(hint)
        return True, (targs[0] if targs else Any)
    if hint in _STREAM_ORIGINS:
        return True, Any
    return False, hint


def _method_spec(cls: type[Interface], name: str, func: Callable[..., Any]) -> MethodSpec:
    try:
        hints = typing.get_type_hints(func, include_extras=False)
    except Exception as exc:
        raise ConfigError(
            f"cannot resolve the type hints of {cls.__qualname__}.{name}: {exc}"
        ) from exc
    signature = inspect.signature(func)
    params: list[str] = []
    types: list[Any] = []
    defaults: list[Any] = []
    refs: dict[int, type[Interface]] = {}
    for i, param in enumerate(list(signature.parameters.values())[1:]):
        if param.kind not in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            raise ConfigError(
                f"{cls.__qualname__}.{name}: parameter {param.name!r} must be positional "
                "(*args, **kwargs and keyword-only parameters cannot cross the process boundary)"
            )
        hint = hints.get(param.name, Any)
        params.append(param.name)
        if _is_interface(hint):
            refs[i] = hint
            hint = Any
        elif _is_ndarray(hint):
            hint = Any  # msgspec has no numpy support; the codec carries arrays as they are
        types.append(hint)
        if param.default is not param.empty:
            defaults.append(param.default)
        elif defaults:
            raise ConfigError(f"{cls.__qualname__}.{name}: a default must not precede a required")
    stream, result = _stream_item(hints.get("return", Any))
    if result is None:
        result = type(None)  # `-> None` in a hint means NoneType
    elif _is_ndarray(result):
        result = Any
    ref_result = result if _is_interface(result) else None
    spec = MethodSpec(
        interface=cls.__qualname__,
        name=name,
        params=tuple(params),
        param_types=tuple(types),
        defaults=tuple(defaults),
        return_type=result,
        stream=stream,
        ref_params=refs,
        ref_result=ref_result,
        signature=signature,
    )
    # A tuple type over the parameter hints lets msgspec check all arguments in one C call.
    spec._args_type = tuple.__class_getitem__(tuple(types)) if types else tuple[()]
    if all(t in _SCALARS for t in types) and not refs:
        spec._scalar_types = tuple(types)
    if result in _SCALARS:
        spec._result_scalar = result
    spec._needs_result_convert = result is not Any
    spec.buffer_args = not all(t in _NO_BUFFER for t in types) or bool(refs)
    spec._plain_args = not refs and all(_is_plain(t) for t in types)
    kinds = tuple(t == list[float] for t in types)
    if any(kinds) and all(k or t is float for k, t in zip(kinds, types, strict=True)):
        spec.float_kinds = kinds
    spec.buffer_result = result not in _NO_BUFFER
    return spec


_PLAIN_CONTAINERS: Final = frozenset({list, tuple, set, frozenset, dict})
# A container argument this long to a plain-data method is left for the receiver to check.
_BULK_ITEMS: Final = 10_000


def _is_plain(hint: Any) -> bool:
    """Whether a hint is plain data: scalars but bytes, containers and unions of them.

    For these, decoding the wire value into the hint accepts and refuses exactly what
    check_args() does. Bytes are left out because they may arrive in shared memory (an
    extension type), and so is Any, which may carry references.
    """
    if hint in _NO_BUFFER:
        return True
    origin = typing.get_origin(hint)
    if origin in _PLAIN_CONTAINERS or origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(hint)
        return bool(args) and all(a is Ellipsis or _is_plain(a) for a in args)
    return False


def spec_of(cls: type[Interface]) -> InterfaceSpec:
    """The spec of an interface class, computed on first use and cached on the class."""
    cached = cls.__dict__.get("__tether_spec__")
    if cached is not None:
        return typing.cast(InterfaceSpec, cached)
    if not _is_interface(cls):
        raise ConfigError(f"{cls!r} is not a subclass of tether.Interface")
    methods = {
        name: _method_spec(cls, name, func) for name, func in _interface_methods(cls).items()
    }
    if not methods:
        raise ConfigError(f"interface {cls.__qualname__} declares no public methods")
    spec = InterfaceSpec(name=cls.__qualname__, cls=cls, methods=methods)
    cls.__tether_spec__ = spec
    return spec


def interface_of(obj: object) -> type[Interface]:
    """The interface an object passed by reference serves: its own class's spec."""
    cls = type(obj)
    if _is_interface(cls):
        return cls
    raise ArgumentError(
        f"objects of type {cls.__qualname__} cannot be sent: only plain data and objects "
        "implementing a tether.Interface (passed by reference) can cross the process boundary"
    )


class Exported:
    """Marks a value to be sent by reference, served with the given interface's methods."""

    __slots__ = ("interface", "obj")

    def __init__(self, obj: object, interface: type[Interface]) -> None:
        self.obj = obj
        self.interface = interface

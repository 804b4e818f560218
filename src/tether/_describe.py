"""Introspection: a plugin describes what it serves, so tools can list and call it without
importing its interface module (`tether inspect`, `tether call`).

The plugin side turns each served object into plain data (`describe_served`), sent as the
reply to the "describe" control call; the host side reads it back into frozen dataclasses
(`descriptions_from_wire`). `raw_method_spec` lets a host call a method it only knows by name:
arguments go out unchecked and the plugin's own validation answers for them.
"""

from __future__ import annotations

import dis
import inspect
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import ProtocolError
from ._interface import Interface, MethodSpec, spec_of

__all__ = [
    "MethodDescription",
    "ParameterDescription",
    "PluginDescription",
    "describe_served",
    "descriptions_from_wire",
    "raw_method_spec",
    "type_text",
]


@dataclass(frozen=True, slots=True)
class ParameterDescription:
    """One parameter of a remote method."""

    name: str
    type: str  # as written in Python: "float", "list[AddRequest]"
    required: bool
    default: str | None = None  # repr() of the default, when there is one
    schema: Mapping[str, Any] | None = None  # JSON schema of the type, when msgspec has one


@dataclass(frozen=True, slots=True)
class MethodDescription:
    """One method of a served interface."""

    name: str
    signature: str  # "add(a: float, b: float) -> float"
    doc: str
    params: tuple[ParameterDescription, ...]
    returns: str
    stream: bool  # the result is a stream of items (an Iterator)
    is_async: bool


@dataclass(frozen=True, slots=True)
class PluginDescription:
    """One name a plugin serves (what `Client.dispense` takes) and what it implements."""

    name: str
    interface: str  # the most derived interface: dispense by this name
    interfaces: tuple[str, ...]  # `interface` and the interfaces it derives from
    implementation: str  # the implementing class
    doc: str
    methods: tuple[MethodDescription, ...]

    def method(self, name: str) -> MethodDescription | None:
        for method in self.methods:
            if method.name == name:
                return method
        return None


# --------------------------------------------------------------------------------------
# Plugin side.


def _stub() -> None: ...


async def _async_stub() -> None: ...


def _ops(func: Any) -> list[tuple[str, Any]]:
    code = getattr(func, "__code__", None)
    if code is None:
        return []
    return [(i.opname, i.argval) for i in dis.get_instructions(code)]


_STUB_BODIES = (_ops(_stub), _ops(_async_stub))


def _declares_only(cls: type) -> bool:
    """Whether `cls` only declares methods (`...`, `pass` or docstring bodies): an interface
    rather than an implementation that happens to subclass one."""
    for name, value in vars(cls).items():
        if name.startswith("_") or not callable(value):
            continue
        if _ops(value) not in _STUB_BODIES:
            return False
    return True


def _interfaces_of(obj: object) -> list[type[Interface]]:
    candidates = [
        klass
        for klass in type(obj).__mro__
        if isinstance(klass, type)
        and issubclass(klass, Interface)
        and klass is not Interface
        and not klass.__dict__.get("__tether_proxy__", False)
    ]
    declared = [klass for klass in candidates if _declares_only(klass)]
    # An Interface subclass that implements its own methods serves as its own interface.
    return declared or candidates[:1]


def type_text(tp: Any) -> str:
    """A type hint as a reader would write it, without module paths."""
    if tp is type(None) or tp is None:
        return "None"
    if tp is Any:
        return "Any"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_text(a) for a in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin is not None:
        name = getattr(origin, "__qualname__", None) or str(origin).replace("typing.", "")
        if not args:
            return str(name)
        return f"{name}[{', '.join('...' if a is Ellipsis else type_text(a) for a in args)}]"
    if isinstance(tp, type):
        return tp.__qualname__
    return str(tp).replace("typing.", "")


def _schema(tp: Any) -> dict[str, Any] | None:
    import msgspec

    try:
        return msgspec.json.schema(tp)
    except Exception:  # types msgspec cannot describe (interface references, custom types)
        return None


def _method(iface: type[Interface], spec: MethodSpec) -> dict[str, Any]:
    func = getattr(iface, spec.name)
    try:
        hints = typing.get_type_hints(func)
    except Exception:
        hints = {}
    required = len(spec.params) - len(spec.defaults)
    params: list[dict[str, Any]] = []
    for i, name in enumerate(spec.params):
        hint = hints.get(name, Any)
        param: dict[str, Any] = {"name": name, "type": type_text(hint), "required": i < required}
        if i >= required:
            param["default"] = repr(spec.defaults[i - required])
        if hint is not Any:
            param["schema"] = _schema(hint)
        params.append(param)
    returns = type_text(hints.get("return", Any))
    rendered = ", ".join(
        f"{p['name']}: {p['type']}" + (f" = {p['default']}" if "default" in p else "")
        for p in params
    )
    is_async = inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)
    return {
        "name": spec.name,
        "signature": f"{'async ' if is_async else ''}{spec.name}({rendered}) -> {returns}",
        "doc": inspect.getdoc(func) or "",
        "params": params,
        "returns": returns,
        "stream": spec.stream,
        "async": is_async,
    }


def describe_served(plugins: Mapping[str, object]) -> list[dict[str, Any]]:
    """The reply to the "describe" control call: each native plugin as plain data."""
    out: list[dict[str, Any]] = []
    for name, impl in sorted(plugins.items()):
        if not isinstance(impl, Interface):
            continue
        interfaces = _interfaces_of(impl)
        main = interfaces[0]
        spec = spec_of(main)
        out.append(
            {
                "name": name,
                "interface": spec.name,
                "interfaces": [klass.__qualname__ for klass in interfaces],
                "implementation": type(impl).__qualname__,
                "doc": inspect.getdoc(main) or "",
                "methods": [_method(main, m) for m in spec.methods.values()],
            }
        )
    return out


# --------------------------------------------------------------------------------------
# Host side.


def descriptions_from_wire(reply: Any) -> list[PluginDescription]:
    """Read a "describe" reply; ProtocolError if it is not one."""
    try:
        return [
            PluginDescription(
                name=str(item["name"]),
                interface=str(item["interface"]),
                interfaces=tuple(str(i) for i in item["interfaces"]),
                implementation=str(item.get("implementation", "")),
                doc=str(item.get("doc", "")),
                methods=tuple(
                    MethodDescription(
                        name=str(m["name"]),
                        signature=str(m["signature"]),
                        doc=str(m.get("doc", "")),
                        params=tuple(
                            ParameterDescription(
                                name=str(p["name"]),
                                type=str(p["type"]),
                                required=bool(p["required"]),
                                default=p.get("default"),
                                schema=p.get("schema"),
                            )
                            for p in m["params"]
                        ),
                        returns=str(m["returns"]),
                        stream=bool(m["stream"]),
                        is_async=bool(m.get("async", False)),
                    )
                    for m in item["methods"]
                ),
            )
            for item in reply
        ]
    except (KeyError, TypeError) as exc:
        raise ProtocolError(f"unexpected reply to describe: {reply!r:.200} ({exc})") from None


def raw_method_spec(interface: str, method: MethodDescription, nargs: int) -> MethodSpec:
    """A spec that sends `nargs` arguments as they are and returns results undecoded
    (structs as dicts): the plugin checks the arguments against its real signature."""
    names = [p.name for p in method.params[:nargs]]
    names += [f"arg{i}" for i in range(len(names), nargs)]
    spec = MethodSpec(
        interface=interface,
        name=method.name,
        params=tuple(names),
        param_types=(Any,) * nargs,
        defaults=(),
        return_type=Any,
        stream=method.stream,
        ref_params={},
        ref_result=None,
    )
    spec._args_type = tuple.__class_getitem__((Any,) * nargs) if nargs else tuple[()]
    spec._needs_result_convert = False
    return spec

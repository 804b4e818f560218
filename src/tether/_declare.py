"""The `Interface` base class and what can be read of a declaration without resolving hints.

Kept apart from _interface (specs and validation, which import typing, inspect and msgspec)
so that a plugin process can define its interfaces and answer its first calls before those
imports (see _firstcall).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: see tether/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar, TypeGuard

    from ._interface import InterfaceSpec

__all__ = ["Interface", "find_interface", "interface_methods", "is_interface", "served_interfaces"]


class Interface:
    """Base class of plugin interfaces.

    Subclass it and declare methods with type hints; the bodies are never called remotely::

        class Calculator(tether.Interface):
            def add(self, a: float, b: float) -> float: ...

    A plugin implements the interface by subclassing it. A host gets a proxy from
    `Client.dispense(name, Calculator)` whose methods run in the plugin's process. Methods may
    be declared `async def`; implementations may be sync or async either way. A method whose
    return hint is an Iterator (or AsyncIterator) streams its items. A parameter annotated
    with an Interface type is passed by reference: the receiver gets a proxy that calls back.
    """

    __tether_spec__: ClassVar[InterfaceSpec | None] = None
    __tether_proxy__: ClassVar[bool] = False


def is_interface(tp: object) -> TypeGuard[type[Interface]]:
    """Whether `tp` is a subclass of Interface (Interface itself is not an interface)."""
    return isinstance(tp, type) and issubclass(tp, Interface) and tp is not Interface


def interface_methods(cls: type[Interface]) -> dict[str, Callable[..., Any]]:
    """The public methods an interface declares (its own and its interface bases'), as the
    functions written in the class bodies."""
    found: dict[str, Callable[..., Any]] = {}
    for klass in reversed(cls.__mro__):
        if not is_interface(klass) or klass.__dict__.get("__tether_proxy__", False):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or not callable(value):
                continue
            if isinstance(value, staticmethod | classmethod):
                continue
            found[name] = value
    return found


def served_interfaces(impl: object) -> list[type[Interface]]:
    """The Interface classes an implementation derives from (or its own class when it
    derives from Interface directly): the interfaces a host may dispense it as."""
    own = type(impl)
    bases = [k for k in own.__mro__[1:] if is_interface(k)]
    if bases:
        return bases
    return [own] if is_interface(own) else []


def find_interface(obj: object, name: str) -> type[Interface] | None:
    """The Interface class called `name` among the classes an implementation derives from."""
    for klass in type(obj).__mro__:
        if klass.__qualname__ == name and is_interface(klass):
            return klass
    return None

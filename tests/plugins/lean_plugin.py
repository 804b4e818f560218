# mypy: disable-error-code="empty-body"
"""A plugin that imports nothing but tether, for tests of what serving costs a plugin.

Run as ``python lean_plugin.py``: it serves `Modules` as "modules", whose `loaded()` lists the
modules the process has imported by then, and `Lopsided` as "lopsided", an implementation of
an interface whose plugin-side definition cannot be served (a ``*args`` method) while the
host's copy of it is fine.
"""

from __future__ import annotations

import sys

import tether

HANDSHAKE = tether.HandshakeConfig(
    protocol_version=1, magic_cookie_key="TETHER_LEAN_COOKIE", magic_cookie_value="lean"
)


class Modules(tether.Interface):
    def loaded(self) -> list[str]: ...


class ModulesImpl(Modules):
    def loaded(self) -> list[str]:
        return sorted(sys.modules)


class Lopsided(tether.Interface):
    def total(self, *values: int) -> int: ...


class LopsidedImpl(Lopsided):
    def total(self, *values: int) -> int:
        return sum(values)


if __name__ == "__main__":
    tether.serve(HANDSHAKE, plugins={"modules": ModulesImpl(), "lopsided": LopsidedImpl()})

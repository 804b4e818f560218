"""What a plugin's start-up pays for, checked in real plugin processes (never timed here:
`make bench` measures spawn times)."""

from __future__ import annotations

import sys

import pytest

import tether
from conftest import PLUGINS_DIR
from plugins.lean_plugin import HANDSHAKE, Modules

LEAN = [sys.executable, str(PLUGINS_DIR / "lean_plugin.py")]

# Modules that serving a native interface never needs: the host side, asyncio, the gRPC
# machinery, TLS, the hclog formatter (and json) before a record is logged, tempfile/shutil.
NOT_ON_THE_SERVE_PATH = (
    "asyncio",
    "json",
    "shutil",
    "ssl",
    "subprocess",
    "tempfile",
    "tether._aio",
    "tether._client",
    "tether._grpc_broker",
    "tether._grpc_server",
    "tether._hclog",
    "tether._launch",
    "tether._mtls",
    "tether._process",
)


def test_a_native_plugin_serves_its_first_call_without_the_host_side() -> None:
    with tether.Client(LEAN, handshake=HANDSHAKE) as client:
        loaded = set(client.dispense("modules", Modules).loaded())
    assert "tether._server" in loaded  # the list does come from the serving process
    assert sorted(loaded.intersection(NOT_ON_THE_SERVE_PATH)) == []


class Lopsided(tether.Interface):
    """The host's copy of the plugin's Lopsided: the same name, a method that can be served."""

    def total(self, a: int, b: int) -> int: ...  # type: ignore[empty-body]


def test_an_interface_that_cannot_be_served_fails_its_dispense_not_the_start() -> None:
    # The plugin reads its interfaces' specs ahead of the first dispense; one that cannot be
    # read must still start the plugin, serve the others, and fail only when dispensed.
    with tether.Client(LEAN, handshake=HANDSHAKE) as client:
        assert "tether._server" in client.dispense("modules", Modules).loaded()
        with pytest.raises(tether.RemoteError, match=r"\*args, \*\*kwargs and keyword-only"):
            client.dispense("lopsided", Lopsided)
        client.ping()

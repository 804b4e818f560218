"""Shared fixtures: clients of the helper plugin that are always killed at teardown."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

import tether
from plugins.helper import ENV_PIDFILE, HANDSHAKE

PLUGINS_DIR = Path(__file__).parent / "plugins"
HELPER = str(PLUGINS_DIR / "helper.py")
HOST_THEN_DIE = str(PLUGINS_DIR / "host_then_die.py")

MakeClient = Callable[..., tether.Client]

# No per-example time limit: speed is measured by `make bench`, and on a loaded 2-core machine
# hypothesis's 200 ms default fails correct code.
settings.register_profile("tether", deadline=None)
settings.load_profile("tether")


def helper_cmd(mode: str) -> list[str]:
    return [sys.executable, HELPER, mode]


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    """Build a `tether.Client` for a helper mode; every client made is killed at teardown."""
    clients: list[tether.Client] = []

    def make(mode: str = "healthy", **kwargs: Any) -> tether.Client:
        kwargs.setdefault("handshake", HANDSHAKE)
        kwargs.setdefault("name", "helper")
        client = tether.Client(helper_cmd(mode), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.kill()


@pytest.fixture
def pidfile(tmp_path: Path) -> Iterator[Path]:
    """Where the helper writes its pid (pass `env=pidfile_env(pidfile)` to the client).

    At teardown a process still running under that pid is SIGKILLed, so a test that finds a
    leaked plugin fails without leaking it further.
    """
    path = tmp_path / "plugin.pid"
    yield path
    if path.exists():
        try:
            os.kill(int(path.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def pidfile_env(path: Path) -> dict[str, str]:
    return {ENV_PIDFILE: str(path)}

"""Plugins never outlive their host: kill every live client at exit and on SIGTERM."""

from __future__ import annotations

import atexit
import os
import signal
import threading
from types import FrameType
from typing import Protocol

__all__ = ["register", "unregister"]


class _Killable(Protocol):
    def _kill_at_exit(self) -> None: ...


_live: set[_Killable] = set()
_lock = threading.Lock()
_installed = False


def register(client: _Killable) -> None:
    global _installed
    with _lock:
        _live.add(client)
        if _installed:
            return
        _installed = True
    atexit.register(kill_all)
    _install_sigterm()


def unregister(client: _Killable) -> None:
    with _lock:
        _live.discard(client)


def kill_all() -> None:
    """Kill every live plugin, in parallel so that N plugins cost one grace period."""
    with _lock:
        clients = list(_live)
        _live.clear()
    threads = [threading.Thread(target=c._kill_at_exit, daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5.0)


def _install_sigterm() -> None:
    # Only replace the default disposition: an application that handles SIGTERM itself
    # stays in charge (and its exit still runs kill_all through atexit).
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    kill_all()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)

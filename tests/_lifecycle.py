"""Polling helpers for tests that watch processes come and go."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the command name, which is in parentheses and may contain spaces.
    return stat.rpartition(")")[2].split()[0] == "Z"


def pid_gone(pid: int) -> bool:
    """The process no longer runs: it does not exist, or it is a zombie nobody reaped yet.

    Zombies count as gone because a plugin orphaned by a dead host is reparented to pid 1 (or a
    subreaper), and whether that reaps promptly depends on the machine, not on tether.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return is_zombie(pid)


def pid_reaped(pid: int) -> bool:
    """The process does not exist at all: it exited and its parent collected its status."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def read_pid(path: Path, timeout: float = 5.0) -> int:
    """The pid a helper wrote to `path` (waits for the file to appear)."""
    assert wait_until(lambda: path.exists() and path.read_text().strip() != "", timeout), (
        f"the helper never wrote its pid to {path}"
    )
    return int(path.read_text())

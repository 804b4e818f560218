"""Per-call context: the plugin side's view of the call it runs, the host side's timeouts."""

from __future__ import annotations

import threading
from contextvars import ContextVar

from ._errors import TetherError

TYPE_CHECKING = False  # not typing's: a plugin answers its first call before importing it
if TYPE_CHECKING:
    from collections.abc import Callable
    from contextvars import Token
    from typing import Final

__all__ = ["CallContext", "current_call", "timeout"]

CURRENT: Final[ContextVar[CallContext | None]] = ContextVar("tether_call", default=None)
# The limit set by an enclosing `timeout()` block: UNSET outside any block, None for "no
# limit" (which also lifts a proxy's default timeout).
UNSET: Final = -1.0
TIMEOUT: Final[ContextVar[float | None]] = ContextVar("tether_timeout", default=UNSET)


def effective_timeout(default: float | None) -> float | None:
    """The limit for a call: an enclosing `timeout()` block wins over the proxy's default."""
    limit = TIMEOUT.get()
    return default if limit == UNSET else limit


class CallContext:
    """The call a plugin method is running for; reach it with `tether.current_call()`.

    Long-running synchronous implementations poll `cancelled` (or wait on it) to stop early
    when the host cancels the call or its timeout expires; async implementations are
    cancelled with `asyncio.CancelledError` instead.
    """

    __slots__ = ("_cancel_hooks", "_event", "_is_cancelled", "call_id", "method")

    def __init__(self, call_id: int, method: str) -> None:
        self.call_id = call_id
        self.method = method
        # Created on first use: a threading.Event costs more than the rest of a call.
        self._event: threading.Event | None = None
        self._is_cancelled = False
        self._cancel_hooks: list[Callable[[], None]] | None = None

    @property
    def cancelled(self) -> threading.Event:
        """Set once the host has cancelled this call."""
        if self._event is None:
            event = threading.Event()
            if self._is_cancelled:
                event.set()
            self._event = event
        return self._event

    def is_cancelled(self) -> bool:
        return self._is_cancelled

    def cancel(self) -> None:
        if self._is_cancelled:
            return
        self._is_cancelled = True
        if self._event is not None:
            self._event.set()
        for hook in self._cancel_hooks or ():
            hook()

    def on_cancel(self, hook: Callable[[], None]) -> None:
        if self._is_cancelled:
            hook()
        elif self._cancel_hooks is None:
            self._cancel_hooks = [hook]
        else:
            self._cancel_hooks.append(hook)


def current_call() -> CallContext:
    """The context of the call the current plugin method runs for."""
    ctx = CURRENT.get()
    if ctx is None:
        raise TetherError("current_call() is only available inside a plugin method call")
    return ctx


def timeout(seconds: float | None) -> _TimeoutBlock:
    """Give calls made in this block (in this thread or task) a deadline of `seconds`.

    A call that does not finish in time raises `CallTimeoutError`, and the plugin is told to
    cancel it. `None` means no limit, lifting an enclosing block's or the proxy's default.
    """
    if seconds is not None and seconds <= 0:
        raise ValueError(f"timeout must be positive, got {seconds}")
    return _TimeoutBlock(seconds)


class _TimeoutBlock:
    """The `with` block of timeout(): a class, not contextlib.contextmanager, whose import
    would cost a plugin's start-up a millisecond (this module is on its first call's path)."""

    __slots__ = ("_seconds", "_tokens")

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds
        self._tokens: list[Token[float | None]] = []

    def __enter__(self) -> None:
        self._tokens.append(TIMEOUT.set(self._seconds))

    def __exit__(self, *exc: object) -> None:
        TIMEOUT.reset(self._tokens.pop())


def set_current(ctx: CallContext | None) -> object:
    return CURRENT.set(ctx)


def reset_current(token: object) -> None:
    CURRENT.reset(token)  # type: ignore[arg-type]

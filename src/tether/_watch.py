"""Auto-scan: discovery run again whenever the discovery paths change.

A `Watcher` runs discovery in a background thread and calls `on_change(discovery)` with the
first scan and then whenever the plugins found (or the problems) differ from the last call.
With `discovery.watch` true the existing discovery paths are watched with the `watchfiles`
library (inotify on Linux, FSEvents on macOS), so a plugin dropped into a watched folder is seen
within a second or so; a full rescan also runs every `scan_interval` seconds, which catches
paths that did not exist yet and entry points installed meanwhile. With `watch` false the
paths are polled every `scan_interval` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import watchfiles

from ._config import ManagerConfig
from ._discovery import Discovery, discover
from ._handshake import HandshakeConfig

__all__ = ["Watcher"]

log = logging.getLogger("tether.watch")

# Changes closer together than this are one change (an editor's save, `cp -r` of a folder).
_DEBOUNCE_MS = 200
# How often the watch loop checks whether it was asked to stop.
_STEP_MS = 50
# How often the watching thread wakes without a change: to rescan once right after the watch
# starts, and every `scan_interval` seconds (entry points, paths that did not exist yet).
_WAKE_MS = 1000


class Watcher:
    """Runs discovery again when the discovery paths change; see the module docstring."""

    def __init__(
        self,
        config: ManagerConfig,
        on_change: Callable[[Discovery], None],
        *,
        source: str = "configuration",
        environ: Mapping[str, str] | None = None,
        handshake: HandshakeConfig | None = None,
    ) -> None:
        self._config = config
        self._on_change = on_change
        self._source = source
        self._environ = environ
        self._handshake = handshake
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._last: Discovery | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching in a daemon thread (the first scan happens there)."""
        if self._thread is not None:
            raise RuntimeError("this Watcher was already started")
        self._thread = threading.Thread(target=self._run, name="tether-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and wait for the thread (it notices within a fraction of a second,
        unless `on_change` is still running)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def scan(self) -> Discovery:
        """Run discovery now; calls `on_change` if the result differs from the last one."""
        # One scan at a time: a slow scan must not report after a newer one.
        with self._lock:
            try:
                found = discover(
                    self._config,
                    source=self._source,
                    environ=self._environ,
                    handshake=self._handshake,
                )
            except Exception:
                log.exception("plugin discovery failed; keeping the last result")
                return self._last if self._last is not None else Discovery()
            if self._last is None or not _same(self._last, found):
                self._last = found
                try:
                    self._on_change(found)
                except Exception:
                    log.exception("the plugin discovery callback failed")
        return found

    # ----------------------------------------------------------------------------------

    def _existing_paths(self) -> list[Path]:
        return [path for path in self._config.discovery.paths if path.is_dir()]

    def _run(self) -> None:
        interval = self._config.discovery.scan_interval
        while not self._stop.is_set():
            self.scan()
            paths = self._existing_paths() if self._config.discovery.watch else []
            if not paths:
                self._stop.wait(interval)
                continue
            try:
                self._watch(paths, interval)
            except Exception:
                # inotify limits, a path removed under us...: poll until the next round.
                log.warning("cannot watch %s; polling instead", paths, exc_info=True)
                self._stop.wait(interval)

    def _watch(self, paths: list[Path], interval: float) -> None:
        """Rescan on every change until the set of existing paths changes or it is stopped."""
        # The watch starts a moment after the scan before it: the first wake-up rescans, so
        # a plugin dropped in between is not left for the next full rescan, `interval` later.
        rescanned_since_start = False
        last_scan = time.monotonic()
        for changes in watchfiles.watch(
            *paths,
            stop_event=self._stop,
            debounce=_DEBOUNCE_MS,
            step=_STEP_MS,
            rust_timeout=_WAKE_MS,
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            if self._stop.is_set():
                return
            due = time.monotonic() - last_scan >= interval
            if changes or due or not rescanned_since_start:
                rescanned_since_start = True
                last_scan = time.monotonic()
                self.scan()
            if self._existing_paths() != paths:
                return  # a path appeared or went: watch the new set


def _same(a: Discovery, b: Discovery) -> bool:
    return a.specs == b.specs and sorted(a.problems) == sorted(b.problems)

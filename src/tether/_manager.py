"""The plugin manager: many plugins, verified, started in dependency order, watched, stopped.

`PluginManager` owns one `Pool` per running plugin and adds what spans plugins:

- verification before every start (checksum, ed25519 signature, problems discovery found),
  so an unverified file is never executed;
- dependency order: `_resolve.resolve()` over the manifests before anything starts (every
  missing, conflicting or cyclic dependency reported at once), dependents of a failed plugin
  not started, shutdown in reverse order with independent plugins stopped in parallel;
- one stream of events (its own and every pool's) with a bounded history;
- `apply()`, which makes the known set of plugins equal to a new scan.

Two locks: `_ops` serialises operations that start or stop processes (they take seconds),
`_lock` guards the bookkeeping and is held only briefly, never while calling a pool or a
subscriber, so events arriving from pool threads never wait for an operation to finish.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, overload

from ._config import ManagerConfig, SecuritySettings, load_config
from ._discovery import Discovery, discover
from ._errors import (
    ConfigError,
    PluginNotRunningError,
    PluginStartError,
    TetherError,
    UnknownPluginError,
)
from ._events import HealthResult, PluginEvent, PluginState, PluginStatus
from ._grpc_broker import GRPCPlugin
from ._handshake import HandshakeConfig
from ._interface import Interface
from ._pool import Pool
from ._resolve import DependencyError, resolve
from ._spec import PluginSpec
from ._watch import Watcher

__all__ = ["EVENT_HISTORY", "PluginManager", "verify_spec"]

T = TypeVar("T", bound=Interface)
S = TypeVar("S")

# How many events `events()` remembers.
EVENT_HISTORY = 1000

# A pool in one of these states has processes (or is bringing them up): not started again.
_ACTIVE = frozenset(
    {PluginState.STARTING, PluginState.HANDSHAKING, PluginState.CONNECTED, PluginState.RUNNING}
)

# An instance reaching the key of this map moves a plugin that is at its value along.
_STARTUP_STEP = {
    PluginState.HANDSHAKING: PluginState.STARTING,
    PluginState.CONNECTED: PluginState.HANDSHAKING,
}


class _Refused(TetherError):
    """Verification refused a plugin before anything was executed."""


def verify_spec(spec: PluginSpec, security: SecuritySettings) -> None:
    """Every check due before `spec`'s file is executed; raises a `TetherError` saying why
    and how to fix it (`ChecksumMismatchError`, `VerificationError` or a refusal)."""
    if spec.problem is not None:
        raise _Refused(spec.problem)
    checksum = spec.settings.checksum
    if checksum is None and security.require_checksum:
        raise _Refused(
            f"{spec.name} has no checksum and security.require_checksum is true; it was not "
            f"started. To fix: set plugins.{spec.name}.checksum to the output of "
            f"`sha256sum {spec.verify_file or '<plugin file>'}`"
        )
    if checksum is None and not security.require_signature:
        return
    if spec.verify_file is None:
        raise _Refused(
            f"{spec.name}: there is no file to verify (the command's program was not found); "
            f"it was not started. To fix: set plugins.{spec.name}.verify_path to the plugin's "
            "file"
        )
    from ._signing import verify_plugin  # loads `cryptography`; only needed here

    verify_plugin(
        spec.verify_file,
        checksum=checksum,
        require_signature=security.require_signature,
        trusted_keys=security.trusted_keys,
        name=spec.name,
    )


@dataclass(slots=True)
class _Entry:
    """The manager's record of one plugin."""

    spec: PluginSpec
    state: PluginState = PluginState.DISCOVERED
    reason: str | None = None
    pool: Pool | None = None
    # Identifies the current pool: events of a replaced pool are dropped.
    token: object | None = None


class PluginManager:
    """Many plugins, each a `Pool` of instances, started and stopped as one system."""

    def __init__(
        self,
        specs: Iterable[PluginSpec] = (),
        *,
        security: SecuritySettings | None = None,
        rng: random.Random | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config: ManagerConfig | None = None
        # What `from_config` discovered with, so `watch()` rediscovers the same way.
        self._discovery: tuple[str, Mapping[str, str] | None, HandshakeConfig | None] | None = None
        self._watcher: Watcher | None = None
        self.security = security or SecuritySettings()
        self.logger = logger or logging.getLogger("tether.manager")
        # Pools log under `tether.pool.<name>` unless the host chose a logger.
        self._pool_logger = logger
        self._rng = rng or random.Random()
        self._ops = threading.RLock()
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._history: deque[PluginEvent] = deque(maxlen=EVENT_HISTORY)
        self._subscribers: list[Callable[[PluginEvent], None]] = []
        # Whether start() was called since the last stop of everything: apply() starts
        # newly found plugins only then.
        self._started = False
        for spec in specs:
            if spec.name in self._entries:
                raise ConfigError(
                    f"plugin {spec.name!r} is given twice ({self._entries[spec.name].spec.source}"
                    f" and {spec.source}); names must be unique"
                )
            self._add(spec)

    @classmethod
    def from_config(
        cls,
        config: ManagerConfig | str | os.PathLike[str],
        *,
        handshake: HandshakeConfig | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> PluginManager:
        """A manager for the plugins a configuration (a `ManagerConfig` or a YAML file)
        lists. Raises `ConfigFileError` for an invalid file, and one `ConfigError` with a
        line per plugin that cannot be set up; nothing is started."""
        if isinstance(config, ManagerConfig):
            loaded, source = config, "configuration"
        else:
            loaded, source = load_config(config, environ), os.fspath(config)
        found = discover(loaded, source=source, environ=environ, handshake=handshake)
        if found.problems:
            count = f"{len(found.problems)} plugin" + ("s" if len(found.problems) != 1 else "")
            raise ConfigError(
                f"{source}: {count} cannot be set up:\n"
                + "\n".join(f"  - {problem}" for problem in found.problems)
            )
        manager = cls(found.specs, security=loaded.security)
        manager.config = loaded
        manager._discovery = (source, environ, handshake)
        return manager

    # ----------------------------------------------------------------------------------
    # What is known.

    def plugins(self) -> list[PluginSpec]:
        """Every known plugin's spec, by name."""
        with self._lock:
            return [self._entries[name].spec for name in sorted(self._entries)]

    def state(self, name: str) -> PluginState:
        """Where plugin `name` is in its life (as its last plugin-level event said)."""
        with self._lock:
            return self._entry(name).state

    def reason(self, name: str) -> str | None:
        """Why plugin `name` failed, while it is failed."""
        with self._lock:
            entry = self._entry(name)
            return entry.reason if entry.state is PluginState.FAILED else None

    def pool(self, plugin: str) -> Pool:
        """The pool running `plugin` (PluginNotRunningError if it has none)."""
        with self._lock:
            entry = self._entry(plugin)
            if entry.pool is None:
                raise PluginNotRunningError(self._not_running(plugin, entry))
            return entry.pool

    # ----------------------------------------------------------------------------------
    # Starting.

    def start(self, names: Iterable[str] | None = None, *, strict: bool = True) -> None:
        """Start `names` (default: every plugin) and everything they depend on.

        Dependencies are resolved first: `DependencyError` lists every problem and nothing
        starts. Each plugin is verified, then its pool started, dependencies first (plugins
        that do not depend on each other start in parallel). A plugin that fails is FAILED
        with its reason, and its dependents are not started. With `strict`, any failure
        stops what this call started and raises `PluginStartError`; otherwise the rest keep
        running.
        """
        with self._ops:
            self._started = True
            order = self._start_order(None if names is None else list(names))
            started, failures = self._start_in_order(order)
            if failures and strict:
                self._stop_names(started[::-1], None)
                raise PluginStartError(failures)

    def retry(self, plugin: str) -> None:
        """Start a FAILED plugin again: verified again, with a fresh restart budget. Its
        dependents that were not started because it failed are started too (non-strict).
        Raises `PluginStartError` if it fails again."""
        with self._ops:
            with self._lock:
                entry = self._entry(plugin)
                if entry.state is not PluginState.FAILED:
                    raise PluginNotRunningError(
                        f"plugin {plugin!r} is {entry.state}, not failed; only a failed "
                        "plugin can be retried"
                    )
            order = self._start_order([plugin])
            _, failures = self._start_in_order(order)
            if plugin in failures:
                raise PluginStartError({plugin: failures[plugin]})
            waiting = self._dependents_waiting_on(plugin)
            if waiting:
                self._start_in_order(self._start_order(waiting))

    def _start_order(self, names: list[str] | None) -> list[str]:
        """`names` and their dependencies in start order; DependencyError if unresolvable."""
        with self._lock:
            if names is None:
                wanted = list(self._entries)
            else:
                for name in names:
                    self._entry(name)
                wanted = names
            closure: set[str] = set()
            todo = list(wanted)
            while todo:
                name = todo.pop()
                if name in closure or name not in self._entries:
                    continue  # an unknown dependency: resolve() reports it as missing
                closure.add(name)
                todo.extend(self._entries[name].spec.manifest.requires)
            manifests = [self._entries[name].spec.manifest for name in sorted(closure)]
        return resolve(manifests)

    def _start_in_order(self, order: list[str]) -> tuple[list[str], dict[str, str]]:
        """Start each plugin of `order` that is not active, a level at a time: plugins whose
        dependencies are all in earlier levels start in parallel. (started, failures)."""
        started: list[str] = []
        failures: dict[str, str] = {}
        for level in self._start_levels(order):
            if len(level) == 1:
                results = [self._start_checked(level[0])]
            else:
                with ThreadPoolExecutor(
                    max_workers=len(level), thread_name_prefix="tether-start"
                ) as pool:
                    results = list(pool.map(self._start_checked, level))
            for name, (was_started, error) in zip(level, results, strict=True):
                if error is not None:
                    failures[name] = error
                elif was_started:
                    started.append(name)
        return started, failures

    def _start_levels(self, order: list[str]) -> list[list[str]]:
        """`order` (dependencies first) grouped: each plugin one level after its deepest
        dependency."""
        with self._lock:
            depth: dict[str, int] = {}
            for name in order:
                deps = [d for d in self._entries[name].spec.manifest.requires if d in depth]
                depth[name] = 1 + max((depth[d] for d in deps), default=-1)
        levels: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for name in order:
            levels[depth[name]].append(name)
        return levels

    def _start_checked(self, name: str) -> tuple[bool, str | None]:
        """Start `name` unless it is active or a dependency is not running:
        (started now, why it failed)."""
        with self._lock:
            entry = self._entries[name]
            if entry.pool is not None and entry.state in _ACTIVE:
                return False, None
            spec = entry.spec
            blocked = self._blocking_dependency(spec)
        if blocked is not None:
            self._set_state(name, PluginState.FAILED, blocked)
            return False, blocked
        error = self._start_one(name, spec)
        return error is None, error

    def _blocking_dependency(self, spec: PluginSpec) -> str | None:
        """Why `spec` cannot start because of a dependency, or None. Caller holds `_lock`."""
        for dep in sorted(spec.manifest.requires):
            state = self._entries[dep].state
            if state is PluginState.FAILED:
                return f"dependency {dep} failed"
            if state is not PluginState.RUNNING:
                return f"dependency {dep} is not running (it is {state})"
        return None

    def _start_one(self, name: str, spec: PluginSpec) -> str | None:
        """Verify and start one plugin; the reason it failed, or None."""
        with self._lock:
            entry = self._entries[name]
            old, entry.pool, entry.token = entry.pool, None, None
        if old is not None:
            old.stop()  # a failed or stopped pool: its events are no longer wanted
        self._set_state(name, PluginState.VALIDATING)
        try:
            verify_spec(spec, self.security)
        except TetherError as exc:
            reason = str(exc)
            self.logger.error("plugin %s refused: %s", name, reason)
            self._set_state(name, PluginState.FAILED, reason, exc)
            return reason
        token = object()
        pool = Pool(
            spec,
            emit=lambda event: self._on_pool_event(token, event),
            rng=random.Random(self._rng.random()),
            logger=None if self._pool_logger is None else self._pool_logger.getChild(name),
            verify=lambda: verify_spec(spec, self.security),
        )
        with self._lock:
            entry = self._entries[name]
            entry.pool, entry.token = pool, token
        try:
            pool.start()
        except Exception as exc:  # any start error marks the plugin failed, with its text
            reason = str(exc) or type(exc).__name__
            self.logger.error("plugin %s failed to start: %s", name, reason)
            self._set_state(name, PluginState.FAILED, reason, exc)
            return reason
        with self._lock:
            state = self._entries[name].state
        if state is not PluginState.RUNNING:
            # The pool reports its state through events; make sure ours agrees.
            self._set_state(name, pool.state)
        return None

    def _dependents_waiting_on(self, plugin: str) -> list[str]:
        """Failed plugins that were not started because `plugin` (transitively) failed."""
        with self._lock:
            out: list[str] = []
            frontier = {plugin}
            changed = True
            while changed:
                changed = False
                for name, entry in sorted(self._entries.items()):
                    if name in out or entry.state is not PluginState.FAILED:
                        continue
                    reason = entry.reason or ""
                    if any(
                        dep in frontier and reason.startswith(f"dependency {dep} ")
                        for dep in entry.spec.manifest.requires
                    ):
                        out.append(name)
                        frontier.add(name)
                        changed = True
            return out

    # ----------------------------------------------------------------------------------
    # Using running plugins.

    @overload
    def dispense(self, plugin: str, interface: type[T], name: str | None = None) -> T: ...

    @overload
    def dispense(
        self, plugin: str, interface: GRPCPlugin[S] | type[GRPCPlugin[S]], name: str | None = None
    ) -> S: ...

    def dispense(self, plugin: str, interface: Any, name: str | None = None) -> Any:
        """A load-balanced proxy for `plugin`'s implementation `name` (default: the plugin's
        name) as `interface`."""
        with self._lock:
            entry = self._entry(plugin)
            pool = entry.pool
            if pool is None or entry.state not in _ACTIVE:
                raise PluginNotRunningError(self._not_running(plugin, entry))
        return pool.dispense(interface, name)

    def scale(self, plugin: str, instances: int) -> None:
        """Run `instances` instances of `plugin` from now on."""
        if instances < 1:
            raise ConfigError(f"instances: got {instances}, expected an integer >= 1")
        with self._ops:
            self.pool(plugin).scale(instances)

    def health(self) -> list[HealthResult]:
        """Ping every instance of every running plugin now."""
        with self._lock:
            pools = [
                entry.pool
                for _, entry in sorted(self._entries.items())
                if entry.pool is not None and entry.state in _ACTIVE
            ]
        out: list[HealthResult] = []
        for pool in pools:
            out.extend(pool.ping())
        return out

    def status(self) -> list[PluginStatus]:
        """Every known plugin, by name, also those not started or failed."""
        with self._lock:
            entries = [(name, dataclasses.replace(e)) for name, e in sorted(self._entries.items())]
        out: list[PluginStatus] = []
        for name, entry in entries:
            reason = entry.reason if entry.state is PluginState.FAILED else None
            if entry.pool is not None:
                status = entry.pool.status()
                out.append(dataclasses.replace(status, state=entry.state, reason=reason))
            else:
                out.append(
                    PluginStatus(
                        name=name,
                        version=str(entry.spec.manifest.version),
                        state=entry.state,
                        instances=(),
                        restarts=0,
                        calls=0,
                        errors=0,
                        average_latency=0.0,
                        reason=reason,
                        source=entry.spec.source,
                    )
                )
        return out

    # ----------------------------------------------------------------------------------
    # Events.

    def subscribe(self, callback: Callable[[PluginEvent], None]) -> Callable[[], None]:
        """Call `callback` with every event from now on, on the thread that made the change.
        Returns the function that unsubscribes it. A callback that raises is logged."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def events(self) -> list[PluginEvent]:
        """The most recent events (up to `EVENT_HISTORY`), oldest first."""
        with self._lock:
            return list(self._history)

    def _set_state(
        self,
        name: str,
        state: PluginState,
        reason: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Record and announce a plugin-level change the manager itself made."""
        with self._lock:
            entry = self._entries.get(name)
            previous = entry.state if entry is not None else None
            if entry is not None:
                if previous is state and (state is not PluginState.FAILED or not reason):
                    return
                entry.state = state
                entry.reason = reason if state is PluginState.FAILED else None
                if previous is state:  # FAILED again with a better reason: no new event
                    return
        event = PluginEvent(name, None, state, previous, time.time(), reason or "", error)
        self._publish(event)

    def _on_pool_event(self, token: object, event: PluginEvent) -> None:
        """A pool's event: plugin-level ones update our record (and say what the plugin
        was before, as the manager knew it); events of a replaced pool are dropped.

        A pool reports handshaking and connected for its instances only; the first instance
        to get there moves the plugin along too, so a plugin's own events follow the whole
        lifecycle (starting → handshaking → connected → running).
        """
        promoted: PluginEvent | None = None
        with self._lock:
            entry = self._entries.get(event.plugin)
            if entry is None or entry.token is not token:
                return
            if event.instance is None:
                if event.state is PluginState.FAILED:
                    entry.reason = event.message or (
                        str(event.error) if event.error is not None else entry.reason
                    )
                if event.state is entry.state:
                    return  # plugin-level events announce changes only
                event = dataclasses.replace(event, previous=entry.state)
                entry.state = event.state
            elif _STARTUP_STEP.get(event.state) is entry.state:
                promoted = PluginEvent(
                    event.plugin, None, event.state, entry.state, event.time, event.message
                )
                entry.state = event.state
        self._publish(event)
        if promoted is not None:
            self._publish(promoted)

    def _publish(self, event: PluginEvent) -> None:
        with self._lock:
            self._history.append(event)
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:
                self.logger.exception("event subscriber %r failed on %s", callback, event)

    # ----------------------------------------------------------------------------------
    # Rescans.

    def apply(self, specs: Iterable[PluginSpec]) -> tuple[list[str], list[str], list[str]]:
        """Make the known plugins exactly `specs`; returns (added, removed, changed) names.

        Removed plugins are stopped (dependents first) and forgotten; changed ones (any
        field of the spec differs) are stopped and, if they were running or failed, started
        again with the new spec; added ones are started if the manager has been started.
        Starting here is non-strict: a failure leaves that plugin FAILED and is logged.
        """
        new: dict[str, PluginSpec] = {}
        for spec in specs:
            if spec.name in new:
                raise ConfigError(
                    f"plugin {spec.name!r} is given twice ({new[spec.name].source} and "
                    f"{spec.source}); names must be unique"
                )
            new[spec.name] = spec
        with self._ops:
            with self._lock:
                known = {name: (e.spec, e.state) for name, e in self._entries.items()}
            added = sorted(set(new) - set(known))
            removed = sorted(set(known) - set(new))
            changed = sorted(n for n in set(new) & set(known) if new[n] != known[n][0])
            restart = [
                name
                for name in changed
                if known[name][1] in _ACTIVE or known[name][1] is PluginState.FAILED
            ]
            # Plugins that stay but depend on a removed one cannot keep running.
            levels = self._stop_levels(removed, include_dependents=True)
            for level in levels:
                self._stop_level(level, None)
            orphans = [n for level in levels for n in level if n not in removed]
            for name in orphans:
                deps = known[name][0].manifest.requires
                gone = sorted(set(deps) & set(removed))
                why = (
                    f"dependency {', '.join(gone)} was removed"
                    if gone
                    else f"dependency {', '.join(sorted(set(deps) & set(orphans)))} failed"
                )
                self._set_state(name, PluginState.FAILED, why)
            with self._lock:
                for name in removed:
                    del self._entries[name]
            for level in self._stop_levels(changed, include_dependents=False):
                self._stop_level(level, None)
            for name in changed:
                with self._lock:
                    entry = self._entries[name]
                    entry.spec = new[name]
                    entry.pool, entry.token = None, None
                self._set_state(name, PluginState.DISCOVERED, new[name].source)
            for name in added:
                self._add(new[name])
            # Plugins left failed because a dependency was missing get another chance.
            waiting = {w for name in added for w in self._dependents_waiting_on(name)}
            retry = sorted(waiting - set(restart))
            if self._started and (restart or added or retry):
                self._start_quietly(restart + added + retry)
        return added, removed, changed

    def _start_quietly(self, names: list[str]) -> None:
        """Non-strict start for `apply()`: dependency problems fail the plugins involved."""
        try:
            order = self._start_order(names)
        except DependencyError as exc:
            self.logger.error("%s", exc)
            for name in names:
                self._set_state(name, PluginState.FAILED, str(exc), exc)
            return
        _, failures = self._start_in_order(order)
        for name, reason in failures.items():
            self.logger.warning("plugin %s not started: %s", name, reason)

    def _add(self, spec: PluginSpec) -> None:
        with self._lock:
            self._entries[spec.name] = _Entry(spec)
        self._publish(
            PluginEvent(spec.name, None, PluginState.DISCOVERED, None, time.time(), spec.source)
        )

    # ----------------------------------------------------------------------------------
    # Stopping.

    def stop(self, names: Iterable[str] | None = None, timeout: float | None = None) -> None:
        """Stop `names` (default: every plugin) and the running plugins that depend on them,
        dependents first; plugins that do not depend on each other stop in parallel.
        Idempotent; failed plugins stay FAILED (their processes are cleaned up)."""
        with self._ops:
            if names is None:
                with self._lock:
                    selected = list(self._entries)
                self._started = False
            else:
                selected = list(names)
                with self._lock:
                    for name in selected:
                        self._entry(name)
            for level in self._stop_levels(selected, include_dependents=True):
                self._stop_level(level, timeout)

    def watch(self) -> Watcher:
        """Auto-scan: discover again whenever the configuration's discovery paths change
        (file watching; polling every `scan_interval` as the fallback) and `apply()` what was
        found, so a plugin dropped into a watched folder starts and a removed one stops.
        Needs a manager made by `from_config`; `close()` stops the watcher. Idempotent."""
        if self.config is None or self._discovery is None:
            raise ConfigError("watch() needs a manager made by PluginManager.from_config()")
        if self._watcher is None:
            source, environ, handshake = self._discovery

            def on_change(found: Discovery) -> None:
                for problem in found.problems:
                    self.logger.warning("discovery: %s", problem)
                added, removed, changed = self.apply(found.specs)
                if added or removed or changed:
                    self.logger.info(
                        "discovery: added %s, removed %s, changed %s",
                        added or "none",
                        removed or "none",
                        changed or "none",
                    )

            self._watcher = Watcher(
                self.config, on_change, source=source, environ=environ, handshake=handshake
            )
            self._watcher.start()
        return self._watcher

    def close(self) -> None:
        """Stop the watcher, if any, and every plugin."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
        self.stop()

    def __enter__(self) -> PluginManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _stop_levels(self, names: list[str], *, include_dependents: bool) -> list[list[str]]:
        """`names` grouped for stopping: each group depends on no plugin of a later one.

        Computed from the manifests directly rather than `resolve()`, which refuses broken
        graphs: stopping must work whatever the dependencies say. A cycle's members end up
        in one group.
        """
        with self._lock:
            requires = {
                name: {dep for dep in e.spec.manifest.requires if dep in self._entries}
                for name, e in self._entries.items()
            }
            selected = set(names)
            if include_dependents:
                grew = True
                while grew:
                    extra = {
                        name
                        for name, deps in requires.items()
                        if name not in selected
                        and deps & selected
                        and self._entries[name].pool is not None
                    }
                    selected |= extra
                    grew = bool(extra)
        levels: list[list[str]] = []
        left = set(selected)
        while left:
            # Those no remaining plugin depends on go first.
            level = sorted(n for n in left if not any(n in requires[o] for o in left if o != n))
            if not level:
                level = sorted(left)
            levels.append(level)
            left -= set(level)
        return levels

    def _stop_level(self, names: list[str], timeout: float | None) -> None:
        if len(names) == 1:
            self._stop_names(names, timeout)
            return
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="tether-stop") as ex:
            list(ex.map(lambda name: self._stop_names([name], timeout), names))

    def _stop_names(self, names: list[str], timeout: float | None) -> None:
        """Stop each of `names`, one after another, in that order."""
        for name in names:
            with self._lock:
                entry = self._entries.get(name)
                if entry is None or entry.pool is None:
                    continue
                pool, active = entry.pool, entry.state in _ACTIVE
                if entry.state is PluginState.FAILED:
                    # Cleaning up after a failure: the plugin stays failed, with its reason.
                    entry.token = None
            if active:
                self._set_state(name, PluginState.STOPPING)
            try:
                pool.stop(timeout)
            except Exception:
                self.logger.exception("stopping plugin %s failed", name)
            with self._lock:
                entry = self._entries.get(name)
                if entry is None or entry.pool is not pool:
                    continue
                state = entry.state
            if state is not PluginState.FAILED and state is not PluginState.STOPPED:
                self._set_state(name, PluginState.STOPPED)

    # ----------------------------------------------------------------------------------

    def _entry(self, name: str) -> _Entry:
        """The record of `name`, or UnknownPluginError with a suggestion. Holds `_lock`."""
        entry = self._entries.get(name)
        if entry is not None:
            return entry
        known = sorted(self._entries)
        message = f"unknown plugin {name!r}"
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if close:
            message += f"; did you mean {close[0]!r}?"
        message += f" (known plugins: {', '.join(known) or 'none'})"
        raise UnknownPluginError(message, name)

    def _not_running(self, name: str, entry: _Entry) -> str:
        if entry.state is PluginState.FAILED:
            return (
                f"plugin {name!r} failed: {entry.reason}. Fix the cause, then "
                f"retry it (manager.retry({name!r}))"
            )
        return f"plugin {name!r} is not running (it is {entry.state}); start it first"

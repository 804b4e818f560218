"""A pool: N supervised instances of one plugin behind one proxy.

Each instance is a `tether.Client` run by its own supervisor thread, which starts it, waits
for its process to exit (so a crash is noticed at once, not at the next health check) and
restarts it under the plugin's restart policy: exponential backoff with jitter, and one
restart budget for the whole pool, after which the instance (and, once none runs, the pool)
is FAILED until `retry()`. A health monitor thread pings every running instance and kills one
that misses `health.failures` checks in a row, so a hung (e.g. SIGSTOPped) plugin is replaced.

`dispense()` returns one proxy for all instances: every method call picks a running
instance ("round-robin", or "least-outstanding": the one with the fewest calls in flight) and
makes the call through that instance's own proxy.

Crashes and calls:

- An instance that dies leaves the rotation at once; the calls it had in flight fail with
  `PluginCrashedError`. Such a call is NOT retried elsewhere: the plugin may have acted on it
  before dying.
- A call that finds its instance already dead when it is about to be sent (its process has
  exited or its connection is closed) is sent to another instance instead. (An instance
  dying in the instant between that check and the write is reported like a crash.)
- While no instance runs (all restarting), a call waits up to the start timeout for one and
  then raises `NoInstanceError`; when the pool is failed or stopped it raises at once.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, overload

from ._client import Client
from ._errors import (
    ConfigError,
    ConnectionClosedError,
    NoInstanceError,
    PluginCrashedError,
    TetherError,
)
from ._events import HealthResult, InstanceStatus, PluginEvent, PluginState, PluginStatus
from ._grpc_broker import GRPCPlugin
from ._interface import Interface, spec_of
from ._proxy import sync_proxy
from ._spec import PluginSpec

__all__ = ["Pool"]

T = TypeVar("T", bound=Interface)
S = TypeVar("S")

# How long a scale-down lets the calls in flight on the removed instances finish.
DRAIN_TIMEOUT: Final = 5.0

_STARTING_STATES: Final = frozenset(
    {PluginState.STARTING, PluginState.HANDSHAKING, PluginState.CONNECTED}
)

_ENDED: Final = frozenset({PluginState.FAILED, PluginState.STOPPED})

_Key = tuple[str, Any]  # (plugin name, interface) of one dispense


@dataclass(frozen=True, slots=True)
class _Dispensed:
    """Something dispensed through the pool, to be dispensed again on every instance."""

    name: str
    interface: Any
    grpc: bool
    initialize: bool  # call the interface's initialize(config) on each instance first


@dataclass(eq=False)
class _Instance:
    """One slot of the pool and the process currently filling it."""

    index: int
    state: PluginState = PluginState.DISCOVERED
    client: Client | None = None
    pid: int | None = None
    started_at: float | None = None
    # Set by stop() and scale-down: the process is going away on purpose; no restart.
    halt: threading.Event = field(default_factory=threading.Event)
    # Set once the first start attempt ran or failed (start() and scale() wait for it).
    first_done: threading.Event = field(default_factory=threading.Event)
    first_error: BaseException | None = None
    thread: threading.Thread | None = None
    # Why the pool killed it (failed health checks, initialize raised); None: it died alone.
    kill_reason: str | None = None
    draining: bool = False
    gone: bool = False  # its process exited (the supervisor is catching up)
    next_attempt: float | None = None  # time.monotonic() of the next start, while backing off
    restarts: int = 0
    last_error: str | None = None
    health_failures: int = 0
    # The calls path: each dispensed thing's proxy (or gRPC stub) on this instance.
    targets: dict[_Key, Any] = field(default_factory=dict)
    prepare_lock: threading.Lock = field(default_factory=threading.Lock)
    # Counters, under their own lock: the calls path must not contend on the pool's lock.
    counters: threading.Lock = field(default_factory=threading.Lock)
    calls: int = 0
    errors: int = 0
    latency: float = 0.0
    outstanding: int = 0

    @property
    def label(self) -> str:
        return f"[{self.index}]"


class Pool:
    """N instances of one plugin, load balanced, health checked and restarted.

    `emit` receives a `PluginEvent` for every state change of an instance (`instance` set) and
    of the pool as a whole (`instance=None`), from the pool's threads; it must not block for
    long. Exceptions it raises are logged.
    """

    def __init__(
        self,
        spec: PluginSpec,
        *,
        emit: Callable[[PluginEvent], None] | None = None,
        rng: random.Random | None = None,
        logger: logging.Logger | None = None,
        verify: Callable[[], None] | None = None,
    ) -> None:
        self.name: str = spec.name
        self.spec: PluginSpec = spec
        # Run before every start of every instance, restarts included: a plugin file replaced
        # while the plugin runs must not be executed unchecked when an instance is replaced.
        self._verify = verify
        self._emit_fn = emit
        self._rng = rng or random.Random()
        self.logger = logger or logging.getLogger(f"tether.pool.{spec.name}")
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # the rotation or the phase changed
        self._instances: list[_Instance] = []
        self._rotation: tuple[_Instance, ...] = ()  # RUNNING and not draining; read lock-free
        self._size = spec.settings.instances
        self._state = PluginState.DISCOVERED
        # STOPPING / STOPPED / FAILED set by stop(), a failed start or retry(); None: the
        # state follows the instances.
        self._phase: PluginState | None = PluginState.DISCOVERED
        self._reason: str | None = None
        self._restarts = 0  # restarts of the whole pool, against the budget
        self._rr = itertools.count()
        self._dispensed: dict[_Key, _Dispensed] = {}
        self._health_stop = threading.Event()
        self._health_thread: threading.Thread | None = None
        self._pinger: ThreadPoolExecutor | None = None
        self._ops = threading.Lock()  # one start / stop / scale / retry at a time

    # ----------------------------------------------------------------- state

    @property
    def state(self) -> PluginState:
        """The pool as a whole: RUNNING while at least one instance runs, STARTING while
        instances are (re)starting and none runs, FAILED when nothing could start or the
        restart budget is spent, STOPPING / STOPPED around `stop()`."""
        return self._state

    def _aggregate_locked(self) -> PluginState:
        if self._phase is not None:
            return self._phase
        states = [inst.state for inst in self._instances]
        if PluginState.RUNNING in states:
            return PluginState.RUNNING
        if any(s in _STARTING_STATES or s is PluginState.DISCOVERED for s in states) or any(
            inst.next_attempt is not None for inst in self._instances
        ):
            return PluginState.STARTING
        if PluginState.FAILED in states:
            return PluginState.FAILED
        return PluginState.STOPPED

    def _refresh_locked(self, events: list[PluginEvent], message: str = "") -> None:
        """Recompute the rotation and the pool's state (lock held); queue the pool's event."""
        self._rotation = tuple(
            inst
            for inst in self._instances
            if inst.state is PluginState.RUNNING
            and not (inst.draining or inst.gone or inst.kill_reason is not None)
        )
        state = self._aggregate_locked()
        if state is PluginState.FAILED and self._reason is None:
            failed = [i.last_error for i in self._instances if i.last_error]
            self._reason = failed[-1] if failed else "no instance could run"
        if state is not self._state:
            previous, self._state = self._state, state
            if state is PluginState.FAILED:
                message = message or self._reason or ""
            events.append(self._event(None, state, previous, message))
        self._changed.notify_all()

    def _event(
        self,
        index: int | None,
        state: PluginState,
        previous: PluginState | None,
        message: str = "",
        error: BaseException | None = None,
    ) -> PluginEvent:
        return PluginEvent(self.name, index, state, previous, time.time(), message, error)

    def _set(
        self,
        inst: _Instance,
        state: PluginState,
        message: str = "",
        error: BaseException | None = None,
    ) -> None:
        """Move one instance to `state` and tell the subscriber (outside the lock)."""
        events: list[PluginEvent] = []
        with self._lock:
            previous = inst.state
            inst.state = state
            if state is PluginState.RUNNING:
                inst.started_at = time.time()
                inst.next_attempt = None
            events.append(self._event(inst.index, state, previous, message, error))
            self._refresh_locked(events)
        self._emit(events)

    def _emit(self, events: list[PluginEvent]) -> None:
        for event in events:
            self.logger.debug("%s", event)
            if self._emit_fn is None:
                continue
            try:
                self._emit_fn(event)
            except Exception:
                self.logger.exception("event subscriber failed on %s", event)

    # ----------------------------------------------------------------- start and stop

    def start(self) -> None:
        """Start `spec.settings.instances` instances in parallel and wait for them.

        Raises the start error (e.g. `StartTimeoutError`, `PluginExitedError`,
        `HandshakeError`) if no instance could start; the pool is then FAILED and no process
        of it is left. Instances that failed while others started are retried in the
        background under the restart policy. Does nothing if the pool already runs.
        """
        with self._ops:
            self._start_locked()

    def _start_locked(self) -> None:
        events: list[PluginEvent] = []
        with self._lock:
            if self._phase is None and self._aggregate_locked() not in _ENDED:
                self._restart_ended_locked()
                return
            leftovers = list(self._instances)
        self._halt_all(leftovers)
        with self._lock:
            self._instances = [_Instance(i) for i in range(self._size)]
            self._phase = None
            self._reason = None
            self._refresh_locked(events)
            new = list(self._instances)
        self._emit(events)
        self._launch(new)
        if all(inst.first_error is not None for inst in new):
            error = next((i.first_error for i in new if i.first_error is not None), None)
            self._halt_all(new)
            with self._lock:
                self._phase = PluginState.FAILED
                self._reason = str(error) if error is not None else "no instance could start"
                events = []
                self._refresh_locked(events)
            self._emit(events)
            raise error if error is not None else TetherError(f"{self.name}: {self._reason}")
        self._start_health()

    def _launch(self, instances: list[_Instance]) -> None:
        """Start a supervisor per instance and wait until each has run or failed once."""
        for inst in instances:
            self._supervise_in_thread(inst)
        for inst in instances:
            inst.first_done.wait()

    def stop(self, timeout: float | None = None) -> None:
        """Stop every instance, in parallel: each is asked to shut down and killed if it has
        not exited after `timeout` seconds (default: the client's kill timeout, 2 s).

        Idempotent; when it returns, no process of this pool is alive and its threads are gone.
        """
        with self._ops:
            events: list[PluginEvent] = []
            with self._lock:
                if self._phase in (PluginState.STOPPED, PluginState.DISCOVERED):
                    return
                self._phase = PluginState.STOPPING
                self._refresh_locked(events)
                instances = list(self._instances)
            self._emit(events)
            self._stop_health()
            self._halt_all(instances, timeout)
            with self._lock:
                self._phase = PluginState.STOPPED
                events = []
                self._refresh_locked(events)
            self._emit(events)

    def _halt_all(self, instances: list[_Instance], timeout: float | None = None) -> None:
        """Stop these instances for good (in parallel) and wait for their supervisors."""
        threads = [
            threading.Thread(target=self._halt, args=(inst, timeout), daemon=True)
            for inst in instances
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _halt(self, inst: _Instance, timeout: float | None) -> None:
        with self._lock:
            inst.halt.set()
            client, pid, state = inst.client, inst.pid, inst.state
        if state is PluginState.RUNNING or state is PluginState.CONNECTED:
            self._set(inst, PluginState.STOPPING)
        if client is not None:
            if timeout is not None:
                client.kill_timeout = timeout
            client.kill()
        elif pid is not None:
            _sigkill(pid)  # still handshaking: nothing to ask politely
        if inst.thread is not None and inst.thread is not threading.current_thread():
            inst.thread.join()

    def retry(self) -> None:
        """Reset the restart budget and, if the pool failed or was stopped, start it again
        (raising like `start()` if nothing can start)."""
        with self._ops:
            with self._lock:
                self._restarts = 0
                for inst in self._instances:
                    inst.restarts = 0
            self._start_locked()

    def _restart_ended_locked(self) -> None:
        """Give slots whose supervisor gave up (budget spent, or not restarted by policy) a
        new one, without waiting for it (lock held; for retry() of a running pool)."""
        for pos, inst in enumerate(self._instances):
            if inst.thread is None or inst.thread.is_alive() or inst.halt.is_set():
                continue
            fresh = _Instance(inst.index, state=inst.state, last_error=inst.last_error)
            self._instances[pos] = fresh
            self._supervise_in_thread(fresh)

    # ----------------------------------------------------------------- supervising

    def _supervise_in_thread(self, inst: _Instance) -> None:
        inst.thread = threading.Thread(
            target=self._supervise,
            args=(inst,),
            name=f"tether-pool-{self.name}{inst.label}",
            daemon=True,
        )
        inst.thread.start()

    def _supervise(self, inst: _Instance) -> None:
        """Run one slot: start, watch, restart under the policy until halted or given up."""
        try:
            self._supervise_slot(inst)
        except Exception as exc:
            # A bug here must not leave a slot that looks RUNNING but is not watched.
            self.logger.exception("%s%s: supervisor failed", self.name, inst.label)
            inst.last_error = f"supervisor failed: {exc!r}"
            inst.first_error = inst.first_error or exc
            client = inst.client
            if client is not None:
                client.kill()
            self._set(inst, PluginState.FAILED, inst.last_error, exc)
        finally:
            inst.first_done.set()

    def _supervise_slot(self, inst: _Instance) -> None:
        policy = self.spec.settings.restart
        while not inst.halt.is_set():
            failed, message, error = self._run_once(inst)
            inst.first_done.set()
            if inst.halt.is_set():
                break
            if failed:
                inst.last_error = message
            again = policy.mode == "always" or (policy.mode == "on-failure" and failed)
            if not again:
                inst.next_attempt = None  # no restart is coming: the pool must not wait for one
                state = PluginState.FAILED if failed else PluginState.STOPPED
                self._set(inst, state, message, error)
                return
            with self._lock:
                spent = self._restarts >= policy.max_restarts
                if not spent:
                    delay = policy.delay(self._restarts, self._rng.random())
                    self._restarts += 1
                    inst.restarts += 1
                    inst.next_attempt = time.monotonic() + delay
                else:
                    inst.next_attempt = None
                    budget = (
                        f"restart budget spent ({self._restarts} restarts, max_restarts="
                        f"{policy.max_restarts}); last exit: {message}"
                    )
                    inst.last_error = budget
                    self._reason = budget
            if spent:
                self._set(inst, PluginState.FAILED, budget, error)
                return
            after = PluginState.FAILED if failed else PluginState.STOPPED
            self._set(inst, after, f"{message}; restarting in {delay:.2g} s", error)
            if inst.halt.wait(delay):
                break
        with self._lock:
            inst.next_attempt = None
        if inst.state is not PluginState.STOPPED:
            self._set(inst, PluginState.STOPPED)

    def _run_once(self, inst: _Instance) -> tuple[bool, str, BaseException | None]:
        """One life of the instance: (failed?, what happened, the error)."""
        with self._lock:
            inst.kill_reason = None
            inst.gone = False
            inst.health_failures = 0
            inst.targets = {}
            inst.pid = inst.client = None
        self._set(inst, PluginState.STARTING)
        client = self._client(inst)
        try:
            if self._verify is not None:
                self._verify()
            client.start()
        except TetherError as exc:
            inst.first_error = exc
            return True, str(exc), exc
        with self._lock:
            halted = inst.halt.is_set()
            if not halted:
                inst.client, inst.pid = client, client.pid
        if halted:
            client.kill()
            return False, "stopped", None
        try:
            self._prepare_all(inst, client)
        except Exception as exc:
            client.kill()
            inst.first_error = exc
            if inst.halt.is_set():
                return False, "stopped", None
            return True, f"initialize failed: {exc}", exc
        self._set(inst, PluginState.RUNNING, f"pid {client.pid}")
        inst.first_done.set()
        returncode = client.wait()
        # Out of the rotation at once, before anything slower (the stderr tail) happens.
        with self._lock:
            inst.gone = True
            events: list[PluginEvent] = []
            self._refresh_locked(events)
        self._emit(events)
        if inst.halt.is_set():
            client.kill()
            return False, "stopped", None
        # Let the connection fail with the crash (one ping finds it closed) before kill()
        # does: calls in flight must see PluginCrashedError, not "was killed".
        try:
            client.ping(1.0)
        except Exception:
            pass
        crash = PluginCrashedError(client.name, returncode, client.stderr_tail())
        client.kill()
        if inst.kill_reason is not None:
            return True, inst.kill_reason, crash
        if returncode == 0:
            return False, f"plugin {client.name!r} exited with code 0", None
        return True, str(crash), crash

    def _client(self, inst: _Instance) -> Client:
        spec = self.spec

        def on_state(state: str, pid: int | None) -> None:
            with self._lock:
                inst.pid = pid
                halted = inst.halt.is_set()
            if halted and pid is not None:
                _sigkill(pid)  # stop() came before the pid was known
            elif state == "handshaking":
                self._set(inst, PluginState.HANDSHAKING, f"pid {pid}")
            elif state == "connected":
                self._set(inst, PluginState.CONNECTED)

        return spec.client(
            name=f"{spec.name}[{inst.index}]" if self._size > 1 or inst.index else spec.name,
            logger=logging.getLogger(f"tether.plugin.{spec.name}"),
            on_state=on_state,
        )

    def _prepare_all(self, inst: _Instance, client: Client) -> None:
        with self._lock:
            dispensed = list(self._dispensed.items())
        for key, what in dispensed:
            self._prepare(inst, client, key, what)

    def _prepare(self, inst: _Instance, client: Client, key: _Key, what: _Dispensed) -> Any:
        """Dispense `what` on one instance (and initialize it) unless that was done."""
        with inst.prepare_lock:
            target = inst.targets.get(key)
            if target is None:
                target = client.dispense(what.name, what.interface)
                if what.initialize:
                    target.initialize(dict(self.spec.config))
                inst.targets[key] = target
            return target

    def _take_out(self, inst: _Instance, reason: str) -> None:
        """Kill an instance the pool gave up on; its supervisor applies the restart policy."""
        with self._lock:
            if inst.kill_reason is not None or inst.halt.is_set():
                return
            inst.kill_reason = reason
            pid = inst.pid
            events: list[PluginEvent] = []
            self._refresh_locked(events)
        self._emit(events)
        self.logger.warning("%s%s: %s; killing it", self.name, inst.label, reason)
        if pid is not None:
            _sigkill(pid)

    # ----------------------------------------------------------------- health

    def _start_health(self) -> None:
        if self._health_thread is not None:
            return
        self._health_stop.clear()
        self._health_thread = threading.Thread(
            target=self._monitor, name=f"tether-pool-{self.name}-health", daemon=True
        )
        self._health_thread.start()

    def _stop_health(self) -> None:
        self._health_stop.set()
        if self._health_thread is not None:
            self._health_thread.join()
            self._health_thread = None
        if self._pinger is not None:
            self._pinger.shutdown(wait=True)
            self._pinger = None

    def _monitor(self) -> None:
        health = self.spec.settings.health
        while not self._health_stop.wait(health.interval):
            for inst, result in self._ping(health.timeout):
                if result.ok:
                    inst.health_failures = 0
                    continue
                inst.health_failures += 1
                if inst.health_failures >= health.failures:
                    self._take_out(
                        inst,
                        f"failed {inst.health_failures} health checks in a row ({result.error})",
                    )

    def ping(self) -> list[HealthResult]:
        """Ping every running instance now (in parallel, with the health timeout)."""
        return [result for _, result in self._ping(self.spec.settings.health.timeout)]

    def _ping(self, timeout: float) -> list[tuple[_Instance, HealthResult]]:
        with self._lock:
            live = [
                (inst, inst.client)
                for inst in self._instances
                if inst.state is PluginState.RUNNING and inst.client is not None
            ]
            if not live:
                return []
            if self._pinger is None:
                self._pinger = ThreadPoolExecutor(
                    max_workers=8, thread_name_prefix=f"tether-pool-{self.name}-ping"
                )
            pinger = self._pinger
        futures = [(inst, pinger.submit(self._ping_one, inst, c, timeout)) for inst, c in live]
        return [(inst, future.result()) for inst, future in futures]

    def _ping_one(self, inst: _Instance, client: Client, timeout: float) -> HealthResult:
        began = time.perf_counter()
        try:
            client.ping(timeout)
        except TetherError as exc:
            return HealthResult(self.name, inst.index, False, None, str(exc))
        return HealthResult(self.name, inst.index, True, time.perf_counter() - began)

    # ----------------------------------------------------------------- scaling

    def scale(self, instances: int) -> None:
        """Run `instances` instances (>= 1) from now on.

        Scaling up starts the new instances and waits until each runs or has failed once.
        Scaling down takes the excess out of the rotation at once, gives their calls in
        flight up to `DRAIN_TIMEOUT` seconds to finish, then stops them. On a pool that is not
        running, only records the number for the next start.
        """
        if isinstance(instances, bool) or not isinstance(instances, int) or instances < 1:
            raise ConfigError(f"a pool needs at least 1 instance, got {instances!r}")
        with self._ops:
            events: list[PluginEvent] = []
            with self._lock:
                self._size = instances
                if self._phase is not None:
                    return
                current = len(self._instances)
                added = [_Instance(i) for i in range(current, instances)]
                removed = self._instances[instances:]
                self._instances = self._instances[:instances] + added
                for inst in removed:
                    inst.draining = True
                    inst.halt.set()  # no restart from now on
                self._refresh_locked(events)
            self._emit(events)
            if added:
                self._launch(added)
            if removed:
                deadline = time.monotonic() + DRAIN_TIMEOUT
                while time.monotonic() < deadline and any(i.outstanding for i in removed):
                    time.sleep(0.01)
                self._halt_all(removed)

    # ----------------------------------------------------------------- calls

    @overload
    def dispense(self, interface: type[T], name: str | None = None) -> T: ...

    @overload
    def dispense(
        self, interface: GRPCPlugin[S] | type[GRPCPlugin[S]], name: str | None = None
    ) -> S: ...

    def dispense(self, interface: Any, name: str | None = None) -> Any:
        """A proxy for plugin `name` (default: the spec's name) spread over every instance.

        For a `tether.Interface` class the proxy is typed as that class; each call goes to
        one instance picked by `spec.settings.balance`. If the interface has a one-parameter
        `initialize`, it is called with the spec's config on each instance (and on each
        replacement) before that instance takes calls. For a `tether.GRPCPlugin`, attributes
        of the proxy are callables that call the same attribute of one instance's stub.
        """
        name = name if name is not None else self.name
        if isinstance(interface, type) and issubclass(interface, Interface):
            init = spec_of(interface).methods.get("initialize")
            what = _Dispensed(name, interface, False, init is not None and len(init.params) == 1)
        elif isinstance(interface, GRPCPlugin) or (
            isinstance(interface, type) and issubclass(interface, GRPCPlugin)
        ):
            what = _Dispensed(name, interface, True, False)
        else:
            raise ConfigError(
                f"dispense a tether.Interface class or a tether.GRPCPlugin, not {interface!r}"
            )
        key: _Key = (name, interface)
        with self._lock:
            known = key in self._dispensed
            self._dispensed[key] = what
            running = [(i, i.client) for i in self._rotation if i.client is not None]
        if not known:
            try:
                self._prepare_running(running, key, what)
            except BaseException:
                with self._lock:
                    self._dispensed.pop(key, None)
                raise
        if what.grpc:
            return _GRPCProxy(self, key)
        return sync_proxy(_Caller(self, key), 0, interface, None)

    def _prepare_running(
        self, running: list[tuple[_Instance, Client]], key: _Key, what: _Dispensed
    ) -> None:
        for inst, client in running:
            try:
                with inst.prepare_lock:
                    target = inst.targets.get(key)
                    if target is None:
                        target = client.dispense(what.name, what.interface)
                        inst.targets[key] = target
            except ConnectionClosedError:
                continue  # it is dying; its replacement prepares itself
            if what.initialize:
                self._initialize(inst, key, target)

    def _initialize(self, inst: _Instance, key: _Key, target: Any) -> bool:
        try:
            target.initialize(dict(self.spec.config))
        except ConnectionClosedError:
            return False
        except Exception as exc:
            inst.targets.pop(key, None)
            self._take_out(inst, f"initialize failed: {exc}")
            return False
        return True

    def _target(self, inst: _Instance, key: _Key) -> Any:
        """The instance's proxy for `key`, dispensed and initialized on first use; None if
        the instance cannot take the call after all."""
        target = inst.targets.get(key)
        if target is not None:
            return target
        client = inst.client
        with self._lock:
            what = self._dispensed[key]
        if client is None:
            return None
        with inst.prepare_lock:
            target = inst.targets.get(key)
            if target is not None:
                return target
            try:
                target = client.dispense(what.name, what.interface)
            except ConnectionClosedError:
                return None
            if what.initialize and not self._initialize(inst, key, target):
                return None
            inst.targets[key] = target
            return target

    def _pick(self, skip: _Instance | None) -> _Instance:
        """A running instance to send a call to, waiting (bounded) while none runs."""
        deadline: float | None = None
        while True:
            rotation = self._rotation
            if skip is not None:
                rotation = tuple(i for i in rotation if i is not skip)
            if rotation:
                turn = next(self._rr)
                if self.spec.settings.balance == "round-robin" or len(rotation) == 1:
                    return rotation[turn % len(rotation)]
                n = len(rotation)
                return min(
                    (rotation[(turn + k) % n] for k in range(n)), key=lambda i: i.outstanding
                )
            with self._lock:
                if self._rotation and self._rotation != (skip,):
                    continue
                waiting = self._aggregate_locked() in (PluginState.STARTING, PluginState.RUNNING)
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.spec.settings.start_timeout
                if not waiting or now >= deadline:
                    raise NoInstanceError(self._no_instance_locked())
                self._changed.wait(deadline - now)

    def _no_instance_locked(self) -> str:
        state = self._aggregate_locked()
        if state is PluginState.FAILED:
            return f"{self.name}: no running instance (the plugin failed: {self._reason})"
        if state in (PluginState.STOPPED, PluginState.STOPPING, PluginState.DISCOVERED):
            started = "was stopped" if state is not PluginState.DISCOVERED else "is not started"
            return f"{self.name}: no running instance (the plugin {started})"
        now = time.monotonic()
        waits = [i.next_attempt for i in self._instances if i.next_attempt is not None]
        starting = sum(1 for i in self._instances if i.state in _STARTING_STATES)
        parts = []
        if waits:
            parts.append(
                f"{len(waits)} restarting, next attempt in {max(min(waits) - now, 0):.1f} s"
            )
        if starting:
            parts.append(f"{starting} starting")
        errors = [i.last_error for i in self._instances if i.last_error]
        detail = ", ".join(parts) or "none running"
        if errors:
            detail += f"; last error: {errors[-1]}"
        return f"{self.name}: no running instance ({detail})"

    def _call(self, key: _Key, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        skip: _Instance | None = None
        while True:
            inst = self._pick(skip)
            target = self._target(inst, key)
            if target is None or not _open(inst, target):
                skip = inst  # dead before anything was sent: another instance takes it
                continue
            with inst.counters:
                inst.outstanding += 1
            began = time.perf_counter()
            failed = True
            try:
                result = getattr(target, method)(*args, **kwargs)
                failed = False
                return result
            finally:
                spent = time.perf_counter() - began
                with inst.counters:
                    inst.outstanding -= 1
                    inst.calls += 1
                    inst.latency += spent
                    if failed:
                        inst.errors += 1

    # ----------------------------------------------------------------- status

    def status(self) -> PluginStatus:
        """A snapshot of the pool and its instances (counters of calls made through the
        pool's proxies)."""
        now = time.time()
        with self._lock:
            instances = list(self._instances)
            state, reason, restarts = self._state, self._reason, self._restarts
            rows = [
                (i, i.state, i.pid if i.state is not PluginState.STOPPED else None)
                for i in instances
            ]
        out = []
        for inst, inst_state, pid in rows:
            with inst.counters:
                calls, errors, latency, outstanding = (
                    inst.calls,
                    inst.errors,
                    inst.latency,
                    inst.outstanding,
                )
            running = inst_state is PluginState.RUNNING and inst.started_at is not None
            out.append(
                InstanceStatus(
                    index=inst.index,
                    state=inst_state,
                    pid=pid,
                    started_at=inst.started_at,
                    uptime=now - inst.started_at if running and inst.started_at else 0.0,
                    calls=calls,
                    errors=errors,
                    average_latency=latency / calls if calls else 0.0,
                    outstanding=outstanding,
                    restarts=inst.restarts,
                    last_error=inst.last_error,
                )
            )
        calls = sum(i.calls for i in out)
        total = sum(i.average_latency * i.calls for i in out)
        return PluginStatus(
            name=self.name,
            version=str(self.spec.manifest.version),
            state=state,
            instances=tuple(out),
            restarts=restarts,
            calls=calls,
            errors=sum(i.errors for i in out),
            average_latency=total / calls if calls else 0.0,
            reason=reason if state is PluginState.FAILED else None,
            source=self.spec.source,
        )

    def __repr__(self) -> str:
        return f"<tether.Pool {self.name!r} {self._state} {len(self._rotation)} running>"


def _open(inst: _Instance, target: Any) -> bool:
    """Whether a call can still be written to this instance."""
    if inst.state is not PluginState.RUNNING or inst.kill_reason is not None:
        return False
    endpoint = getattr(target, "_tether_ep", None)
    return endpoint is None or not endpoint.closed


def _sigkill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class _Caller:
    """What a pool's proxy calls instead of an endpoint: picks an instance per call."""

    def __init__(self, pool: Pool, key: _Key) -> None:
        self.name = pool.name
        self._pool = pool
        self._key = key

    def call(
        self,
        oid: int,
        spec: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None = None,
    ) -> Any:
        return self._pool._call(self._key, spec.name, args, kwargs)

    def call_stream(
        self,
        oid: int,
        spec: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None = None,
    ) -> Iterator[Any]:
        return self._pool._call(self._key, spec.name, args, kwargs)  # type: ignore[no-any-return]


class _GRPCProxy:
    """A gRPC stub over all instances: `proxy.Get(request)` calls one instance's stub."""

    def __init__(self, pool: Pool, key: _Key) -> None:
        self._pool = pool
        self._key = key

    def __getattr__(self, attr: str) -> Callable[..., Any]:
        if attr.startswith("__"):
            raise AttributeError(attr)
        pool, key = self._pool, self._key

        def call(*args: Any, **kwargs: Any) -> Any:
            return pool._call(key, attr, args, kwargs)

        call.__name__ = attr
        return call

    def __repr__(self) -> str:
        return f"<pooled gRPC stub of plugin {self._pool.name!r}>"

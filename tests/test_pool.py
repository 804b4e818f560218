"""Pools: N supervised instances of one plugin behind one proxy, with real plugin processes
(tests/plugins/pool_worker.py)."""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

import tether
from _lifecycle import pid_gone, wait_until
from plugins.pool_worker import HANDSHAKE, INIT_ERROR, Worker
from tether._config import HealthSettings, PluginSettings, RestartPolicy
from tether._errors import NoInstanceError
from tether._events import PluginEvent, PluginState
from tether._manifest import Manifest
from tether._pool import Pool
from tether._spec import PluginSpec

WORKER = str(Path(__file__).parent / "plugins" / "pool_worker.py")
# Lenient by default: a loaded machine must not fail health checks by accident.
RELAXED_HEALTH = HealthSettings(interval=1.0, timeout=5.0, failures=3)
FAST_RESTART = RestartPolicy(backoff_initial=0.05, backoff_max=0.2, max_restarts=100)
WAIT = 20.0  # upper bound for anything that should happen "soon"


def make_spec(
    mode: str = "ok",
    *,
    instances: int = 1,
    balance: str = "round-robin",
    restart: RestartPolicy = FAST_RESTART,
    health: HealthSettings = RELAXED_HEALTH,
    config: dict[str, Any] | None = None,
    start_timeout: float = 20.0,
    call_timeout: float = 15.0,
) -> PluginSpec:
    settings = PluginSettings.model_validate(
        {
            "command": [sys.executable, WORKER, mode],
            "instances": instances,
            "balance": balance,
            "restart": restart,
            "health": health,
            "start_timeout": start_timeout,
            "call_timeout": call_timeout,
        }
    )
    assert settings.command is not None
    return PluginSpec(
        name="work",
        manifest=Manifest(name="work", version=Version("1")),
        settings=settings,
        command=tuple(settings.command),
        cwd=Path(__file__).parent,
        environment=dict(os.environ),
        handshake=HANDSHAKE,
        config=config if config is not None else {"greeting": "hi", "n": 3},
    )


class Events:
    """What a pool emitted, and every pid it spawned (from the handshaking events)."""

    def __init__(self) -> None:
        self.events: list[PluginEvent] = []
        self.pids: set[int] = set()
        self._lock = threading.Lock()

    def __call__(self, event: PluginEvent) -> None:
        with self._lock:
            self.events.append(event)
            if event.state is PluginState.HANDSHAKING and event.message.startswith("pid "):
                self.pids.add(int(event.message.split()[1]))

    def states(self, instance: int | None) -> list[PluginState]:
        with self._lock:
            return [e.state for e in self.events if e.instance == instance]


MakePool = Callable[..., tuple[Pool, Events]]


@pytest.fixture
def make_pool() -> Iterator[MakePool]:
    """Build (not start) pools; at teardown each is stopped and all its pids must be gone."""
    made: list[tuple[Pool, Events]] = []

    def make(mode: str = "ok", **kwargs: Any) -> tuple[Pool, Events]:
        events = Events()
        pool = Pool(make_spec(mode, **kwargs), emit=events, rng=random.Random(7))
        made.append((pool, events))
        return pool, events

    yield make
    for pool, events in made:
        pool.stop(timeout=1.0)
        for pid in events.pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        leaked = [pid for pid in events.pids if not pid_gone(pid)]
        for pid in leaked:
            os.kill(pid, signal.SIGKILL)
        assert not leaked, f"pool left processes running: {leaked}"


def running_pids(pool: Pool) -> set[int]:
    return {i.pid for i in pool.status().instances if i.state is PluginState.RUNNING and i.pid}


def test_round_robin_spreads_calls_evenly(make_pool: MakePool) -> None:
    pool, _ = make_pool(instances=3)
    pool.start()
    worker = pool.dispense(Worker, "worker")
    assert isinstance(worker, Worker)
    counts = Counter(worker.pid() for _ in range(30))
    assert set(counts) == running_pids(pool)
    assert sorted(counts.values()) == [10, 10, 10]
    status = pool.status()
    assert status.state is PluginState.RUNNING
    assert status.calls == 30
    assert status.errors == 0
    assert [i.calls for i in status.instances] == [10, 10, 10]
    assert all(i.outstanding == 0 and i.average_latency > 0 for i in status.instances)


def test_least_outstanding_prefers_the_idle_instance(make_pool: MakePool) -> None:
    pool, _ = make_pool(instances=2, balance="least-outstanding")
    pool.start()
    worker = pool.dispense(Worker, "worker")
    with ThreadPoolExecutor(1) as executor:
        slow = executor.submit(worker.work, 3.0)
        assert wait_until(lambda: pool.status().instances[0].outstanding == 1, WAIT) or (
            pool.status().instances[1].outstanding == 1
        )
        busy = next(i for i in pool.status().instances if i.outstanding == 1)
        quick = {worker.pid() for _ in range(10)}
        assert busy.pid not in quick
        assert len(quick) == 1
        assert slow.result() == busy.pid


def test_events_of_a_start_and_a_stop(make_pool: MakePool) -> None:
    pool, events = make_pool()
    assert pool.state is PluginState.DISCOVERED
    pool.start()
    assert pool.status().state is PluginState.RUNNING
    pool.stop()
    pool.stop()  # idempotent
    assert pool.status().state is PluginState.STOPPED
    S = PluginState
    assert events.states(0) == [
        S.STARTING,
        S.HANDSHAKING,
        S.CONNECTED,
        S.RUNNING,
        S.STOPPING,
        S.STOPPED,
    ]
    assert events.states(None) == [S.STARTING, S.RUNNING, S.STOPPING, S.STOPPED]
    first = events.events[0]
    assert first.plugin == "work"
    assert first.previous is S.DISCOVERED
    assert all(pid_gone(pid) for pid in events.pids)


def test_initialize_runs_on_every_instance_and_on_replacements(make_pool: MakePool) -> None:
    config = {"greeting": "hello", "n": 5}
    pool, _ = make_pool(instances=2, config=config)
    pool.start()
    worker = pool.dispense(Worker, "worker")
    first = running_pids(pool)
    assert [worker.whoami() for _ in range(4)] == [
        {"pid": pid, "config": config} for pid in sorted(first) * 2
    ] or {w["pid"] for w in [worker.whoami() for _ in range(4)]} == first
    assert {w["pid"]: w["config"] == config for w in (worker.whoami() for _ in range(4))} == {
        pid: True for pid in first
    }
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: len(running_pids(pool) - first) == 1, WAIT)
    replacement = (running_pids(pool) - first).pop()
    seen = {w["pid"]: w["config"] for w in (worker.whoami() for _ in range(6))}
    assert seen[replacement] == config
    assert set(seen) == running_pids(pool)
    status = pool.status()
    assert status.restarts == 1
    assert "SIGKILL" in (status.instances[0].last_error or status.instances[1].last_error or "")


def succeeding(ok: list[float], more: int) -> bool:
    """Whether `more` calls succeed from now on (soon)."""
    before = len(ok)
    return wait_until(lambda: len(ok) > before + more, WAIT)


def test_killed_repeatedly_under_load(make_pool: MakePool) -> None:
    pool, events = make_pool(instances=3, call_timeout=10.0)
    pool.start()
    worker = pool.dispense(Worker, "worker")
    done = threading.Event()
    lock = threading.Lock()
    ok: list[float] = []  # time.monotonic() of each success
    failures: list[BaseException] = []

    def caller() -> None:
        while not done.is_set():
            try:
                worker.work(0.01)
            except BaseException as exc:
                with lock:
                    failures.append(exc)
            else:
                with lock:
                    ok.append(time.monotonic())

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    rng = random.Random(3)
    try:
        for _ in range(10):
            assert wait_until(lambda: len(running_pids(pool)) == 3, WAIT)
            assert succeeding(ok, 5), "calls stopped succeeding"
            victim = rng.choice(sorted(running_pids(pool)))
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pytest.fail("a pid the pool reports as running is gone")
            # The pool learns of the death when its supervisor reaps the process: only then
            # does the victim leave the running set (on a loaded machine, a while later).
            assert wait_until(lambda: victim not in running_pids(pool), WAIT)  # noqa: B023
        assert wait_until(lambda: len(running_pids(pool)) == 3, WAIT)
        assert succeeding(ok, 20)
    finally:
        done.set()
        for thread in threads:
            thread.join(30.0)
    assert not any(thread.is_alive() for thread in threads), "a call hung"
    assert all(isinstance(exc, tether.PluginCrashedError) for exc in failures), failures[:3]
    final = running_pids(pool)
    assert len(final) == 3
    assert len(events.pids) >= 13  # 3 first + 10 replacements
    assert pool.status().restarts == 10
    pool.stop()
    assert all(pid_gone(pid) for pid in events.pids)


@pytest.mark.parametrize("mode", ["always", "on-failure"])
def test_clean_exit_restarts_only_with_always(make_pool: MakePool, mode: str) -> None:
    policy = RestartPolicy.model_validate(
        {"mode": mode, "backoff_initial": 0.05, "backoff_max": 0.2}
    )
    pool, _ = make_pool(restart=policy)
    pool.start()
    worker = pool.dispense(Worker, "worker")
    first = worker.pid()
    worker.exit(0)
    if mode == "always":
        assert wait_until(lambda: running_pids(pool) - {first} != set(), WAIT)
        assert worker.pid() != first
        assert pool.state is PluginState.RUNNING
    else:
        assert wait_until(lambda: pool.state is PluginState.STOPPED, WAIT)
        assert pool.status().instances[0].state is PluginState.STOPPED
        with pytest.raises(NoInstanceError, match="work: no running instance"):
            worker.pid()


def test_budget_spent_fails_the_pool_until_retry(make_pool: MakePool) -> None:
    policy = RestartPolicy(max_restarts=1, backoff_initial=0.05, backoff_max=0.1)
    pool, events = make_pool(restart=policy, start_timeout=20.0)
    pool.start()
    worker = pool.dispense(Worker, "worker")
    os.kill(worker.pid(), signal.SIGKILL)
    assert wait_until(lambda: pool.status().restarts == 1 and len(running_pids(pool)) == 1, WAIT)
    os.kill(worker.pid(), signal.SIGKILL)
    assert wait_until(lambda: pool.state is PluginState.FAILED, WAIT)
    status = pool.status()
    assert status.reason is not None
    assert "restart budget spent (1 restarts" in status.reason
    assert "SIGKILL" in status.reason
    assert events.events[-1].state is PluginState.FAILED
    assert events.events[-1].instance is None
    with pytest.raises(NoInstanceError, match="the plugin failed: restart budget spent"):
        worker.pid()
    pool.retry()
    assert pool.state is PluginState.RUNNING
    assert worker.config() == {"greeting": "hi", "n": 3}
    assert pool.status().restarts == 0


def test_health_monitor_replaces_a_hung_instance(make_pool: MakePool) -> None:
    health = HealthSettings(interval=0.2, timeout=1.0, failures=2)
    pool, events = make_pool(instances=2, health=health)
    pool.start()
    worker = pool.dispense(Worker, "worker")
    before = running_pids(pool)
    hung = min(before)
    os.kill(hung, signal.SIGSTOP)
    try:
        assert wait_until(lambda: len(running_pids(pool) - before) == 1, WAIT)
        assert pid_gone(hung) or wait_until(lambda: pid_gone(hung), WAIT)
        assert {worker.pid() for _ in range(6)} == running_pids(pool)
        failed = [e for e in events.events if e.state is PluginState.FAILED]
        assert any("health checks in a row" in e.message for e in failed)
    finally:
        try:
            os.kill(hung, signal.SIGCONT)
        except ProcessLookupError:
            pass


def test_scale_up_and_down_while_calls_run(make_pool: MakePool) -> None:
    pool, _ = make_pool()
    pool.start()
    worker = pool.dispense(Worker, "worker")
    done = threading.Event()
    seen: set[int] = set()
    errors: list[BaseException] = []

    def caller() -> None:
        while not done.is_set():
            try:
                seen.add(worker.work(0.02))
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        pool.scale(3)
        assert len(pool.status().instances) == 3
        three = running_pids(pool)
        assert len(three) == 3
        assert wait_until(lambda: three <= seen, WAIT)
        pool.scale(1)
        (kept,) = running_pids(pool)
        assert [i.index for i in pool.status().instances] == [0]
        assert all(pid_gone(pid) for pid in three - {kept})
        seen.clear()
        assert wait_until(lambda: len(seen) > 0, WAIT)
        assert seen == {kept}
    finally:
        done.set()
        for thread in threads:
            thread.join(30.0)
    assert errors == []
    with pytest.raises(tether.ConfigError):
        pool.scale(0)


def test_no_instance_error_names_what_the_instances_do(make_pool: MakePool) -> None:
    slow = RestartPolicy(backoff_initial=30.0, backoff_max=30.0, jitter=0.0)
    pool, _ = make_pool(restart=slow, start_timeout=3.0)
    pool.start()
    worker = pool.dispense(Worker, "worker")
    os.kill(worker.pid(), signal.SIGKILL)
    assert wait_until(lambda: pool.status().restarts == 1, WAIT)
    with pytest.raises(NoInstanceError) as info:
        worker.pid()
    message = str(info.value)
    assert message.startswith("work: no running instance (1 restarting, next attempt in ")
    assert "last error: plugin 'work' was killed by SIGKILL" in message
    pool.stop()  # interrupts the 30 s backoff
    assert pool.state is PluginState.STOPPED
    with pytest.raises(NoInstanceError, match="the plugin was stopped"):
        worker.pid()


def test_start_failure_raises_and_fails_the_pool(make_pool: MakePool) -> None:
    pool, events = make_pool("no-start", instances=2)
    with pytest.raises(tether.PluginExitedError, match="refusing to start"):
        pool.start()
    assert pool.state is PluginState.FAILED
    assert "exited with code 3" in (pool.status().reason or "")
    assert all(pid_gone(pid) for pid in events.pids)
    worker = pool.dispense(Worker, "worker")
    with pytest.raises(NoInstanceError, match="the plugin failed"):
        worker.pid()


def test_initialize_error_fails_the_instance(make_pool: MakePool) -> None:
    pool, _ = make_pool("bad-init", restart=RestartPolicy(mode="never"))
    pool.dispense(Worker, "worker")  # before start: initialize runs before any call
    with pytest.raises(tether.RemoteError, match=INIT_ERROR):
        pool.start()
    status = pool.status()
    assert status.state is PluginState.FAILED
    assert INIT_ERROR in (status.reason or "")


def test_ping_reports_every_running_instance(make_pool: MakePool) -> None:
    pool, _ = make_pool(instances=2)
    pool.start()
    results = pool.ping()
    assert sorted(r.instance for r in results) == [0, 1]
    assert all(r.ok and r.latency is not None and r.plugin == "work" for r in results)


def test_grpc_pool_over_the_calculator_example() -> None:
    from test_grpc_examples import CALCULATOR_GRPC, calc_pb2, calc_shared, tutorial_config

    shared = calc_shared()
    events = Events()
    spec = make_spec(instances=2)
    grpc_spec = PluginSpec(
        name="calculator",
        manifest=spec.manifest,
        settings=spec.settings,
        command=(sys.executable, str(CALCULATOR_GRPC / "plugin.py")),
        cwd=spec.cwd,
        environment=spec.environment,
        handshake=shared.HANDSHAKE,
    )
    pool = Pool(grpc_spec, emit=events)
    try:
        pool.start()
        stub = pool.dispense(shared.CalculatorPlugin, shared.PLUGIN_NAME)
        # Round robin: one Initialize per instance.
        stub.Initialize(tutorial_config(), timeout=10)
        stub.Initialize(tutorial_config(), timeout=10)
        pb2 = calc_pb2()
        assert [stub.Add(pb2.BinaryRequest(a=i, b=1)).value for i in range(4)] == [1, 2, 3, 4]
        assert [i.calls for i in pool.status().instances] == [3, 3]
        assert all(r.ok for r in pool.ping())
    finally:
        pool.stop()
    assert len(events.pids) == 2
    assert all(pid_gone(pid) for pid in events.pids)

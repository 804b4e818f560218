"""The plugin manager against real plugin processes: verification, dependency order, events,
failures and retries, rescans, and the calculator example driven through a YAML config."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from plugins.mgr_plugin import ENV_NAME, ENV_SPAWNED, HANDSHAKE, Greeter
from tether._config import ConfigFileError, SecuritySettings
from tether._errors import (
    ConfigError,
    PluginNotRunningError,
    PluginStartError,
    UnknownPluginError,
)
from tether._events import PluginEvent, PluginState
from tether._manager import PluginManager
from tether._resolve import DependencyError
from tether._signing import generate_keypair, sign_file

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_SRC = Path(__file__).parent / "plugins" / "mgr_plugin.py"
CALCULATOR = ROOT / "examples" / "calculator" / "plugin.py"
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from examples.calculator.interface import HANDSHAKE as CALC_HANDSHAKE  # noqa: E402
from examples.calculator.interface import PluginState as CalcState  # noqa: E402
from examples.calculator.interface import ScientificCalculator  # noqa: E402

LIFECYCLE = [
    PluginState.DISCOVERED,
    PluginState.VALIDATING,
    PluginState.STARTING,
    PluginState.HANDSHAKING,
    PluginState.CONNECTED,
    PluginState.RUNNING,
    PluginState.STOPPING,
    PluginState.STOPPED,
]


def alive(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids: list[int], within: float = 10.0) -> list[int]:
    """The pids of `pids` still alive after waiting up to `within` seconds for them to go."""
    deadline = time.monotonic() + within
    while True:
        left = [pid for pid in pids if alive(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


class Lab:
    """A directory of test plugins, each a copy of mgr_plugin.py beside its tether.toml, and
    a record of every process they started."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.spawned = root / "spawned.log"

    def plugin(
        self,
        name: str,
        version: str = "1.0",
        requires: dict[str, str] | None = None,
        mode: str = "ok",
        **settings: Any,
    ) -> dict[str, Any]:
        """Create plugin `name`; returns its settings for the `plugins:` block."""
        where = self.root / name
        where.mkdir(exist_ok=True)
        shutil.copy(PLUGIN_SRC, where / "plugin.py")
        manifest = {"name": name, "version": version, "requires": requires or {}}
        (where / "tether.toml").write_text(_toml(manifest))
        out: dict[str, Any] = {
            "command": [sys.executable, "plugin.py", mode],
            "cwd": str(where),
            "verify_path": str(where / "plugin.py"),
            "env": {ENV_SPAWNED: str(self.spawned), ENV_NAME: name},
            "start_timeout": 30,
            "restart": {"backoff_initial": 0.05, "backoff_max": 0.1, "max_restarts": 1},
        }
        out.update(settings)
        return out

    def file(self, name: str) -> Path:
        return self.root / name / "plugin.py"

    def config(self, plugins: dict[str, dict[str, Any]], **top: Any) -> Path:
        data: dict[str, Any] = {
            "handshake": {
                "magic_cookie_key": HANDSHAKE.magic_cookie_key,
                "magic_cookie_value": HANDSHAKE.magic_cookie_value,
            },
            "plugins": plugins,
        }
        data.update(top)
        path = self.root / "tether.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def manager(self, plugins: dict[str, dict[str, Any]], **top: Any) -> PluginManager:
        return PluginManager.from_config(self.config(plugins, **top))

    def pids(self, name: str | None = None) -> list[int]:
        """Processes started so far (of plugin `name`, or all)."""
        if not self.spawned.exists():
            return []
        out = []
        for line in self.spawned.read_text().splitlines():
            who, pid = line.split()
            if name is None or who == name:
                out.append(int(pid))
        return out

    def spawned_names(self) -> set[str]:
        if not self.spawned.exists():
            return set()
        return {line.split()[0] for line in self.spawned.read_text().splitlines()}


def _toml(manifest: dict[str, Any]) -> str:
    lines = [f'name = "{manifest["name"]}"', f'version = "{manifest["version"]}"', "[requires]"]
    lines += [f'"{dep}" = "{spec}"' for dep, spec in manifest["requires"].items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """Test plugins; any process of theirs still alive at teardown is killed (and fails the
    test that leaked it)."""
    lab = Lab(tmp_path)
    yield lab
    leaked = [pid for pid in lab.pids() if alive(pid)]
    for pid in leaked:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not leaked, f"plugin processes left running: {leaked}"


def plugin_events(events: list[PluginEvent], name: str) -> list[PluginState]:
    return [e.state for e in events if e.plugin == name and e.instance is None]


# --- dependencies -------------------------------------------------------------------------


def test_start_order_follows_dependencies_and_stop_reverses_it(lab: Lab) -> None:
    plugins = {
        "top": lab.plugin("top", requires={"mid": ">=1"}),
        "mid": lab.plugin("mid", version="1.5", requires={"base": ">=1,<2"}),
        "base": lab.plugin("base"),
    }
    seen: list[PluginEvent] = []
    with lab.manager(plugins) as manager:
        manager.subscribe(seen.append)
        manager.start()
        running = [e.plugin for e in seen if e.instance is None and e.state is PluginState.RUNNING]
        assert running == ["base", "mid", "top"]
        assert manager.dispense("top", Greeter).hello("you") == "top: hello you"
        seen.clear()
        manager.stop()
        stopped = [e.plugin for e in seen if e.instance is None and e.state is PluginState.STOPPED]
        assert stopped == ["top", "mid", "base"]
        assert all(manager.state(n) is PluginState.STOPPED for n in plugins)
    assert wait_gone(lab.pids()) == []


def test_stopping_a_dependency_stops_its_dependents_first(lab: Lab) -> None:
    plugins = {
        "api": lab.plugin("api", requires={"db": ""}),
        "db": lab.plugin("db"),
        "cache": lab.plugin("cache"),
    }
    seen: list[PluginEvent] = []
    with lab.manager(plugins) as manager:
        manager.start()
        manager.subscribe(seen.append)
        manager.stop(["db"])
        stopped = [e.plugin for e in seen if e.instance is None and e.state is PluginState.STOPPED]
        assert stopped == ["api", "db"]
        assert manager.state("cache") is PluginState.RUNNING
        manager.stop(["db"])  # idempotent
        assert wait_gone(lab.pids("db") + lab.pids("api")) == []


def test_dependency_problems_are_reported_together_before_anything_starts(lab: Lab) -> None:
    plugins = {
        "a": lab.plugin("a", requires={"b": ""}),
        "b": lab.plugin("b", requires={"a": ""}),
        "app": lab.plugin("app", requires={"store": ">=2"}),
        "store": lab.plugin("store", version="1.4"),
        "lonely": lab.plugin("lonely", requires={"ghost": ">=1"}),
        "fine": lab.plugin("fine"),
    }
    with lab.manager(plugins) as manager:
        with pytest.raises(DependencyError) as info:
            manager.start()
        text = str(info.value)
        assert "dependency cycle: a -> b -> a" in text
        assert "version conflict: app 1.0 requires store>=2; but store 1.4 is available" in text
        assert "missing plugin: lonely 1.0 requires 'ghost' (>=1)" in text
        assert len(info.value.problems) == 3
        assert lab.spawned_names() == set()
        assert manager.state("fine") is PluginState.DISCOVERED
        # Starting only what is sound works: the problems are in other plugins' closures.
        manager.start(["fine"])
        assert manager.state("fine") is PluginState.RUNNING


# --- verification -------------------------------------------------------------------------


def test_signatures_are_required_and_failures_say_how_to_fix(lab: Lab) -> None:
    private, public = generate_keypair()
    other_private, _ = generate_keypair()
    plugins = {
        "signed": lab.plugin("signed"),
        "unsigned": lab.plugin("unsigned"),
        "tampered": lab.plugin("tampered"),
        "stranger": lab.plugin("stranger"),
    }
    sign_file(lab.file("signed"), private)
    sign_file(lab.file("tampered"), private)
    with lab.file("tampered").open("a") as f:
        f.write("\n# changed after signing\n")
    sign_file(lab.file("stranger"), other_private)
    security = {"require_signature": True, "trusted_keys": [public]}
    with lab.manager(plugins, security=security) as manager:
        with pytest.raises(PluginStartError) as info:
            manager.start()
        failures = info.value.failures
        assert set(failures) == {"unsigned", "tampered", "stranger"}
        assert "is not signed" in failures["unsigned"]
        assert "tether sign --key" in failures["unsigned"]
        assert "has changed since it was signed" in failures["tampered"]
        assert "which is not trusted" in failures["stranger"]
        assert "security.trusted_keys" in failures["stranger"]
        for name in failures:
            assert manager.state(name) is PluginState.FAILED
            assert manager.reason(name) == failures[name]
        # Refused plugins never ran; the signed one ran and was stopped (strict start).
        assert lab.spawned_names() == {"signed"}
        assert manager.state("signed") is PluginState.STOPPED
        assert wait_gone(lab.pids()) == []


def test_checksum_mismatch_is_refused(lab: Lab) -> None:
    good = lab.plugin("good")
    bad = lab.plugin("bad", checksum="0" * 64)
    import hashlib

    good["checksum"] = hashlib.sha256(lab.file("good").read_bytes()).hexdigest()
    with lab.manager({"good": good, "bad": bad}) as manager:
        manager.start(strict=False)
        assert manager.state("good") is PluginState.RUNNING
        assert manager.state("bad") is PluginState.FAILED
        reason = manager.reason("bad") or ""
        assert "checksums did not match" in reason
        assert f"sha256sum {lab.file('bad')}" in reason
        assert lab.spawned_names() == {"good"}


def test_a_file_replaced_while_running_is_not_restarted(lab: Lab) -> None:
    import hashlib

    settings = lab.plugin("p")
    settings["checksum"] = hashlib.sha256(lab.file("p").read_bytes()).hexdigest()
    with lab.manager({"p": settings}) as manager:
        manager.start()
        [first] = lab.pids("p")
        # Replaced on disk, then the running instance dies: the replacement must be checked
        # before it is executed, and refused.
        with lab.file("p").open("a") as f:
            f.write("\n# tampered\n")
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while manager.state("p") is not PluginState.FAILED and time.monotonic() < deadline:
            time.sleep(0.05)
        assert manager.state("p") is PluginState.FAILED
        assert "checksums did not match" in (manager.reason("p") or "")
        assert lab.pids("p") == [first]  # nothing new was executed


def test_require_checksum_refuses_a_plugin_without_one(lab: Lab) -> None:
    manager = lab.manager({"p": lab.plugin("p")})
    spec = manager.plugins()[0]
    strict = PluginManager([spec], security=SecuritySettings(require_checksum=True))
    with pytest.raises(PluginStartError) as info:
        strict.start()
    assert "security.require_checksum is true" in str(info.value)
    assert "plugins.p.checksum" in str(info.value)
    assert lab.spawned_names() == set()
    strict.close()


def test_a_plugin_discovery_could_not_prepare_is_refused(lab: Lab) -> None:
    spec = lab.manager({"p": lab.plugin("p")}).plugins()[0]
    problem = "declares requirements but has no environment yet: run `tether install p`"
    with PluginManager([dataclasses.replace(spec, problem=problem)]) as manager:
        manager.start(strict=False)
        assert manager.state("p") is PluginState.FAILED
        assert manager.reason("p") == problem
        assert manager.status()[0].reason == problem
    assert lab.spawned_names() == set()


# --- configuration ------------------------------------------------------------------------


def test_invalid_config_file_names_line_field_value_and_expectation(lab: Lab) -> None:
    path = lab.config({"p": lab.plugin("p", instances=-1)})
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "instances:" in text)
    with pytest.raises(ConfigFileError) as info:
        PluginManager.from_config(path)
    assert f"{path}:{line}: plugins.p.instances: got -1, expected an integer >= 1" in str(
        info.value
    )
    assert lab.spawned_names() == set()


def test_plugins_that_cannot_be_set_up_are_reported_together(lab: Lab) -> None:
    plugins = {"a": lab.plugin("a"), "b": lab.plugin("b")}
    path = lab.config(plugins)
    data = yaml.safe_load(path.read_text())
    del data["handshake"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        PluginManager.from_config(path)
    text = str(info.value)
    assert "2 plugins cannot be set up" in text
    assert "plugins.a: no handshake" in text
    assert "plugins.b: no handshake" in text


def test_unknown_plugin_names_suggest_close_ones(lab: Lab) -> None:
    manager = lab.manager({"calculator": lab.plugin("calculator")})
    with pytest.raises(UnknownPluginError, match="did you mean 'calculator'"):
        manager.dispense("calculater", Greeter)
    with pytest.raises(UnknownPluginError):
        manager.start(["nope"])
    with pytest.raises(PluginNotRunningError, match=r"not running .*discovered"):
        manager.dispense("calculator", Greeter)
    with pytest.raises(ConfigError, match="given twice"):
        PluginManager(manager.plugins() * 2)
    assert lab.spawned_names() == set()


# --- lifecycle ----------------------------------------------------------------------------


def test_whole_event_sequence(lab: Lab) -> None:
    manager = lab.manager({"solo": lab.plugin("solo")})
    manager.start()
    manager.close()
    events = [e for e in manager.events() if e.instance is None]
    assert [e.state for e in events] == LIFECYCLE
    assert [e.previous for e in events] == [None, *LIFECYCLE[:-1]]
    instance_states = {e.state for e in manager.events() if e.instance == 0}
    assert PluginState.RUNNING in instance_states
    assert wait_gone(lab.pids()) == []


def test_failed_plugin_blocks_dependents_until_retried(lab: Lab) -> None:
    private, public = generate_keypair()
    plugins = {
        "app": lab.plugin("app", requires={"db": ""}),
        "db": lab.plugin("db"),
        "other": lab.plugin("other"),
    }
    sign_file(lab.file("app"), private)
    sign_file(lab.file("other"), private)
    security = {"require_signature": True, "trusted_keys": [public]}
    with lab.manager(plugins, security=security) as manager:
        manager.start(strict=False)
        assert manager.state("db") is PluginState.FAILED
        assert manager.state("app") is PluginState.FAILED
        assert manager.reason("app") == "dependency db failed"
        assert manager.state("other") is PluginState.RUNNING
        assert lab.spawned_names() == {"other"}
        with pytest.raises(PluginNotRunningError, match="retry"):
            manager.dispense("app", Greeter)
        with pytest.raises(PluginStartError, match="is not signed"):
            manager.retry("db")
        sign_file(lab.file("db"), private)
        manager.retry("db")
        assert manager.state("db") is PluginState.RUNNING
        assert manager.state("app") is PluginState.RUNNING
        assert manager.dispense("app", Greeter).hello("db") == "app: hello db"
        with pytest.raises(PluginNotRunningError, match="only a failed plugin"):
            manager.retry("db")


def test_spent_restart_budget_fails_the_plugin_until_retried(lab: Lab) -> None:
    settings = lab.plugin("fragile")
    settings["restart"] = {"max_restarts": 0}
    failed = threading.Event()
    with lab.manager({"fragile": settings}) as manager:

        def watch(event: PluginEvent) -> None:
            if event.instance is None and event.state is PluginState.FAILED:
                failed.set()

        manager.subscribe(watch)
        manager.start()
        proxy = manager.dispense("fragile", Greeter)
        first = proxy.pid()
        with pytest.raises(ConnectionError):
            proxy.crash()
        assert failed.wait(30)
        assert manager.state("fragile") is PluginState.FAILED
        assert manager.status()[0].state is PluginState.FAILED
        manager.retry("fragile")
        assert manager.state("fragile") is PluginState.RUNNING
        second = manager.dispense("fragile", Greeter).pid()
        assert second != first
        assert not alive(first)
    assert wait_gone(lab.pids()) == []


def test_strict_start_stops_what_it_started(lab: Lab) -> None:
    plugins = {"good": lab.plugin("good"), "broken": lab.plugin("broken", mode="exit")}
    with lab.manager(plugins) as manager:
        with pytest.raises(PluginStartError) as info:
            manager.start()
        assert list(info.value.failures) == ["broken"]
        assert "exited with code 3" in info.value.failures["broken"]
        assert manager.state("broken") is PluginState.FAILED
        assert manager.state("good") is PluginState.STOPPED
        assert wait_gone(lab.pids()) == []


def test_non_strict_start_keeps_the_rest_running(lab: Lab) -> None:
    plugins = {"good": lab.plugin("good"), "broken": lab.plugin("broken", mode="exit")}
    with lab.manager(plugins) as manager:
        manager.start(strict=False)
        assert manager.state("broken") is PluginState.FAILED
        assert "failing on purpose" in (manager.reason("broken") or "")
        assert manager.state("good") is PluginState.RUNNING
        assert manager.dispense("good", Greeter).hello("x") == "good: hello x"
    assert wait_gone(lab.pids()) == []


def test_subscribe_unsubscribe_and_a_failing_subscriber(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    manager = lab.manager({"p": lab.plugin("p")})
    got: list[PluginEvent] = []

    def broken(event: PluginEvent) -> None:
        raise RuntimeError("subscriber bug")

    unsubscribe = manager.subscribe(got.append)
    manager.subscribe(broken)
    with caplog.at_level(logging.ERROR, logger="tether.manager"):
        manager.start()
    assert PluginState.RUNNING in plugin_events(got, "p")
    assert "subscriber bug" in caplog.text
    assert manager.state("p") is PluginState.RUNNING
    unsubscribe()
    unsubscribe()  # twice is harmless
    count = len(got)
    manager.close()
    assert len(got) == count
    assert plugin_events(manager.events(), "p")[-1] is PluginState.STOPPED


# --- rescans ------------------------------------------------------------------------------


def test_apply_adds_removes_and_restarts_changed(lab: Lab) -> None:
    plugins = {
        "keep": lab.plugin("keep", config={"greeting": "hi"}),
        "same": lab.plugin("same"),
        "gone": lab.plugin("gone"),
        "child": lab.plugin("child", requires={"gone": ""}),
    }
    with lab.manager(plugins) as manager:
        manager.start()
        old_keep = manager.dispense("keep", Greeter).pid()
        same_pid = manager.dispense("same", Greeter).pid()
        plugins["keep"]["config"] = {"greeting": "hello"}
        del plugins["gone"]
        plugins["new"] = lab.plugin("new")
        rescanned = PluginManager.from_config(lab.config(plugins)).plugins()
        added, removed, changed = manager.apply(rescanned)
        assert (added, removed, changed) == (["new"], ["gone"], ["keep"])
        assert [s.name for s in manager.plugins()] == ["child", "keep", "new", "same"]
        assert wait_gone(lab.pids("gone") + lab.pids("child")) == []
        assert manager.state("child") is PluginState.FAILED
        assert manager.reason("child") == "dependency gone was removed"
        keep = manager.dispense("keep", Greeter)
        assert keep.config() == {"greeting": "hello"}
        assert keep.pid() != old_keep
        assert not alive(old_keep)
        assert manager.dispense("same", Greeter).pid() == same_pid
        assert manager.state("new") is PluginState.RUNNING
        with pytest.raises(UnknownPluginError):
            manager.state("gone")
        assert manager.apply(rescanned) == ([], [], [])
        plugins["gone"] = lab.plugin("gone", version="1.1")
        assert manager.apply(PluginManager.from_config(lab.config(plugins)).plugins())[0] == [
            "gone"
        ]
        assert manager.state("gone") is PluginState.RUNNING
        assert manager.state("child") is PluginState.RUNNING
        seen: list[PluginEvent] = []
        manager.subscribe(seen.append)
        manager.close()
        stopped = [e.plugin for e in seen if e.state is PluginState.STOPPED and e.instance is None]
        assert sorted(stopped) == ["child", "gone", "keep", "new", "same"]
    assert wait_gone(lab.pids()) == []


def test_apply_before_start_only_records(lab: Lab) -> None:
    manager = lab.manager({"a": lab.plugin("a")})
    b = lab.manager({"b": lab.plugin("b")}).plugins()
    assert manager.apply(b) == (["b"], ["a"], [])
    assert manager.state("b") is PluginState.DISCOVERED
    with pytest.raises(ConfigError, match="given twice"):
        manager.apply(b * 2)
    assert lab.spawned_names() == set()


# --- using plugins ------------------------------------------------------------------------


def test_calculator_config_reaches_initialize(lab: Lab) -> None:
    data = {
        "handshake": {
            "magic_cookie_key": CALC_HANDSHAKE.magic_cookie_key,
            "magic_cookie_value": CALC_HANDSHAKE.magic_cookie_value,
        },
        "plugins": {"calculator": {"command": [sys.executable, str(CALCULATOR)]}},
        "calculator": {"precision": 4, "angle_unit": "degrees"},
    }
    path = lab.root / "calc.yaml"
    path.write_text(yaml.safe_dump(data))
    with PluginManager.from_config(path) as manager:
        manager.start()
        calc = manager.dispense("calculator", ScientificCalculator)
        assert calc.get_status().state is CalcState.READY
        metadata = calc.get_metadata()
        assert metadata.config["precision"] == "4"
        assert metadata.config["angle_unit"] == "degrees"
        assert calc.divide(2, 3) == 0.6667
        pid = manager.status()[0].instances[0].pid
    assert pid is not None
    assert wait_gone([pid]) == []


def test_status_and_health(lab: Lab) -> None:
    plugins = {
        "pair": lab.plugin("pair", instances=2),
        "bad": lab.plugin("bad", checksum="1" * 64),
        "idle": lab.plugin("idle", enabled=True),
    }
    with lab.manager(plugins) as manager:
        manager.start(["pair", "bad"], strict=False)
        status = {s.name: s for s in manager.status()}
        assert list(status) == ["bad", "idle", "pair"]
        assert status["pair"].state is PluginState.RUNNING
        assert status["pair"].version == "1.0"
        assert len(status["pair"].instances) == 2
        assert all(i.pid in lab.pids("pair") for i in status["pair"].instances)
        assert status["bad"].state is PluginState.FAILED
        assert "checksums did not match" in (status["bad"].reason or "")
        assert status["idle"].state is PluginState.DISCOVERED
        assert status["idle"].instances == ()
        assert status["pair"].to_dict()["state"] == "running"
        health = manager.health()
        assert sorted((h.plugin, h.instance, h.ok) for h in health) == [
            ("pair", 0, True),
            ("pair", 1, True),
        ]
        manager.scale("pair", 1)
        assert len(manager.pool("pair").status().instances) == 1
    assert wait_gone(lab.pids()) == []


def test_auto_scan_starts_a_plugin_dropped_into_a_watched_folder(lab: Lab) -> None:
    watched = lab.root / "watched"
    watched.mkdir()
    config = lab.config({}, discovery={"paths": [str(watched)], "auto_scan": True})
    pid = None
    with PluginManager.from_config(config) as manager:
        manager.start()
        watcher = manager.watch()
        assert manager.watch() is watcher  # idempotent
        # Dropped in after the manager started: a folder with a manifest and the plugin.
        staging = lab.root / "staging"
        staging.mkdir()
        shutil.copy(PLUGIN_SRC, staging / "plugin.py")
        (staging / "tether.toml").write_text(
            'name = "dropped"\nversion = "2.0"\n[run]\ncommand = ["python", "plugin.py"]\n'
        )
        staging.rename(watched / "dropped")
        deadline = time.monotonic() + 30
        while (
            "dropped" not in {s.name for s in manager.plugins()}
            or manager.state("dropped") is not PluginState.RUNNING
        ):
            assert time.monotonic() < deadline, "the dropped plugin never started"
            time.sleep(0.05)
        greeter = manager.dispense("dropped", Greeter, name="greeter")
        assert greeter.hello("scan") == "greeter: hello scan"
        pid = greeter.pid()
        assert manager.status()[0].version == "2.0"
        # Taken away again: stopped.
        shutil.rmtree(watched / "dropped")
        while "dropped" in {s.name for s in manager.plugins()}:
            assert time.monotonic() < deadline + 30, "the removed plugin is still known"
            time.sleep(0.05)
        assert wait_gone([pid]) == []


def test_watch_needs_a_configuration() -> None:
    with pytest.raises(ConfigError, match="from_config"):
        PluginManager().watch()

"""Tests for tether._watch: auto-scan sees plugins dropped into (and removed from) a folder."""

from __future__ import annotations

import itertools
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from _discovery_kit import HANDSHAKE, call_hello, make_config, write_plugin
from tether._discovery import Discovery
from tether._watch import Watcher

# Generous: the watcher normally reacts within a second; a loaded machine may be slow.
WAIT = 30.0


class Recorder:
    """Collects every Discovery the watcher reports; waits for one that satisfies a test."""

    def __init__(self) -> None:
        self.calls: list[Discovery] = []
        self._changed = threading.Condition()

    def __call__(self, found: Discovery) -> None:
        with self._changed:
            self.calls.append(found)
            self._changed.notify_all()

    def wait_for(self, check: Callable[[Discovery], bool]) -> Discovery:
        with self._changed:
            ok = self._changed.wait_for(lambda: bool(self.calls) and check(self.calls[-1]), WAIT)
            assert ok, f"no matching discovery; last: {self.calls[-1:]}"
            return self.calls[-1]


@pytest.fixture
def watchers() -> Iterator[list[Watcher]]:
    made: list[Watcher] = []
    yield made
    for watcher in made:
        watcher.stop()


def names(found: Discovery) -> list[str]:
    return sorted(found.by_name())


@pytest.mark.parametrize("watch", [True, False], ids=["watchfiles", "polling"])
def test_a_plugin_dropped_into_a_watched_folder_is_found(
    tmp_path: Path, watchers: list[Watcher], watch: bool
) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    write_plugin(folder / "first", "first")
    # A long interval when watching: only file events can make it notice quickly (the test
    # still passes if it does not, just slower, since it never asserts on time).
    interval = 5.0 if watch else 0.2
    config = make_config(
        discovery={"paths": [str(folder)], "watch": watch, "scan_interval": interval}
    )
    recorder = Recorder()
    watcher = Watcher(config, recorder, handshake=HANDSHAKE)
    watchers.append(watcher)
    watcher.start()
    assert names(recorder.wait_for(lambda d: True)) == ["first"]

    # Built elsewhere, then moved in: the folder appears complete, as `mv` or a deploy does.
    staging = write_plugin(tmp_path / "staging" / "dropped", "dropped", answer="dropped in")
    shutil.move(staging, folder / "dropped")
    found = recorder.wait_for(lambda d: "dropped" in d.by_name())
    assert names(found) == ["dropped", "first"]
    assert call_hello(found.by_name()["dropped"]) == "dropped in"

    shutil.rmtree(folder / "dropped")
    found = recorder.wait_for(lambda d: "dropped" not in d.by_name())
    assert names(found) == ["first"]

    watcher.stop()
    assert not any(t.name == "tether-watcher" and t.is_alive() for t in threading.enumerate())
    # Each report was a change: no two consecutive calls saw the same plugins.
    seen = [names(d) for d in recorder.calls]
    assert all(a != b for a, b in itertools.pairwise(seen))


def test_a_folder_that_appears_later_is_watched(tmp_path: Path, watchers: list[Watcher]) -> None:
    folder = tmp_path / "later"
    config = make_config(discovery={"paths": [str(folder)], "scan_interval": 0.2})
    recorder = Recorder()
    watcher = Watcher(config, recorder, handshake=HANDSHAKE)
    watchers.append(watcher)
    watcher.start()
    assert names(recorder.wait_for(lambda d: True)) == []
    write_plugin(tmp_path / "staging" / "late", "late")
    folder.mkdir()
    shutil.move(tmp_path / "staging" / "late", folder / "late")
    assert names(recorder.wait_for(lambda d: "late" in d.by_name())) == ["late"]
    # Once the folder exists it is watched: a bad manifest shows up as a problem.
    bad = folder / "bad"
    bad.mkdir()
    (bad / "tether.toml").write_text("not toml at all = = =\n")
    found = recorder.wait_for(lambda d: bool(d.problems))
    assert str(bad / "tether.toml") in found.problems[0]
    assert names(found) == ["late"]


def test_scan_reports_only_changes_and_callback_errors_are_contained(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "plugins"
    write_plugin(folder / "one", "one")
    config = make_config(discovery={"paths": [str(folder)]})
    calls: list[Discovery] = []

    def failing(found: Discovery) -> None:
        calls.append(found)
        raise RuntimeError("callback broke")

    watcher = Watcher(config, failing, handshake=HANDSHAKE)
    assert names(watcher.scan()) == ["one"]
    assert len(calls) == 1
    assert "callback broke" in caplog.text
    watcher.scan()
    assert len(calls) == 1  # nothing changed: no call
    write_plugin(folder / "two", "two")
    watcher.scan()
    assert len(calls) == 2
    assert names(calls[-1]) == ["one", "two"]

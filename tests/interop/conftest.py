"""Fixtures for the go-plugin interop tests: the Go peers, built once and cached across runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from interop.build import DEFAULT_DEST, GO_BUILD_TIMEOUT, build
from interop.peers import Peers

# Binaries, GOPATH (with the generated protobuf code) and Go build cache live here.
CACHE_DIR = DEFAULT_DEST

_TIMINGS = pytest.StashKey[list[str]]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The first test to use go_bins pays for a cold build (and maybe an apt install), which
    # the project-wide 60 s timeout cannot cover. Tests can still lower it with their own mark.
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "go_bins" in fixtures and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(GO_BUILD_TIMEOUT + 120))


@pytest.fixture(scope="session")
def go_bins() -> dict[str, Path]:
    """{"kvhost", "kvplugin", "counterhost", "counterplugin", "negotiatedhost"} -> binary.

    Installs the Debian toolchain when missing and fails (never skips) if the build fails.
    """
    return build(CACHE_DIR)


@pytest.fixture
def peers(tmp_path: Path) -> Peers:
    """A fresh cwd and TMPDIR for running Go hosts/plugins (see Peers.run)."""
    cwd, tmpdir = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmpdir.mkdir()
    return Peers(cwd, tmpdir)


@pytest.fixture
def report_timing(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record a line for the "interop timings" section of the terminal summary."""
    lines = request.config.stash.setdefault(_TIMINGS, [])

    def report(line: str) -> None:
        lines.append(f"{request.node.name}: {line}")

    return report


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(_TIMINGS, [])
    if lines:
        terminalreporter.section("interop timings")
        for line in lines:
            terminalreporter.write_line(line)

"""Tests for tether._venv: per-plugin virtual environments (`tether install`).

Two plugins need clashing versions of one library (`clashlib` 1.0 and 2.0, wheels built by
hand in the test) and run side by side, each in its own environment.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from _discovery_kit import build_clashlib, build_wheel, call_hello, make_config, write_plugin
from tether._config import ManagerConfig
from tether._discovery import discover
from tether._errors import InstallError, TetherError
from tether._spec import PluginSpec
from tether._venv import (
    STAMP_NAME,
    Installer,
    _choose_installer,
    environment_python,
    environment_state,
    find_uv,
    install,
    tether_requirement,
    venv_python,
)


def clash_setup(tmp_path: Path) -> tuple[ManagerConfig, Path]:
    """Two plugin folders needing clashlib 1.0 and 2.0 (by relative path), and a config."""
    wheels = tmp_path / "plugins" / "wheels"
    build_clashlib(wheels, "1.0")
    build_clashlib(wheels, "2.0")
    for name, version in (("old", "1.0"), ("new", "2.0")):
        write_plugin(
            tmp_path / "plugins" / name,
            name,
            clashlib=True,
            requirements=[f"../wheels/clashlib-{version}-py3-none-any.whl"],
        )
    envs = tmp_path / "envs"
    config = make_config(discovery={"paths": [str(tmp_path / "plugins")]}, environments_dir=envs)
    return config, envs


def spec_of(config: ManagerConfig, name: str) -> PluginSpec:
    found = discover(config)
    assert found.problems == []
    return found.by_name()[name]


# Installs download tether's dependencies when the package caches are cold (a fresh CI
# machine): far slower than the suite's 60 s default, and not a hang.
pytestmark = pytest.mark.timeout(600)


def test_clashing_requirements_run_side_by_side(tmp_path: Path) -> None:
    assert importlib.util.find_spec("clashlib") is None  # the host never sees it
    assert find_uv() is not None  # the dev extra installs uv: auto must pick it
    config, envs = clash_setup(tmp_path)
    for name in ("old", "new"):
        spec = spec_of(config, name)
        assert spec.problem is not None
        assert f"tether install {name}" in spec.problem
        steps: list[str] = []
        python = install(spec, envs, progress=steps.append)
        assert python == venv_python(envs / name)
        assert any("(uv)" in step for step in steps)
        assert environment_python(envs, name, spec.settings.requirements) == python
        stamp = json.loads((envs / name / STAMP_NAME).read_text())
        assert stamp["installer"] == "uv"
    old, new = spec_of(config, "old"), spec_of(config, "new")
    assert old.command[0] == str(venv_python(envs / "old"))
    assert call_hello(old) == "1.0"
    assert call_hello(new) == "2.0"
    assert importlib.util.find_spec("clashlib") is None
    # Up to date: nothing to do.
    steps = []
    install(old, envs, progress=steps.append)
    assert steps == ["old: environment is up to date"]
    # No build directories are left next to the environments.
    assert sorted(p.name for p in envs.iterdir()) == ["new", "old"]


def test_changed_requirements_make_the_environment_out_of_date(tmp_path: Path) -> None:
    config, envs = clash_setup(tmp_path)
    install(spec_of(config, "old"), envs)
    # The plugin now wants the other version.
    manifest = tmp_path / "plugins" / "old" / "tether.toml"
    manifest.write_text(manifest.read_text().replace("clashlib-1.0", "clashlib-2.0"))
    spec = spec_of(config, "old")
    assert environment_state(envs, "old", spec.settings.requirements) == "stale"
    assert environment_python(envs, "old", spec.settings.requirements) is None
    assert spec.problem == (
        "plugin old's environment is out of date: requirements changed since it was "
        "installed: run `tether install old`"
    )
    install(spec, envs)
    assert call_hello(spec_of(config, "old")) == "2.0"
    # A local wheel rebuilt in place (same name) also makes it out of date.
    wheel = tmp_path / "plugins" / "wheels" / "clashlib-2.0-py3-none-any.whl"
    wheel.unlink()
    build_wheel(
        wheel.parent, "clashlib", "2.0", {"clashlib/__init__.py": 'VERSION = "2.0 rebuilt"\n'}
    )
    spec = spec_of(config, "old")
    assert environment_state(envs, "old", spec.settings.requirements) == "stale"


def test_a_failing_requirement_leaves_no_environment(tmp_path: Path) -> None:
    write_plugin(tmp_path / "plugins" / "bad", "bad", requirements=["./no-such-dir/lib.whl"])
    envs = tmp_path / "envs"
    config = make_config(discovery={"paths": [str(tmp_path / "plugins")]}, environments_dir=envs)
    spec = spec_of(config, "bad")
    with pytest.raises(InstallError) as caught:
        install(spec, envs)
    error = caught.value
    assert isinstance(error, TetherError)
    assert "installing the requirements of plugin bad" in str(error)
    assert "no-such-dir" in str(error)  # the command, and the installer's own words
    assert error.command
    assert error.output
    assert list(envs.iterdir()) == []
    assert environment_state(envs, "bad", spec.settings.requirements) == "missing"


def test_a_failed_reinstall_keeps_the_previous_environment(tmp_path: Path) -> None:
    config, envs = clash_setup(tmp_path)
    install(spec_of(config, "old"), envs)
    manifest = tmp_path / "plugins" / "old" / "tether.toml"
    manifest.write_text(manifest.read_text().replace("clashlib-1.0", "clashlib-9.9"))
    with pytest.raises(InstallError):
        install(spec_of(config, "old"), envs)
    assert sorted(p.name for p in envs.iterdir()) == ["old"]
    # Still the old, working environment (for the old requirements).
    manifest.write_text(manifest.read_text().replace("clashlib-9.9", "clashlib-1.0"))
    assert call_hello(spec_of(config, "old")) == "1.0"


def test_install_with_venv_and_pip(tmp_path: Path) -> None:
    config, envs = clash_setup(tmp_path)
    steps: list[str] = []
    spec = spec_of(config, "new")
    install(spec, envs, installer="pip", progress=steps.append)
    assert any("(pip)" in step for step in steps)
    assert json.loads((envs / "new" / STAMP_NAME).read_text())["installer"] == "pip"
    assert call_hello(spec_of(config, "new")) == "2.0"
    # Built elsewhere and renamed into place, yet its scripts name where it is now.
    activate = (envs / "new" / "bin" / "activate").read_text()
    assert str(envs / "new") in activate
    assert ".building-" not in activate


def test_installer_choice_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, envs = clash_setup(tmp_path)
    spec = spec_of(config, "old")
    monkeypatch.setenv("TETHER_INSTALLER", "conda")
    with pytest.raises(InstallError, match="TETHER_INSTALLER"):
        install(spec, envs)
    assert not envs.exists()


@pytest.mark.parametrize(
    ("forced", "asked", "expected"),
    [
        ("", "auto", "uv"),
        ("pip", "auto", "pip"),
        ("uv", "auto", "uv"),
        ("", "pip", "pip"),
        ("pip", "uv", "uv"),  # an explicit choice beats the variable
    ],
)
def test_installer_choice(
    monkeypatch: pytest.MonkeyPatch, forced: str, asked: Installer, expected: str
) -> None:
    monkeypatch.setenv("TETHER_INSTALLER", forced)
    kind, uv = _choose_installer(asked)
    assert kind == expected
    assert (uv is not None) == (expected == "uv")


def test_tether_is_installed_from_where_it_came_from() -> None:
    # The test environment has tether installed from its source tree (editable).
    requirement = tether_requirement()
    assert requirement[0] == "-e"
    assert (Path(requirement[1]) / "pyproject.toml").is_file()

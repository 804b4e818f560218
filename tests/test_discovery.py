"""Tests for tether._discovery: configuration entries, manifests in paths, entry points."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import tether
from _discovery_kit import (
    HANDSHAKE,
    call_hello,
    make_config,
    write_plugin,
)
from tether._discovery import discover
from tether._venv import STAMP_NAME, _stamp, environments_dir, venv_python

OTHER = tether.HandshakeConfig(
    protocol_version=1, magic_cookie_key="TETHER_OTHER", magic_cookie_value="other"
)
HANDSHAKE_SETTINGS = {
    "magic_cookie_key": HANDSHAKE.magic_cookie_key,
    "magic_cookie_value": HANDSHAKE.magic_cookie_value,
}
OTHER_SETTINGS = {
    "magic_cookie_key": OTHER.magic_cookie_key,
    "magic_cookie_value": OTHER.magic_cookie_value,
}


def test_manifests_are_found_with_the_patterns_and_started(tmp_path: Path) -> None:
    write_plugin(tmp_path / "plugins" / "alpha", "alpha", answer="from alpha")
    write_plugin(tmp_path / "plugins" / "nested" / "beta", "beta", answer="from beta")
    write_plugin(tmp_path / "elsewhere" / "gamma", "gamma")
    config = make_config(
        discovery={
            "paths": [str(tmp_path / "plugins")],
            "patterns": ["*/tether.toml", "*/*/tether.toml"],
        }
    )
    found = discover(config, environ={"PATH": "/usr/bin"})
    assert found.problems == []
    specs = found.by_name()
    assert sorted(specs) == ["alpha", "beta"]
    alpha = specs["alpha"]
    assert alpha.cwd == tmp_path / "plugins" / "alpha"
    # `python` is the interpreter running tether; the script is resolved and verified.
    assert alpha.command == (sys.executable, str(alpha.cwd / "plugin.py"))
    assert alpha.verify_file == alpha.cwd / "plugin.py"
    assert alpha.handshake == HANDSHAKE
    assert alpha.source == str(alpha.cwd / "tether.toml")
    assert alpha.environment == {"PATH": "/usr/bin"}
    assert call_hello(alpha) == "from alpha"
    assert call_hello(specs["beta"]) == "from beta"


def test_missing_paths_and_manifests_without_a_command(tmp_path: Path) -> None:
    write_plugin(tmp_path / "p" / "idle", "idle", run=None)
    config = make_config(
        discovery={"paths": [str(tmp_path / "p"), str(tmp_path / "not-yet")]},
    )
    found = discover(config)
    assert found.problems == []
    idle = found.by_name()["idle"]
    assert idle.command == ()
    assert idle.problem is not None
    assert "[run]" in idle.problem
    assert "command" in idle.problem


def test_manifest_commands_other_than_a_script(tmp_path: Path) -> None:
    # A module run with -m (its package folder is not turned into a path)...
    mod = write_plugin(tmp_path / "p" / "mod", "mod", answer="as a module", run=None)
    (mod / "greeter").mkdir()
    (mod / "greeter" / "__init__.py").write_text("")
    (mod / "plugin.py").rename(mod / "greeter" / "__main__.py")
    with (mod / "tether.toml").open("a") as toml:
        toml.write('[run]\ncommand = ["python3", "-m", "greeter"]\n')
    # ...and an entry point in the manifest's folder, run by tether's entry-point runner.
    write_plugin(
        tmp_path / "p" / "ep", "ep", answer="by entry point", run='entry_point = "plugin:main"'
    )
    found = discover(make_config(discovery={"paths": [str(tmp_path / "p")]}))
    assert found.problems == []
    specs = found.by_name()
    assert specs["mod"].command == (sys.executable, "-m", "greeter")
    assert specs["mod"].verify_file is None
    assert specs["ep"].command == (sys.executable, "-m", "tether._entry", "plugin:main")
    assert call_hello(specs["mod"]) == "as a module"
    assert call_hello(specs["ep"]) == "by entry point"


def test_a_bad_manifest_is_reported_and_the_others_found(tmp_path: Path) -> None:
    write_plugin(tmp_path / "p" / "good", "good")
    bad = tmp_path / "p" / "bad"
    bad.mkdir(parents=True)
    (bad / "tether.toml").write_text('name = "bad"\nversion = "not a version"\n')
    broken = tmp_path / "p" / "broken"
    broken.mkdir()
    (broken / "tether.toml").write_text("name = [unclosed\n")
    found = discover(make_config(discovery={"paths": [str(tmp_path / "p")]}))
    assert sorted(found.by_name()) == ["good"]
    assert len(found.problems) == 2
    text = "\n".join(found.problems)
    assert str(bad / "tether.toml") in text
    assert "version" in text
    assert str(broken / "tether.toml") in text
    assert "invalid TOML" in text


def test_an_unusable_pattern_is_a_problem(tmp_path: Path) -> None:
    write_plugin(tmp_path / "p" / "good", "good")
    config = make_config(
        discovery={
            "paths": [str(tmp_path / "p")],
            "patterns": ["/abs/tether.toml", "*/tether.toml"],
        }
    )
    found = discover(config)
    assert sorted(found.by_name()) == ["good"]
    [problem] = found.problems
    assert "'/abs/tether.toml'" in problem


def test_certificate_files_are_refused_not_ignored(tmp_path: Path) -> None:
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text("unused")
    config = make_config(
        security={
            "tls": {"cert_file": str(tmp_path / "cert.pem"), "key_file": str(tmp_path / "key.pem")}
        }
    )
    found = discover(config, source="plugins.yaml")
    assert any(
        "plugins.yaml: security.tls" in problem and "security.auto_mtls: true" in problem
        for problem in found.problems
    ), found.problems


def test_two_manifests_with_one_name_are_both_refused(tmp_path: Path) -> None:
    first = write_plugin(tmp_path / "p" / "one", "twin")
    second = write_plugin(tmp_path / "p" / "two", "twin")
    write_plugin(tmp_path / "p" / "solo", "solo")
    found = discover(make_config(discovery={"paths": [str(tmp_path / "p")]}))
    assert sorted(found.by_name()) == ["solo"]
    [problem] = found.problems
    assert "'twin'" in problem
    assert str(first / "tether.toml") in problem
    assert str(second / "tether.toml") in problem


def test_a_config_entry_and_a_manifest_are_one_plugin(tmp_path: Path) -> None:
    folder = write_plugin(
        tmp_path / "p" / "calc",
        "calc",
        answer="manifest command",
        extra='description = "adds"\n[interfaces]\ncalc = [1, 2]\n[requires]\nstore = ">=1"',
    )
    (folder / "other.py").write_text(
        (folder / "plugin.py").read_text().replace("manifest command", "config command")
    )
    config = make_config(
        discovery={"paths": [str(tmp_path / "p")]},
        plugins={
            "calc": {"command": ["python", "other.py"], "cwd": str(folder), "instances": 2},
        },
    )
    found = discover(config, source="cfg.yaml")
    assert found.problems == []
    [spec] = found.specs
    # The configuration's run settings win; the manifest says who the plugin is.
    assert spec.command == (sys.executable, "other.py")
    assert spec.settings.instances == 2
    assert spec.manifest.description == "adds"
    assert spec.manifest.interfaces == {"calc": (1, 2)}
    assert "store" in spec.manifest.requires
    assert spec.handshake == HANDSHAKE  # the manifest's, as the config names none
    assert spec.source == "cfg.yaml: plugins.calc"
    assert spec.verify_file == folder / "other.py"
    assert call_hello(spec) == "config command"


def test_disabled_in_the_config_hides_a_discovered_plugin(tmp_path: Path) -> None:
    folder = write_plugin(tmp_path / "p" / "calc", "calc")
    config = make_config(
        discovery={"paths": [str(tmp_path / "p")]},
        plugins={
            "calc": {"command": ["python", "plugin.py"], "cwd": str(folder), "enabled": False}
        },
    )
    assert discover(config).specs == []


def test_handshake_precedence(tmp_path: Path) -> None:
    write_plugin(tmp_path / "p" / "own", "own")  # its manifest has a [handshake]
    write_plugin(tmp_path / "p" / "bare", "bare", handshake=False)
    folder = write_plugin(tmp_path / "q" / "cfg", "cfg")
    paths = {"paths": [str(tmp_path / "p")]}
    cfg_entry = {"command": ["python", "plugin.py"], "cwd": str(folder)}

    # plugin's config handshake > manifest [handshake]
    config = make_config(
        discovery=paths,
        handshake=OTHER_SETTINGS,
        plugins={"cfg": {**cfg_entry, "handshake": OTHER_SETTINGS}},
    )
    specs = discover(config).by_name()
    assert specs["cfg"].handshake == OTHER
    # manifest [handshake] > top-level config handshake
    assert specs["own"].handshake == HANDSHAKE
    # top-level config handshake > the argument
    found = discover(config, handshake=HANDSHAKE)
    assert found.by_name()["bare"].handshake == OTHER
    # the argument, when nothing else names one
    config = make_config(discovery=paths)
    assert discover(config, handshake=OTHER).by_name()["bare"].handshake == OTHER
    # none at all: a problem, and the plugin is not listed
    found = discover(config)
    assert sorted(found.by_name()) == ["own"]
    [problem] = found.problems
    assert "no handshake for plugin bare" in problem
    assert "[handshake]" in problem


def test_python_is_replaced_by_the_plugin_environment(tmp_path: Path) -> None:
    folder = write_plugin(
        tmp_path / "p" / "needy",
        "needy",
        requirements=["./vendor/lib-1.0-py3-none-any.whl", "attrs"],
    )
    envs = tmp_path / "envs"
    config = make_config(discovery={"paths": [str(tmp_path / "p")]}, environments_dir=str(envs))
    spec = discover(config).by_name()["needy"]
    # Local requirements are resolved against the manifest's folder.
    wheel = str(folder / "vendor" / "lib-1.0-py3-none-any.whl")
    assert list(spec.settings.requirements) == [wheel, "attrs"]
    assert spec.problem == "plugin needy needs its own environment (2 requirements): " + (
        "run `tether install needy`"
    )
    # A fake installed environment (what `install` leaves), stamped for other requirements.
    env_dir = envs / "needy"
    python = venv_python(env_dir)
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    _stamp(env_dir, [wheel], "uv")
    spec = discover(config).by_name()["needy"]
    assert spec.problem is not None
    assert "out of date" in spec.problem
    assert "tether install needy" in spec.problem
    # Stamped for exactly these requirements: the plugin runs with the environment's python.
    (env_dir / STAMP_NAME).unlink()
    _stamp(env_dir, [wheel, "attrs"], "uv")
    spec = discover(config).by_name()["needy"]
    assert spec.problem is None
    assert spec.command[0] == str(python)
    assert spec.environment["VIRTUAL_ENV"] == str(env_dir)


def test_config_requirements_are_relative_to_cwd_or_come_from_the_manifest(
    tmp_path: Path,
) -> None:
    folder = write_plugin(tmp_path / "p" / "lib", "lib", requirements=["./from-manifest.whl"])
    entry = {"command": ["python", "plugin.py"], "cwd": str(folder)}
    config = make_config(
        discovery={"paths": [str(tmp_path / "p")]},
        environments_dir=str(tmp_path / "envs"),
        plugins={"lib": entry},
    )
    [spec] = discover(config).specs
    assert list(spec.settings.requirements) == [str(folder / "from-manifest.whl")]
    assert spec.problem is not None
    assert "tether install lib" in spec.problem
    config = make_config(plugins={"lib": {**entry, "requirements": ["../x.whl", "attrs"]}})
    [spec] = discover(config, handshake=HANDSHAKE).specs
    assert list(spec.settings.requirements) == [str(folder.parent / "x.whl"), "attrs"]


def test_environments_dir_defaults(tmp_path: Path) -> None:
    assert environments_dir(None, {"TETHER_HOME": str(tmp_path)}) == tmp_path / "envs"
    assert environments_dir(None, {}) == Path.home() / ".local" / "share" / "tether" / "envs"
    config = make_config(environments_dir=str(tmp_path / "e"))
    assert environments_dir(config, {"TETHER_HOME": "/x"}) == tmp_path / "e"


# --------------------------------------------------------------------------------------
# Entry points: a fake distribution on a temporary path.


def make_distribution(root: Path, package: str, plugin_name: str, *, manifest: bool) -> Path:
    """`root` holding package `package` (a plugin with `main`) and its dist-info, with an
    entry point `plugin_name = package.plugin:main` in the group `tether.plugins`."""
    pkg = root / package
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    write_plugin(pkg, plugin_name, answer=f"entry point {plugin_name}", run=None)
    if not manifest:
        (pkg / "tether.toml").unlink()
    info = root / f"{package}-2.5.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {package}\nVersion: 2.5\nSummary: a plugin package\n"
    )
    (info / "entry_points.txt").write_text(
        f"[tether.plugins]\n{plugin_name} = {package}.plugin:main\n"
    )
    return root


def test_entry_point_plugins_are_found_and_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = make_distribution(tmp_path / "site", "epcalc_pkg", "epcalc", manifest=True)
    make_distribution(tmp_path / "site2", "epmeta_pkg", "epmeta", manifest=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.syspath_prepend(str(tmp_path / "site2"))
    importlib.invalidate_caches()
    config = make_config(discovery={"entry_points": True})
    found = discover(config, handshake=HANDSHAKE)
    assert found.problems == []
    specs = found.by_name()
    calc = specs["epcalc"]
    assert calc.command == (sys.executable, "-m", "tether._entry", "epcalc_pkg.plugin:main")
    assert calc.cwd == site
    assert calc.manifest.source == str(site / "epcalc_pkg" / "tether.toml")
    assert calc.source.startswith("entry point tether.plugins:epcalc")
    # The distribution is on a path the plugin's interpreter would not search by itself.
    assert calc.environment["PYTHONPATH"] == str(site)
    assert calc.verify_file is None
    # Without a tether.toml the distribution's metadata is the manifest.
    meta = specs["epmeta"]
    assert str(meta.manifest.version) == "2.5"
    assert meta.manifest.description == "a plugin package"
    assert call_hello(calc) == "entry point epcalc"
    assert call_hello(meta) == "entry point epmeta"
    # Turned off, entry points are not looked at.
    assert discover(make_config(), handshake=HANDSHAKE).specs == []


def test_an_entry_point_and_a_manifest_with_one_name_conflict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_distribution(tmp_path / "site", "dup_pkg", "dup", manifest=False)
    folder = write_plugin(tmp_path / "p" / "dup", "dup")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    config = make_config(discovery={"entry_points": True, "paths": [str(tmp_path / "p")]})
    found = discover(config, handshake=HANDSHAKE)
    assert found.specs == []
    [problem] = found.problems
    assert "entry point tether.plugins:dup" in problem
    assert str(folder / "tether.toml") in problem


def test_config_entry_point_runs_with_the_runner(tmp_path: Path) -> None:
    make_distribution(tmp_path / "code", "cfgep_pkg", "cfgep", manifest=False)
    config = make_config(
        handshake=HANDSHAKE_SETTINGS,
        plugins={"cfgep": {"entry_point": "cfgep_pkg.plugin:main", "cwd": str(tmp_path / "code")}},
    )
    [spec] = discover(config).specs
    assert spec.command == (sys.executable, "-m", "tether._entry", "cfgep_pkg.plugin:main")
    assert call_hello(spec) == "entry point cfgep"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("no_such_module_xyz:main", "ModuleNotFoundError"),
        ("json:no_such_attribute", "AttributeError"),
        ("json:__doc__", "not a callable"),
    ],
)
def test_the_runner_reports_what_it_cannot_load(reference: str, expected: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tether._entry", reference],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert reference in lines[0]
    assert expected in lines[0]

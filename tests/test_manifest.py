"""Tests for tether._manifest: `tether.toml` files and entry-point plugin metadata."""

from __future__ import annotations

import itertools
import re
import textwrap
from importlib.metadata import EntryPoint, distributions
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import tether
from tether._config import ConfigFileError
from tether._manifest import (
    MANIFEST_NAME,
    Manifest,
    entry_point_manifests,
    load_manifest,
    manifest_from_entry_point,
    manifest_next_to,
    parse_manifest,
)

GOOD = """
name = "calculator"
version = "1.2.0"
description = "Arithmetic over tether"

[interfaces]
calculator = [2, 1, 2]
scientific = [1]

[requires]
storage = ">=2.0,<3"
logger = ""
cache = "*"
"""


def write(directory: Path, text: str, name: str = MANIFEST_NAME) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_full_manifest(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    manifest = load_manifest(path)
    assert manifest.name == "calculator"
    assert manifest.version == Version("1.2.0")
    assert manifest.description == "Arithmetic over tether"
    assert manifest.interfaces == {"calculator": (1, 2), "scientific": (1,)}
    assert manifest.requires == {
        "storage": SpecifierSet(">=2.0,<3"),
        "logger": SpecifierSet(""),
        "cache": SpecifierSet(""),
    }
    assert manifest.source == str(path)
    assert manifest.serves("calculator", 2)
    assert not manifest.serves("calculator", 3)
    assert not manifest.serves("other", 1)
    assert str(manifest) == "calculator 1.2.0"


def test_a_minimal_manifest() -> None:
    manifest = parse_manifest('name = "a"\nversion = "0.1"', "a.toml")
    assert manifest == Manifest("a", Version("0.1"), source="a.toml")


def problem_lines(text: str) -> list[str]:
    with pytest.raises(ConfigFileError) as info:
        parse_manifest(textwrap.dedent(text), "plug/tether.toml")
    header, *lines = str(info.value).splitlines()
    assert header.startswith("invalid plugin manifest plug/tether.toml: ")
    assert isinstance(info.value, tether.ConfigError)
    return [line.strip() for line in lines]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('version = "1.0"', "plug/tether.toml: name: got nothing, expected a value"),
        ('name = "a"', "plug/tether.toml: version: got nothing, expected a value"),
        (
            'name = "a"\nversion = "one"',
            'plug/tether.toml: version: got "one", expected a version such as "1.2.0" (PEP 440)',
        ),
        (
            'name = "a"\nversion = 1',
            "plug/tether.toml: version: got 1, expected a string",
        ),
        (
            'name = "a b"\nversion = "1"',
            'plug/tether.toml: name: got "a b", expected a plugin name',
        ),
        (
            'name = "a"\nversion = "1"\n[requires]\nb = "=>1"',
            'plug/tether.toml: requires.b: got "=>1", expected a version specifier such as',
        ),
        (
            'name = "a"\nversion = "1"\n[requires]\n"b c" = ">=1"',
            'plug/tether.toml: requires.b c: got "b c", expected a plugin name',
        ),
        (
            'name = "a"\nversion = "1"\n[interfaces]\ncalc = [0]',
            "plug/tether.toml: interfaces.calc[0]: got 0, expected an integer >= 1",
        ),
        (
            'name = "a"\nversion = "1"\n[interfaces]\ncalc = []',
            "plug/tether.toml: interfaces.calc: got [], expected at least one API version",
        ),
        (
            'name = "a"\nversion = "1"\n[interfaces]\ncalc = "1"',
            'plug/tether.toml: interfaces.calc: got "1", expected a list',
        ),
        (
            'name = "a"\nversion = "1"\ndescripton = "x"',
            'plug/tether.toml: descripton: unknown field (got "x")',
        ),
    ],
)
def test_manifest_errors_name_file_field_value_and_expectation(text: str, line: str) -> None:
    [found] = problem_lines(text)
    assert found.startswith(line), found


def test_unknown_manifest_field_suggests(tmp_path: Path) -> None:
    [found] = problem_lines('name = "a"\nversion = "1"\n[require]\nb = ">=1"')
    assert "did you mean 'requires'?" in found


def test_all_manifest_problems_together() -> None:
    lines = problem_lines('name = "-"\nversion = "x"\n[requires]\nb = "?"')
    assert [line.split(": ")[1] for line in lines] == ["name", "version", "requires.b"]


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "a"\nversion = \n')
    with pytest.raises(tether.ConfigError, match=r"tether\.toml: invalid TOML: .*line 2"):
        load_manifest(path)


def test_missing_manifest_file(tmp_path: Path) -> None:
    with pytest.raises(tether.ConfigError, match="cannot read plugin manifest"):
        load_manifest(tmp_path / MANIFEST_NAME)


def test_manifest_next_to_a_plugin(tmp_path: Path) -> None:
    write(tmp_path / "calc", GOOD)
    plugin = tmp_path / "calc" / "plugin.py"
    plugin.write_text("")
    from_file = manifest_next_to(plugin)
    from_dir = manifest_next_to(tmp_path / "calc")
    assert from_file is not None
    assert from_file == from_dir
    assert from_file.name == "calculator"
    assert manifest_next_to(tmp_path / "nothing-here.py") is None


# --------------------------------------------------------------------------------------
# Entry points: real distributions written under tmp_path.

_counter = itertools.count()


def make_distribution(
    site: Path,
    *,
    manifest: str | None = None,
    version: str = "1.2.0",
    entry_name: str = "calc",
    subpackage: bool = False,
) -> str:
    """Write an installed distribution with one `tether.plugins` entry point; return its
    package name (unique, so import caches never mix tests up)."""
    package = f"tether_test_plugin_{next(_counter)}"
    pkg_dir = site / package
    pkg_dir.mkdir(parents=True)
    # Importing the plugin's package in the host would be a bug: make it loud.
    (pkg_dir / "__init__.py").write_text("raise RuntimeError('plugin code ran in the host')\n")
    module = package
    if subpackage:
        (pkg_dir / "sub").mkdir()
        (pkg_dir / "sub" / "__init__.py").write_text("raise RuntimeError('imported')\n")
        module = f"{package}.sub"
        if manifest is not None:
            write(pkg_dir / "sub", manifest)
    elif manifest is not None:
        write(pkg_dir, manifest)
    info = site / f"{package}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n"
        "Summary: A calculator from metadata\n"
    )
    (info / "entry_points.txt").write_text(f"[tether.plugins]\n{entry_name} = {module}:main\n")
    return package


def only_entry_point(site: Path) -> EntryPoint:
    [ep] = [ep for d in distributions(path=[str(site)]) for ep in d.entry_points]
    return ep


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "site-packages"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    return directory


def test_entry_point_with_a_packaged_manifest(site: Path) -> None:
    make_distribution(site, manifest=GOOD.replace('"calculator"', '"calc"', 1))
    manifest = manifest_from_entry_point(only_entry_point(site))
    assert manifest.name == "calc"
    assert manifest.interfaces["calculator"] == (1, 2)
    assert manifest.source.endswith(MANIFEST_NAME)


def test_entry_point_manifest_in_a_subpackage(site: Path) -> None:
    make_distribution(site, manifest='name = "calc"\nversion = "3.0"', subpackage=True)
    assert manifest_from_entry_point(only_entry_point(site)).version == Version("3.0")


def test_entry_point_without_manifest_uses_metadata(site: Path) -> None:
    package = make_distribution(site, version="2.5.1")
    manifest = manifest_from_entry_point(only_entry_point(site))
    assert manifest == Manifest(
        name="calc",
        version=Version("2.5.1"),
        description="A calculator from metadata",
        source=f"distribution {package}",
    )


def test_entry_point_name_must_match_its_manifest(site: Path) -> None:
    make_distribution(site, manifest='name = "other"\nversion = "1"')
    with pytest.raises(ConfigFileError) as info:
        manifest_from_entry_point(only_entry_point(site))
    message = str(info.value)
    assert "name: got \"other\", expected 'calc', the name of the entry point" in message


def test_entry_point_with_a_bad_version(site: Path) -> None:
    make_distribution(site, version="not.a.version!")
    with pytest.raises(
        tether.ConfigError, match=re.escape("got version 'not.a.version!', expected a PEP")
    ):
        manifest_from_entry_point(only_entry_point(site))


def test_entry_point_with_a_bad_name(site: Path) -> None:
    make_distribution(site, entry_name="-calc")
    with pytest.raises(tether.ConfigError, match="got name '-calc', expected a plugin name"):
        manifest_from_entry_point(only_entry_point(site))


def test_entry_point_manifests_of_a_group(site: Path) -> None:
    make_distribution(site, entry_name="zeta")
    make_distribution(site, entry_name="alpha", manifest='name = "alpha"\nversion = "9"')
    manifests = entry_point_manifests("tether.plugins", path=[str(site), str(site)])
    assert [(m.name, str(m.version)) for m in manifests] == [("alpha", "9"), ("zeta", "1.2.0")]
    assert entry_point_manifests("other.group", path=[str(site)]) == []


def test_entry_point_manifests_default_path_is_sys_path(site: Path) -> None:
    make_distribution(site, entry_name="sys_path_calc")
    names = [m.name for m in entry_point_manifests()]
    assert "sys_path_calc" in names


def test_run_and_handshake_tables(tmp_path: Path) -> None:
    path = write(
        tmp_path / "calc",
        """
        name = "calc"
        version = "1.0"

        [run]
        command = ["python", "plugin.py", "--fast"]
        protocol = "grpc"
        requirements = ["./vendor/lib-1.0-py3-none-any.whl", "attrs>=23"]

        [handshake]
        magic_cookie_key = "CALC_COOKIE"
        magic_cookie_value = "hello"
        protocol_version = 3
        """,
    )
    manifest = load_manifest(path)
    assert manifest.run.command == ("python", "plugin.py", "--fast")
    assert manifest.run.protocol == "grpc"
    assert manifest.run.requirements == ("./vendor/lib-1.0-py3-none-any.whl", "attrs>=23")
    assert manifest.run.entry_point is None
    assert manifest.directory == tmp_path / "calc"
    assert manifest.handshake == tether.HandshakeConfig(
        protocol_version=3, magic_cookie_key="CALC_COOKIE", magic_cookie_value="hello"
    )


def test_without_run_table_nothing_says_how_to_start() -> None:
    manifest = parse_manifest('name = "calc"\nversion = "1.0"\n', "tether.toml")
    assert manifest.run.command is None
    assert manifest.run.entry_point is None
    assert manifest.run.requirements == ()
    assert manifest.handshake is None
    assert manifest.directory is None


@pytest.mark.parametrize(
    ("table", "field", "expected"),
    [
        ("[run]\ncommand = []", "run.command", "at least 1 item"),
        ("[run]\ncommand = 'python plugin.py'", "run.command", "a list"),
        ("[run]\nprotocol = 'netrpc'", "run.protocol", "one of"),
        ("[run]\nentry_point = 'not an entry point'", "run.entry_point", "package.module"),
        (
            "[run]\ncommand = ['x']\nentry_point = 'a.b:c'",
            "run.entry_point",
            "no entry_point when command is set",
        ),
        ("[run]\ncomand = ['x']", "run.comand", "did you mean 'command'"),
        ("[handshake]\nmagic_cookie_key = 'K'", "handshake.magic_cookie_value", "a value"),
    ],
)
def test_bad_run_and_handshake_tables(table: str, field: str, expected: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        parse_manifest(f'name = "calc"\nversion = "1.0"\n{table}\n', "tether.toml")
    message = str(caught.value)
    assert f"tether.toml: {field}:" in message
    assert expected in message

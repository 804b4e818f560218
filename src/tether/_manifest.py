"""Plugin manifests: who a plugin is, what it serves and which other plugins it needs.

A manifest is a `tether.toml` file next to the plugin (or inside its Python package)::

    name = "calculator"
    version = "1.2.0"                 # PEP 440
    description = "Arithmetic over tether"

    [interfaces]                      # interface name -> the API versions it serves
    calculator = [1, 2]

    [requires]                        # plugin name -> version specifier ("" = any)
    storage = ">=2.0,<3"

    [run]                             # how to start it (optional: without a command or
    command = ["python", "plugin.py"] # entry point the plugin is listed but cannot start)
    protocol = "tether"               # or "grpc"
    requirements = ["./vendor/lib-1.0-py3-none-any.whl", "attrs>=23"]
    # entry_point = "calc.plugin:main" # instead of command: run by tether's entry-point runner

    [handshake]                       # optional; else the host configuration's handshake
    magic_cookie_key = "CALC_PLUGIN"
    magic_cookie_value = "hello"
    protocol_version = 1

Relative paths in `[run]` (command arguments that name files, local requirements such as
`./vendor/x` or a wheel file) are relative to the manifest's directory, which is also the
plugin's working directory. `python`/`python3` as the program means "the interpreter running
tether", or the plugin's own virtual environment when it has requirements.

A plugin installed as a Python entry point (group `tether.plugins`) without a `tether.toml`
in its package gets a manifest built from its distribution's metadata: the entry point's
name, the distribution's Version and Summary, no interfaces and no requirements.

The plugin's package is located without importing it (`importlib.util.find_spec` on the
top-level package only): reading a manifest must not run plugin code in the host.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import Distribution, EntryPoint, distributions, entry_points
from pathlib import Path
from typing import Annotated, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from ._config import (
    DEFAULT_ENTRY_POINT_GROUP,
    ConfigFileError,
    HandshakeSettings,
    PluginName,
    Problem,
    _Problems,
    problems_from_validation,
    validate_plugin_name,
)
from ._errors import ConfigError
from ._handshake import HandshakeConfig

__all__ = [
    "MANIFEST_NAME",
    "Manifest",
    "RunInfo",
    "entry_point_manifests",
    "load_manifest",
    "manifest_from_entry_point",
    "manifest_next_to",
    "parse_manifest",
]

MANIFEST_NAME = "tether.toml"

# The object reference syntax of `importlib.metadata.EntryPoint.value`.
_ENTRY_POINT = re.compile(r"[\w.]+(\s*:\s*[\w.]+)?\Z")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """How a manifest says its plugin is started (the `[run]` table), paths as written."""

    command: tuple[str, ...] | None = None
    entry_point: str | None = None
    protocol: Literal["tether", "grpc"] | None = None
    requirements: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a plugin says about itself."""

    name: str
    version: Version
    description: str = ""
    # interface name -> API versions served, ascending
    interfaces: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # plugin name -> acceptable versions
    requires: Mapping[str, SpecifierSet] = field(default_factory=dict)
    # where it was read from, for messages: a file path or "distribution <name>"
    source: str = ""
    # how to start it ([run]) and the handshake it expects ([handshake]), when it says
    run: RunInfo = field(default_factory=RunInfo)
    handshake: HandshakeConfig | None = None
    # the directory of its tether.toml (None when built from package metadata)
    directory: Path | None = None

    def serves(self, interface: str, api_version: int) -> bool:
        return api_version in self.interfaces.get(interface, ())

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


def _version(value: str) -> str:
    try:
        Version(value)
    except InvalidVersion:
        raise ValueError('a version such as "1.2.0" (PEP 440)') from None
    return value


def _specifier(value: str) -> str:
    try:
        SpecifierSet("" if value.strip() == "*" else value)
    except InvalidSpecifier:
        raise ValueError('a version specifier such as ">=1.2,<2" ("" for any version)') from None
    return value


def _entry_point_ref(value: str) -> str:
    if not _ENTRY_POINT.match(value.strip()):
        raise ValueError("an entry point reference 'package.module:object'")
    return value.strip()


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("a non-empty string")
    return value


_NonEmpty = Annotated[str, AfterValidator(_non_empty)]


class _RunTable(BaseModel):
    """`[run]`: how to start the plugin."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: list[_NonEmpty] | None = Field(default=None, min_length=1)
    entry_point: Annotated[str, AfterValidator(_entry_point_ref)] | None = None
    protocol: Literal["tether", "grpc"] | None = None
    requirements: list[_NonEmpty] = Field(default_factory=list)

    @field_validator("entry_point", mode="after")
    @classmethod
    def _one_way(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("command") is not None:
            raise ValueError("no entry_point when command is set (a plugin is started one way)")
        return value

    def to_run(self) -> RunInfo:
        return RunInfo(
            command=tuple(self.command) if self.command is not None else None,
            entry_point=self.entry_point,
            protocol=self.protocol,
            requirements=tuple(self.requirements),
        )


class _ManifestFile(BaseModel):
    """The schema of `tether.toml`, validated before it becomes a `Manifest`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: PluginName
    version: Annotated[str, AfterValidator(_version)]
    description: str = ""
    interfaces: dict[str, list[Annotated[int, Field(ge=1)]]] = Field(default_factory=dict)
    requires: dict[PluginName, Annotated[str, AfterValidator(_specifier)]] = Field(
        default_factory=dict
    )
    run: _RunTable = Field(default_factory=_RunTable)
    handshake: HandshakeSettings | None = None

    @field_validator("interfaces", mode="after")
    @classmethod
    def _some_versions(cls, value: dict[str, list[int]]) -> dict[str, list[int]]:
        problems = [
            Problem((name,), versions, "at least one API version (an integer >= 1)")
            for name, versions in value.items()
            if not versions
        ]
        if problems:
            raise _Problems(problems)
        return value

    def to_manifest(self, source: str) -> Manifest:
        return Manifest(
            name=self.name,
            version=Version(self.version),
            description=self.description,
            interfaces={k: tuple(sorted(set(v))) for k, v in self.interfaces.items()},
            requires={
                k: SpecifierSet("" if v.strip() == "*" else v) for k, v in self.requires.items()
            },
            source=source,
            run=self.run.to_run(),
            handshake=self.handshake.to_handshake() if self.handshake is not None else None,
        )


def parse_manifest(text: str, source: str, directory: Path | None = None) -> Manifest:
    """Parse the text of a `tether.toml`; `source` names it in errors, `directory` is where
    it lives (what relative paths in `[run]` are relative to)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    try:
        model = _ManifestFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigFileError(
            source, problems_from_validation(exc, _ManifestFile), "plugin manifest"
        ) from None
    manifest = model.to_manifest(source)
    if directory is None:
        return manifest
    return dataclasses.replace(manifest, directory=directory)


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a `tether.toml` file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read plugin manifest {os.fspath(path)}: {exc}") from exc
    return parse_manifest(text, os.fspath(path), Path(path).absolute().parent)


def manifest_next_to(plugin: str | os.PathLike[str]) -> Manifest | None:
    """The manifest beside a plugin file (or inside a plugin directory), None if it has none."""
    path = Path(plugin)
    candidate = (path if path.is_dir() else path.parent) / MANIFEST_NAME
    return load_manifest(candidate) if candidate.is_file() else None


def _package_manifest(module: str) -> Path | None:
    """`tether.toml` in the package holding `module` or any package above it, unimported."""
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])  # a top-level name: nothing is executed
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        # The innermost package first: a sub-package may be the plugin.
        for depth in range(len(parts), 0, -1):
            candidate = Path(location, *parts[1:depth], MANIFEST_NAME)
            if candidate.is_file():
                return candidate
    return None


def manifest_from_entry_point(entry_point: EntryPoint) -> Manifest:
    """The manifest of an entry-point plugin: its package's `tether.toml`, or its metadata."""
    found = _package_manifest(entry_point.module)
    if found is not None:
        manifest = load_manifest(found)
        if manifest.name != entry_point.name:
            raise ConfigFileError(
                str(found),
                [
                    Problem(
                        ("name",),
                        manifest.name,
                        f"{entry_point.name!r}, the name of the entry point "
                        f"'{entry_point.name} = {entry_point.value}' that ships it",
                    )
                ],
                "plugin manifest",
            )
        return manifest
    return _metadata_manifest(entry_point)


def _metadata_manifest(entry_point: EntryPoint) -> Manifest:
    dist = entry_point.dist
    where = f"entry point {entry_point.name!r} ({entry_point.value})"
    if dist is None:
        raise ConfigError(f"{where}: no distribution metadata, so no version is known")
    source = f"distribution {dist.name}"
    expected = validate_plugin_name(entry_point.name)
    if expected is not None:
        raise ConfigError(f"{where}: got name {entry_point.name!r}, expected {expected}")
    try:
        version = Version(dist.version)
    except InvalidVersion:
        raise ConfigError(
            f"{source}: {where}: got version {dist.version!r}, expected a PEP 440 version"
        ) from None
    return Manifest(
        name=entry_point.name,
        version=version,
        description=_summary(dist),
        source=source,
    )


def _summary(dist: Distribution) -> str:
    summary = dist.metadata.json.get("summary", "")
    return summary if isinstance(summary, str) else ""


def entry_point_manifests(
    group: str = DEFAULT_ENTRY_POINT_GROUP, path: Iterable[str] | None = None
) -> list[Manifest]:
    """Manifests of every entry point in `group`, sorted by name.

    `path` limits the search to those directories (default: `sys.path`).
    """
    found: Iterable[EntryPoint]
    if path is None:
        found = entry_points(group=group)
    else:
        # Keyed by distribution and entry point: a directory listed twice, or two
        # metadata copies of one distribution, must not look like two plugins.
        unique: dict[tuple[str, str], EntryPoint] = {}
        for dist in distributions(path=list(path)):
            for ep in dist.entry_points.select(group=group):
                unique.setdefault((dist.name, ep.name), ep)
        found = unique.values()
    return sorted((manifest_from_entry_point(ep) for ep in found), key=lambda m: m.name)

"""Finding plugins: configuration entries, manifests in the discovery paths, entry points.

`discover(config)` returns a `Discovery`: one `PluginSpec` per plugin found, ready to verify
and start, and one line per thing that could not be read. The rules:

Sources
  1. The configuration's `plugins:` entries (`enabled: false` hides a plugin of that name
     whatever its source).
  2. Manifests: each `discovery.paths` entry is globbed with each `discovery.patterns`
     pattern (default `*/tether.toml`); every match is a `tether.toml` describing the plugin
     in its directory. Its `[run]` table says how to start it: `command` (a list; relative
     file arguments are relative to the manifest's directory, which is also the plugin's
     working directory) or `entry_point`, `protocol` and `requirements`; its `[handshake]`
     table the magic cookie. A manifest without a command or entry point is listed with
     `spec.problem` saying what to add.
  3. Entry points of the group `discovery.entry_point_group` (default `tether.plugins`) when
     `discovery.entry_points` is true. The manifest is the `tether.toml` inside the package,
     or one built from the distribution's metadata; the plugin runs as
     `python -m tether._entry <entry point value>` from the distribution's directory.

Merging and conflicts
  - A configuration entry and a manifest (or entry point) with the same name are one
    plugin: the configuration's run settings win; the manifest supplies the version,
    interfaces and plugin dependencies, and the run settings the configuration leaves unset
    (`requirements`, `protocol`, `handshake`).
  - Two manifests (or a manifest and an entry point) with the same name: a problem line
    naming both, and neither is used.
  - A manifest that cannot be read or is invalid: a problem line naming the file and the
    reason; everything else is still found.

Handshake
  The plugin's configuration `handshake` > the manifest's `[handshake]` > the configuration's
  top-level `handshake` > the `handshake` argument of `discover`. A plugin with none is not
  listed; a problem line says where to add one.

Interpreter and environments
  A command whose program is literally `python` or `python3` runs with the interpreter
  running tether (`sys.executable`), so configurations are portable and plugins find tether.
  A plugin with requirements runs with its own virtual environment's interpreter instead
  (see `_venv.py`): while that environment is missing or was built for other requirements,
  the plugin is listed with `spec.problem` asking for `tether install <name>`. Local
  requirements (`./vendor/x`, `../libs/y`, wheel or sdist files) are resolved against the
  manifest's directory (the plugin's `cwd` for configuration entries).

Verification
  The file checksums and signatures cover: `verify_path` when set, else the script (the
  first argument when the program is python), else the executable; nothing for
  `python -m` commands (entry points) without `verify_path`.
"""

from __future__ import annotations

import os
import site
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from packaging.version import Version

from ._config import ManagerConfig, PluginSettings
from ._errors import ConfigError
from ._handshake import HandshakeConfig
from ._manifest import Manifest, load_manifest, manifest_from_entry_point, manifest_next_to
from ._spec import PluginSpec
from ._venv import environment_python, environment_state, environments_dir, venv_python

__all__ = ["Discovery", "discover"]

_PYTHON_NAMES = ("python", "python3")
_ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2")


@dataclass(slots=True)
class Discovery:
    """What a scan found: the plugins, and one line for each thing that could not be read."""

    specs: list[PluginSpec] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def by_name(self) -> dict[str, PluginSpec]:
        return {spec.name: spec for spec in self.specs}


@dataclass(frozen=True, slots=True)
class _Found:
    """A plugin found by scanning: its manifest, and its entry point if it is one."""

    manifest: Manifest
    entry_point: EntryPoint | None = None

    @property
    def origin(self) -> str:
        if self.entry_point is not None:
            ep = self.entry_point
            return f"entry point {ep.group}:{ep.name} ({ep.value})"
        return self.manifest.source


@dataclass(frozen=True, slots=True)
class _Context:
    config: ManagerConfig
    source: str
    environ: Mapping[str, str]
    handshake: HandshakeConfig | None
    envs_dir: Path


def discover(
    config: ManagerConfig,
    *,
    source: str = "configuration",
    environ: Mapping[str, str] | None = None,
    handshake: HandshakeConfig | None = None,
) -> Discovery:
    """The plugins `config` describes and its discovery settings find (see the module
    docstring for the rules). `handshake` is the default for plugins that name none;
    `source` names the configuration file in messages; `environ` (default `os.environ`) is
    what plugins inherit variables from and where `TETHER_HOME` is read."""
    env = os.environ if environ is None else environ
    ctx = _Context(config, source, env, handshake, environments_dir(config, env))
    found = Discovery()
    if config.security.tls is not None:
        # Said out loud rather than ignored: a host that asked for its own certificates must
        # not run plugins over connections it believes are protected by them.
        found.problems.append(
            f"{source}: security.tls: plugins cannot be started with certificate files yet; "
            "use security.auto_mtls: true (certificates generated for every start) instead"
        )
    items = _scan_paths(config, found.problems) + _scan_entry_points(config, found.problems)
    found.problems.extend(_duplicates(items))
    scanned = _unique(items)
    for name, settings in config.plugins.items():
        match = scanned.pop(name, None)
        if not settings.enabled:
            continue
        try:
            found.specs.append(_from_settings(name, settings, match, ctx))
        except ConfigError as exc:
            found.problems.append(str(exc))
    for name, match in scanned.items():
        if match is None:
            continue  # a duplicate, already reported
        try:
            found.specs.append(_from_found(name, match, ctx))
        except ConfigError as exc:
            found.problems.append(str(exc))
    found.specs.sort(key=lambda spec: spec.name)
    return found


# --------------------------------------------------------------------------------------
# Scanning.


def _scan_paths(config: ManagerConfig, problems: list[str]) -> list[_Found]:
    files: dict[Path, None] = {}
    for root in config.discovery.paths:
        if not root.is_dir():
            continue  # not there yet: the watcher picks it up when it appears
        for pattern in config.discovery.patterns:
            try:
                matches = sorted(root.glob(pattern))
            except (ValueError, NotImplementedError, OSError) as exc:
                problems.append(
                    f"discovery pattern {pattern!r} in {root}: {exc} (use a relative glob "
                    "such as '*/tether.toml' or '**/tether.toml')"
                )
                continue
            files.update((match.absolute(), None) for match in matches if match.is_file())
    out: list[_Found] = []
    for path in files:
        try:
            out.append(_Found(load_manifest(path)))
        except ConfigError as exc:
            problems.append(str(exc))
    return out


def _scan_entry_points(config: ManagerConfig, problems: list[str]) -> list[_Found]:
    if not config.discovery.entry_points:
        return []
    out: list[_Found] = []
    seen: set[tuple[str, str]] = set()
    for ep in entry_points(group=config.discovery.entry_point_group):
        key = (ep.name, ep.value)
        if key in seen:  # one distribution visible twice on sys.path
            continue
        seen.add(key)
        try:
            out.append(_Found(manifest_from_entry_point(ep), ep))
        except ConfigError as exc:
            problems.append(str(exc))
    return out


def _unique(items: Sequence[_Found]) -> dict[str, _Found | None]:
    """Found plugins by name; a name found twice maps to None (reported by the caller)."""
    by_name: dict[str, list[_Found]] = {}
    for item in items:
        by_name.setdefault(item.manifest.name, []).append(item)
    return {name: group[0] if len(group) == 1 else None for name, group in by_name.items()}


def _duplicates(items: Sequence[_Found]) -> list[str]:
    by_name: dict[str, list[_Found]] = {}
    for item in items:
        by_name.setdefault(item.manifest.name, []).append(item)
    return [
        f"two plugins are named {name!r}: "
        + " and ".join(item.origin for item in group)
        + "; neither is used (rename or remove one)"
        for name, group in by_name.items()
        if len(group) > 1
    ]


# --------------------------------------------------------------------------------------
# Building specs.


def _from_settings(
    name: str, settings: PluginSettings, match: _Found | None, ctx: _Context
) -> PluginSpec:
    """A configuration entry, merged with the manifest or entry point of the same name."""
    where = f"{ctx.source}: plugins.{name}"
    cwd = settings.cwd or Path.cwd()
    manifest = match.manifest if match is not None else _manifest_beside(name, settings, cwd, where)
    run = manifest.run
    update: dict[str, object] = {}
    if "requirements" in settings.model_fields_set or not run.requirements:
        update["requirements"] = _local_requirements(settings.requirements, cwd)
    else:
        base = manifest.directory or cwd
        update["requirements"] = _local_requirements(run.requirements, base)
    if "protocol" not in settings.model_fields_set and run.protocol is not None:
        update["protocol"] = run.protocol
    merged = settings.model_copy(update=update)
    if settings.command is not None:
        command = tuple(settings.command)
    else:
        assert settings.entry_point is not None
        command = ("python", "-m", "tether._entry", settings.entry_point)
    chosen = settings.handshake.to_handshake() if settings.handshake is not None else None
    return _spec(
        name,
        manifest,
        merged,
        command,
        cwd,
        _handshake(name, chosen or manifest.handshake, ctx, where),
        ctx,
        source=where,
    )


def _from_found(name: str, match: _Found, ctx: _Context) -> PluginSpec:
    """A plugin only a manifest or an entry point describes."""
    manifest = match.manifest
    run = manifest.run
    ep = match.entry_point
    extra_env: dict[str, str] = {}
    problem: str | None = None
    if ep is not None:
        location = _distribution_dir(ep)
        cwd = location or Path.cwd()
        command: tuple[str, ...] = ("python", "-m", "tether._entry", ep.value)
        if location is not None and not _on_site_path(location):
            # Found on a path the plugin's interpreter would not search by itself.
            extra_env["PYTHONPATH"] = str(location)
    else:
        cwd = manifest.directory or Path.cwd()
        if run.command is not None:
            command = _relative_to(run.command, cwd)
        elif run.entry_point is not None:
            command = ("python", "-m", "tether._entry", run.entry_point)
        else:
            command = ()
            problem = (
                f"plugin {name} ({manifest.source}) says nothing about how to start it: add a "
                '[run] table with command = ["python", "plugin.py"] (or entry_point = '
                '"package.module:main")'
            )
    base = manifest.directory or cwd
    fields: dict[str, Any] = {
        "cwd": cwd,
        "requirements": _local_requirements(run.requirements, base),
        "protocol": run.protocol or "tether",
        "env": extra_env,
        "command": list(command) if command else None,
    }
    # Validation would refuse a plugin with no way to start; it is listed with its problem.
    settings = PluginSettings.model_construct(**fields)
    source = match.origin
    return _spec(
        name,
        manifest,
        settings,
        command,
        cwd,
        _handshake(name, manifest.handshake, ctx, source),
        ctx,
        source=source,
        problem=problem,
    )


def _spec(
    name: str,
    manifest: Manifest,
    settings: PluginSettings,
    command: tuple[str, ...],
    cwd: Path,
    handshake: HandshakeConfig,
    ctx: _Context,
    *,
    source: str,
    problem: str | None = None,
) -> PluginSpec:
    environment = settings.environment(ctx.environ)
    requirements = settings.requirements
    if requirements:
        state = environment_state(ctx.envs_dir, name, requirements)
        if state == "ready":
            env_dir = ctx.envs_dir / name
            environment["VIRTUAL_ENV"] = str(env_dir)
            bin_dir = str(venv_python(env_dir).parent)
            path = environment.get("PATH")
            environment["PATH"] = bin_dir + os.pathsep + path if path else bin_dir
        elif problem is None:
            count = f"{len(requirements)} requirement" + ("s" if len(requirements) != 1 else "")
            problem = (
                f"plugin {name}'s environment is out of date: requirements changed since it "
                f"was installed: run `tether install {name}`"
                if state == "stale"
                else f"plugin {name} needs its own environment ({count}): "
                f"run `tether install {name}`"
            )
    if command and command[0] in _PYTHON_NAMES:
        python = environment_python(ctx.envs_dir, name, requirements) if requirements else None
        command = (str(python) if python is not None else sys.executable, *command[1:])
    return PluginSpec(
        name=name,
        manifest=manifest,
        settings=settings,
        command=command,
        cwd=cwd,
        environment=environment,
        handshake=handshake,
        config=ctx.config.plugin_config(name),
        verify_file=_verify_file(settings, command, cwd, environment.get("PATH")),
        source=source,
        problem=problem,
        auto_mtls=ctx.config.security.auto_mtls,
    )


def _handshake(
    name: str, chosen: HandshakeConfig | None, ctx: _Context, where: str
) -> HandshakeConfig:
    if chosen is not None:
        return chosen
    if ctx.config.handshake is not None:
        return ctx.config.handshake.to_handshake()
    if ctx.handshake is not None:
        return ctx.handshake
    raise ConfigError(
        f"{where}: no handshake for plugin {name} (add a top-level `handshake:` with "
        "magic_cookie_key and magic_cookie_value to the configuration, one under the "
        "plugin, or a [handshake] table to its tether.toml)"
    )


def _verify_file(
    settings: PluginSettings, command: tuple[str, ...], cwd: Path, path_env: str | None
) -> Path | None:
    if settings.verify_path is not None:
        return settings.verify_path
    if not command:
        return None
    program = command[0]
    if program == sys.executable or Path(program).name.startswith("python"):
        if len(command) > 1 and not command[1].startswith("-"):
            return cwd / command[1]
        if len(command) > 1:
            return None  # `python -m module`: no single file; set verify_path to check one
    return PluginSettings.model_construct(command=[program], cwd=cwd).verified_file(path_env)


def _manifest_beside(name: str, settings: PluginSettings, cwd: Path, where: str) -> Manifest:
    """The `tether.toml` beside the plugin's script (or executable), else a bare manifest."""
    candidates = [settings.verify_path] if settings.verify_path else []
    if settings.command is not None:
        candidates += [cwd / arg for arg in settings.command[1:2]]  # `python plugin.py`
        candidates.append(cwd / settings.command[0])
    for candidate in candidates:
        if candidate is not None and candidate.exists():
            manifest = manifest_next_to(candidate)
            if manifest is not None:
                if manifest.name != name:
                    raise ConfigError(
                        f"{where}: its manifest {manifest.source} names "
                        f"the plugin {manifest.name!r}; the names must match"
                    )
                return manifest
    return Manifest(name=name, version=Version("0"), source=where)


# --------------------------------------------------------------------------------------
# Paths.


def _relative_to(command: Sequence[str], base: Path) -> tuple[str, ...]:
    """`command` with relative file arguments made absolute against `base`: a program
    written as a path (`./plugin`, `bin/plugin`), and arguments naming existing files
    (not directories: `python -m pkg` must keep naming the module)."""
    out: list[str] = []
    for i, arg in enumerate(command):
        path = Path(arg)
        is_path = not path.is_absolute() and not arg.startswith("-")
        program_path = i == 0 and (os.sep in arg or "/" in arg)
        file_argument = i > 0 and (base / path).is_file()
        if is_path and (program_path or file_argument):
            out.append(str(base / path))
        else:
            out.append(arg)
    return tuple(out)


def _is_local(requirement: str) -> bool:
    if "://" in requirement or requirement.startswith("-"):
        return False
    if requirement.startswith(("./", "../", ".\\", "..\\", "~")):
        return True
    return requirement.endswith(_ARCHIVE_SUFFIXES)


def _local_requirements(requirements: Sequence[str], base: Path) -> list[str]:
    """Requirements with local paths made absolute against `base`."""
    out: list[str] = []
    for requirement in requirements:
        if _is_local(requirement):
            path = Path(requirement).expanduser()
            out.append(str(path if path.is_absolute() else (base / path).resolve()))
        else:
            out.append(requirement)
    return out


def _distribution_dir(ep: EntryPoint) -> Path | None:
    dist = ep.dist
    if dist is None:
        return None
    try:
        return Path(str(dist.locate_file(""))).absolute()
    except (NotImplementedError, OSError):
        return None


def _on_site_path(directory: Path) -> bool:
    """Whether `directory` is a site-packages directory every interpreter of this Python
    searches anyway."""
    sites = [*site.getsitepackages(), site.getusersitepackages()]
    return any(Path(s).absolute() == directory for s in sites)

"""Finding plugins: the configuration's `plugins:` entries become `PluginSpec`s.

(Scanning discovery paths for manifests, entry points, per-plugin environments and file
watching build on this.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import Version

from ._config import ManagerConfig, PluginSettings
from ._errors import ConfigError
from ._handshake import HandshakeConfig
from ._manifest import Manifest, manifest_next_to
from ._spec import PluginSpec

__all__ = ["Discovery", "discover"]


@dataclass(slots=True)
class Discovery:
    """What a scan found: the plugins, and one line for each thing that could not be read."""

    specs: list[PluginSpec] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def by_name(self) -> dict[str, PluginSpec]:
        return {spec.name: spec for spec in self.specs}


def discover(
    config: ManagerConfig,
    *,
    source: str = "configuration",
    environ: Mapping[str, str] | None = None,
    handshake: HandshakeConfig | None = None,
) -> Discovery:
    """The plugins `config` describes. `handshake` is the default for plugins whose
    configuration names none; `source` names the configuration file in messages."""
    env = os.environ if environ is None else environ
    found = Discovery()
    for name, settings in config.plugins.items():
        if not settings.enabled:
            continue
        try:
            found.specs.append(_from_settings(name, settings, config, source, env, handshake))
        except ConfigError as exc:
            found.problems.append(str(exc))
    return found


def _handshake_of(
    name: str,
    settings: PluginSettings,
    config: ManagerConfig,
    default: HandshakeConfig | None,
    source: str,
) -> HandshakeConfig:
    chosen = settings.handshake or config.handshake
    if chosen is not None:
        return chosen.to_handshake()
    if default is not None:
        return default
    raise ConfigError(
        f"{source}: plugins.{name}: no handshake (add a top-level `handshake:` with "
        "magic_cookie_key and magic_cookie_value, or one under the plugin)"
    )


def _from_settings(
    name: str,
    settings: PluginSettings,
    config: ManagerConfig,
    source: str,
    environ: Mapping[str, str],
    default_handshake: HandshakeConfig | None,
) -> PluginSpec:
    if settings.command is None:
        raise ConfigError(f"{source}: plugins.{name}: entry-point plugins are not supported yet")
    cwd = settings.cwd or Path.cwd()
    environment = settings.environment(environ)
    verify = settings.verified_file(environment.get("PATH"))
    manifest = _manifest_for(name, settings, cwd, source)
    return PluginSpec(
        name=name,
        manifest=manifest,
        settings=settings,
        command=tuple(settings.command),
        cwd=cwd,
        environment=environment,
        handshake=_handshake_of(name, settings, config, default_handshake, source),
        config=config.plugin_config(name),
        verify_file=verify,
        source=f"{source}: plugins.{name}",
    )


def _manifest_for(name: str, settings: PluginSettings, cwd: Path, source: str) -> Manifest:
    """The `tether.toml` beside the plugin's script (or executable), else a bare manifest."""
    assert settings.command is not None
    candidates = [settings.verify_path] if settings.verify_path else []
    candidates += [cwd / arg for arg in settings.command[1:2]]  # `python plugin.py`
    candidates.append(cwd / settings.command[0])
    for candidate in candidates:
        if candidate is not None and candidate.exists():
            manifest = manifest_next_to(candidate)
            if manifest is not None:
                if manifest.name != name:
                    raise ConfigError(
                        f"{source}: plugins.{name}: its manifest {manifest.source} names "
                        f"the plugin {manifest.name!r}; the names must match"
                    )
                return manifest
    return Manifest(name=name, version=Version("0"), source=f"{source}: plugins.{name}")

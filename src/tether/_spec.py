"""What the manager knows about one plugin before starting it: the `PluginSpec`.

Discovery (`_discovery.py`) builds specs from the configuration file, from `tether.toml`
manifests found in the discovery paths and from entry points; the manager (`_manager.py`)
starts plugins from specs alone and never reads files or manifests itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._config import PluginSettings
from ._handshake import HandshakeConfig
from ._manifest import Manifest

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["PluginSpec"]


@dataclass(frozen=True, slots=True)
class PluginSpec:
    """One plugin, ready to be verified and started."""

    name: str
    # name, version, interfaces served, dependencies on other plugins
    manifest: Manifest
    # how to run it: instances, balance, restart policy, health, timeouts, env allow-list...
    settings: PluginSettings
    # argv ready to exec: relative paths resolved, a per-plugin virtual environment's
    # interpreter substituted when the plugin has one
    command: tuple[str, ...]
    cwd: Path
    # the full environment the plugin starts with (allow-list applied, `env` on top);
    # the launcher adds the handshake variables
    environment: Mapping[str, str]
    handshake: HandshakeConfig
    # passed to the plugin's `initialize` when the interface it is dispensed as has one
    config: Mapping[str, Any] = field(default_factory=dict)
    # the file checksums and signatures cover (None: nothing to verify)
    verify_file: Path | None = None
    # where the spec came from, for messages: "config.yaml:12", a manifest path, or
    # "entry point tether.plugins:calc"
    source: str = ""
    # Why it cannot start even though it was found (e.g. "declares requirements but has no
    # environment yet: run `tether install calc`"); the manager marks it failed with this.
    problem: str | None = None
    # TLS with certificates generated per start (security.auto_mtls)
    auto_mtls: bool = False

    def client(self, **options: Any) -> Client:
        """A `tether.Client` (not started) for one process of this plugin, started with what
        the spec says and nothing from the host's environment beyond it; `options` are
        further `Client` keywords (name, logger, ...). Verification is the caller's job."""
        from ._client import Client

        settings = self.settings
        kwargs: dict[str, Any] = {
            "handshake": self.handshake,
            "name": self.name,
            "start_timeout": settings.start_timeout,
            "call_timeout": settings.call_timeout,
            "env": dict(self.environment),
            "inherit_env": False,
            "cwd": str(self.cwd),
            "auto_mtls": self.auto_mtls,
        }
        kwargs.update(options)
        return Client(list(self.command), **kwargs)

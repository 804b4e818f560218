"""What every command shares: global options, finding the configuration, output helpers.

Kept free of heavy imports (rich, pydantic, the manager): `tether --help` must stay fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

    from .._config import ManagerConfig
    from .._discovery import Discovery

__all__ = [
    "STATE",
    "common_options",
    "config_path",
    "console",
    "discovery",
    "echo_json",
    "err_console",
    "to_jsonable",
]

F = TypeVar("F", bound=Callable[..., Any])

ENV_CONFIG = "TETHER_CONFIG"
DEFAULT_CONFIGS = ("tether.yaml", "plugin-config.yaml")

# Exit codes (documented in docs/CLI.md).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3


@dataclass(slots=True)
class State:
    """The global options; each command may also take them after its name."""

    config: Path | None = None
    json: bool = False
    debug: bool = False


STATE = State()


def _set_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        STATE.config = Path(value)


def _set_json(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    STATE.json = STATE.json or value


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    # main() saw --debug already (it must know before parsing, for errors while parsing).
    STATE.debug = STATE.debug or value


def common_options(func: F) -> F:
    """--config, --json and --debug, accepted before or after the command name."""
    func = click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        callback=_set_debug,
        help="Show full tracebacks and debug logs.",
    )(func)
    func = click.option(
        "--json",
        "json_output",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Machine-readable JSON on stdout.",
    )(func)
    return click.option(
        "--config",
        "-c",
        metavar="PATH",
        expose_value=False,
        callback=_set_config,
        help=f"Configuration file (default: ${ENV_CONFIG}, else ./tether.yaml, "
        "else ./plugin-config.yaml).",
    )(func)


def config_path(required: bool = True) -> Path | None:
    """The configuration file to use, or a ConfigError saying how to name one."""
    from .._errors import ConfigError

    if STATE.config is not None:
        if not STATE.config.exists():
            raise ConfigError(f"configuration file {STATE.config} does not exist")
        return STATE.config
    env = os.environ.get(ENV_CONFIG)
    if env:
        if not Path(env).exists():
            raise ConfigError(f"configuration file {env} (from ${ENV_CONFIG}) does not exist")
        return Path(env)
    for name in DEFAULT_CONFIGS:
        if Path(name).exists():
            return Path(name)
    if not required:
        return None
    raise ConfigError(
        "no configuration file: pass --config PATH, set $TETHER_CONFIG, or create "
        "./tether.yaml (try `tether demo` for a tour without one)"
    )


def load() -> tuple[Path, ManagerConfig]:
    from .._config import load_config

    path = config_path()
    assert path is not None
    return path, load_config(path)


def discovery() -> tuple[Path, ManagerConfig, Discovery]:
    """The configuration and the plugins it leads to."""
    from .._discovery import discover

    path, config = load()
    return path, config, discover(config, source=str(path))


def console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def to_jsonable(value: Any) -> Any:
    """Plain data as JSON accepts it (datetimes, bytes, enums and dataclasses converted)."""
    import msgspec

    return msgspec.json.decode(msgspec.json.encode(value, enc_hook=_enc_hook))


def _enc_hook(value: Any) -> Any:
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def echo_json(value: Any) -> None:
    """One JSON document on stdout (the only thing a --json command prints there)."""
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()

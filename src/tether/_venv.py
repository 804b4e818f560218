"""Per-plugin virtual environments: `tether install` gives a plugin its own Python.

A plugin that declares requirements (`requirements:` in the configuration, or
`[run] requirements` in its `tether.toml`) runs in its own virtual environment, so two
plugins that need clashing versions of one library run side by side. Each environment lives
in `<environments dir>/<plugin name>` and holds the plugin's requirements plus tether itself
(installed from where the host's tether came from, so plugin and host speak the same wire
protocol).

An environment is built with uv when it is available (on PATH, or the `uv` package), else with
`python -m venv` and pip; `TETHER_INSTALLER=uv|pip` forces one. It is built in a temporary
directory next to its final place and renamed into place, so a failed install leaves the
previous environment (or nothing) behind, never half an environment. A stamp file records a
hash of the requirements it was built for: when they change, the environment is out of date
and discovery asks for `tether install` again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote, urlparse

from packaging.version import InvalidVersion, Version

from ._errors import InstallError

if TYPE_CHECKING:
    from ._config import ManagerConfig
    from ._spec import PluginSpec

__all__ = [
    "STAMP_NAME",
    "EnvironmentState",
    "Installer",
    "environment_python",
    "environment_state",
    "environments_dir",
    "find_uv",
    "install",
    "tether_requirement",
    "venv_python",
]

STAMP_NAME = "tether-env.json"
# How many of the installer's last output lines an InstallError quotes.
_TAIL_LINES = 20

EnvironmentState = Literal["missing", "stale", "ready"]
Installer = Literal["auto", "uv", "pip"]


def environments_dir(
    config: ManagerConfig | None, environ: Mapping[str, str] | None = None
) -> Path:
    """Where per-plugin environments live: the configuration's `environments_dir`, else
    `$TETHER_HOME/envs`, else `~/.local/share/tether/envs`."""
    if config is not None and config.environments_dir is not None:
        return config.environments_dir
    env = os.environ if environ is None else environ
    home = env.get("TETHER_HOME")
    if home:
        return Path(home).expanduser() / "envs"
    return Path.home() / ".local" / "share" / "tether" / "envs"


def venv_python(env_dir: Path) -> Path:
    """The interpreter of the virtual environment at `env_dir` (whether or not it exists)."""
    if os.name == "nt":
        return env_dir / "Scripts" / "python.exe"
    return env_dir / "bin" / "python"


def _requirements_hash(requirements: Sequence[str]) -> str:
    """A hash of the requirements and of the local files among them (size and modification
    time), so a rebuilt local wheel makes the environment out of date too."""
    lines = []
    # Order matters to pip only for display; a reordered list is the same environment.
    for requirement in sorted(requirements):
        path = Path(requirement)
        try:
            stat = path.stat() if path.is_absolute() and path.is_file() else None
        except OSError:
            stat = None
        lines.append(f"{requirement}\t{stat.st_size}\t{stat.st_mtime_ns}" if stat else requirement)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def environment_state(envs_dir: Path, name: str, requirements: Sequence[str]) -> EnvironmentState:
    """Whether plugin `name`'s environment is installed ("ready"), was installed for other
    requirements ("stale") or is not there at all ("missing")."""
    env_dir = envs_dir / name
    try:
        stamp = json.loads((env_dir / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "missing"
    if not venv_python(env_dir).exists():
        return "missing"
    if not isinstance(stamp, dict) or stamp.get("requirements_hash") != _requirements_hash(
        requirements
    ):
        return "stale"
    return "ready"


def environment_python(envs_dir: Path, name: str, requirements: Sequence[str]) -> Path | None:
    """The interpreter of plugin `name`'s environment if it is installed and was built for
    exactly `requirements`, else None."""
    if environment_state(envs_dir, name, requirements) != "ready":
        return None
    return venv_python(envs_dir / name)


def tether_requirement() -> tuple[str, ...]:
    """The installer arguments that install the host's own tether into an environment.

    A tether installed from a local directory (editable or not) is installed from that
    directory again (`-e` when it was editable); otherwise the same released version.
    """
    dist = metadata.distribution("tether")
    text = dist.read_text("direct_url.json")
    if text:
        try:
            info = json.loads(text)
        except ValueError:
            info = {}
        url = info.get("url", "") if isinstance(info, dict) else ""
        if isinstance(url, str) and url.startswith("file://"):
            path = unquote(urlparse(url).path)
            dir_info = info.get("dir_info", {})
            if isinstance(dir_info, dict) and dir_info.get("editable"):
                return ("-e", path)
            return (path,)
    return (f"tether=={dist.version}",)


def find_uv() -> str | None:
    """The uv executable: on PATH, else the one the `uv` PyPI package ships, else None."""
    found = shutil.which("uv")
    if found:
        return found
    try:
        import uv  # type: ignore[import-not-found, unused-ignore]

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        return None


def _choose_installer(installer: Installer) -> tuple[Literal["uv", "pip"], str | None]:
    if installer == "auto":
        forced = os.environ.get("TETHER_INSTALLER", "").strip().lower()
        if forced and forced not in ("uv", "pip"):
            raise InstallError(
                f"TETHER_INSTALLER is {forced!r}; expected 'uv' or 'pip' (or unset it)"
            )
        if forced:
            installer = "uv" if forced == "uv" else "pip"
    uv = find_uv()
    if installer == "pip":
        return "pip", None
    if uv is None:
        if installer == "uv":
            raise InstallError(
                "the uv installer was asked for but is not available: install it "
                "(`pip install uv`) or use pip (TETHER_INSTALLER=pip)"
            )
        return "pip", None
    return "uv", uv


def _run(command: Sequence[str], what: str, env: Mapping[str, str] | None = None) -> None:
    """Run one installer step; on failure raise InstallError quoting its last output lines."""
    try:
        proc = subprocess.Popen(
            list(command),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=dict(env) if env is not None else None,
        )
    except OSError as exc:
        raise InstallError(
            f"{what}: cannot run {command[0]}: {exc}", command=tuple(command)
        ) from None
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    assert proc.stdout is not None
    with proc:
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
    if proc.returncode != 0:
        shown = shlex.join(command)
        lines = "\n  ".join(tail) if tail else "(no output)"
        raise InstallError(
            f"{what}: `{shown}` exited with code {proc.returncode}\nlast output lines:\n  {lines}",
            command=tuple(command),
            output=tuple(tail),
        )


def install(
    spec: PluginSpec,
    envs_dir: Path,
    *,
    installer: Installer = "auto",
    progress: Callable[[str], None] | None = None,
    force: bool = False,
) -> Path:
    """Create (or bring up to date) the virtual environment of `spec`'s plugin and return its
    interpreter.

    The environment gets the plugin's requirements (`spec.settings.requirements`, local paths
    already resolved by discovery) and tether with its dependencies. Nothing is done when the
    environment is up to date, unless `force`. `progress` receives one line per step. Raises
    InstallError (with the failing command and its last output lines) when a step fails; the
    previous environment, if any, is then left as it was.
    """
    say = progress or (lambda _line: None)
    name = spec.name
    requirements = list(spec.settings.requirements)
    target = envs_dir / name
    if not force and environment_state(envs_dir, name, requirements) == "ready":
        say(f"{name}: environment is up to date")
        return venv_python(target)
    kind, uv = _choose_installer(installer)
    try:
        envs_dir.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix=f".{name}.building-", dir=envs_dir))
    except OSError as exc:
        raise InstallError(f"cannot create the environments directory {envs_dir}: {exc}") from None
    try:
        _build(kind, uv, build, name, requirements, say)
        _stamp(build, requirements, kind)
        _point_scripts_at(build, target)
        _swap_into_place(build, target)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    say(f"{name}: installed in {target}")
    return venv_python(target)


def _build(
    kind: Literal["uv", "pip"],
    uv: str | None,
    build: Path,
    name: str,
    requirements: Sequence[str],
    say: Callable[[str], None],
) -> None:
    python = venv_python(build)
    packages = [*tether_requirement(), *requirements]
    count = f"{len(requirements)} requirement" + ("s" if len(requirements) != 1 else "")
    if kind == "uv":
        assert uv is not None
        say(f"{name}: creating the environment (uv)")
        # --relocatable: the environment is renamed into place after it is built.
        _run(
            [
                uv,
                "venv",
                "--quiet",
                "--relocatable",
                "--prompt",
                name,
                "--python",
                sys.executable,
                str(build),
            ],
            f"creating the environment of plugin {name}",
        )
        say(f"{name}: installing {count} and tether (uv)")
        # Without VIRTUAL_ENV from the host, uv would target the host's environment.
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        _run(
            [uv, "pip", "install", "--python", str(python), *packages],
            f"installing the requirements of plugin {name}",
            env,
        )
    else:
        # The host's own pip can install into another environment (`pip --python`, pip
        # 22.3+): much faster than seeding every environment with its own pip.
        host_pip = _host_pip_supports_python_option()
        say(f"{name}: creating the environment (venv)")
        _run(
            [
                sys.executable,
                "-m",
                "venv",
                "--prompt",
                name,
                *(["--without-pip"] if host_pip else []),
                str(build),
            ],
            f"creating the environment of plugin {name}",
        )
        say(f"{name}: installing {count} and tether (pip)")
        pip = (
            [sys.executable, "-m", "pip", "--python", str(python)]
            if host_pip
            else [
                str(python),
                "-m",
                "pip",
            ]
        )
        _run(
            [*pip, "install", "--disable-pip-version-check", "--no-input", *packages],
            f"installing the requirements of plugin {name}",
        )


def _host_pip_supports_python_option() -> bool:
    try:
        return Version(metadata.version("pip")) >= Version("22.3")
    except (metadata.PackageNotFoundError, InvalidVersion):
        return False


def _stamp(build: Path, requirements: Sequence[str], kind: str) -> None:
    stamp = {
        "requirements": list(requirements),
        "requirements_hash": _requirements_hash(requirements),
        "installer": kind,
        "tether": list(tether_requirement()),
    }
    (build / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")


def _point_scripts_at(build: Path, target: Path) -> None:
    """Make the environment's scripts (`bin/pip` shebangs, `activate`) and `pyvenv.cfg` name
    `target`, where it is about to be renamed to. tether runs plugins with the interpreter
    itself, which needs none of this; it is for people using the environment by hand."""
    old, new = str(build).encode(), str(target).encode()
    files = [build / "pyvenv.cfg", *venv_python(build).parent.iterdir()]
    for file in files:
        if file.is_symlink() or not file.is_file():
            continue
        try:
            data = file.read_bytes()
            if old in data:
                file.write_bytes(data.replace(old, new))
        except OSError:
            continue


def _swap_into_place(build: Path, target: Path) -> None:
    """Rename the built environment to `target`, replacing an older one."""
    old: Path | None = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        old.rmdir()
        target.rename(old)
    try:
        build.rename(target)
    except OSError as exc:
        if old is not None:
            old.rename(target)
        raise InstallError(f"cannot move the new environment into {target}: {exc}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

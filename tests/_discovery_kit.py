# mypy: disable-error-code="empty-body"
"""Building blocks for the discovery, environment and watcher tests: plugin folders with a
`tether.toml` and a `plugin.py`, hand-made wheels, and starting a discovered plugin."""

from __future__ import annotations

import base64
import hashlib
import os
import textwrap
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tether
from tether._config import ManagerConfig
from tether._spec import PluginSpec

HANDSHAKE = tether.HandshakeConfig(
    protocol_version=1,
    magic_cookie_key="TETHER_DISCOVERY_TEST",
    magic_cookie_value="b7c0-discovery",
)
HANDSHAKE_TOML = f"""
[handshake]
magic_cookie_key = "{HANDSHAKE.magic_cookie_key}"
magic_cookie_value = "{HANDSHAKE.magic_cookie_value}"
"""


class Greeter(tether.Interface):
    def hello(self) -> str: ...


# A plugin serving `Greeter`; its answer names the plugin and, when the plugin has the
# `clashlib` requirement, the clashlib version its environment has.
PLUGIN_PY = """
import tether

HANDSHAKE = tether.HandshakeConfig(
    protocol_version=1,
    magic_cookie_key={key!r},
    magic_cookie_value={value!r},
)


class Greeter(tether.Interface):
    def hello(self) -> str: ...


class Impl(Greeter):
    def hello(self) -> str:
        {body}


def main() -> None:
    tether.serve(HANDSHAKE, {{"greeter": Impl()}})


if __name__ == "__main__":
    main()
"""


def plugin_source(answer: str = "hello", clashlib: bool = False) -> str:
    body = "import clashlib\n        return clashlib.VERSION" if clashlib else f"return {answer!r}"
    return PLUGIN_PY.format(
        key=HANDSHAKE.magic_cookie_key, value=HANDSHAKE.magic_cookie_value, body=body
    )


def write_plugin(
    directory: Path,
    name: str,
    *,
    answer: str = "hello",
    run: str | None = 'command = ["python", "plugin.py"]',
    requirements: Sequence[str] = (),
    handshake: bool = True,
    clashlib: bool = False,
    extra: str = "",
) -> Path:
    """A plugin folder: `tether.toml` + `plugin.py`; returns the folder."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f'name = "{name}"', 'version = "1.0.0"', extra]
    if run is not None or requirements:
        lines.append("[run]")
        if run is not None:
            lines.append(run)
        if requirements:
            lines.append("requirements = [" + ", ".join(f'"{r}"' for r in requirements) + "]")
    if handshake:
        lines.append(HANDSHAKE_TOML)
    (directory / "tether.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "plugin.py").write_text(plugin_source(answer, clashlib), encoding="utf-8")
    return directory


def make_config(**data: Any) -> ManagerConfig:
    data.setdefault("discovery", {})
    data["discovery"].setdefault("entry_points", False)
    return ManagerConfig.model_validate(data, context={"base_dir": Path.cwd()})


def call_hello(spec: PluginSpec) -> str:
    """Start the plugin the way the manager does (only what the spec says) and call it."""
    assert spec.problem is None, spec.problem
    client = spec.client()
    try:
        with client:
            pid = client.pid
            answer = client.dispense("greeter", Greeter).hello()
    finally:
        client.kill()
    assert pid is not None
    assert not _running(pid), f"plugin {spec.name} (pid {pid}) is still running"
    return answer


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def build_wheel(directory: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A minimal pure-Python wheel, written by hand (no network, no build backend)."""
    directory.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    contents: dict[str, bytes] = {path: text.encode() for path, text in files.items()}
    contents[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        f"Summary: test package {name} {version}\n"
    ).encode()
    contents[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: tether-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = [f"{path},{_record_hash(data)},{len(data)}" for path, data in contents.items()]
    record.append(f"{info}/RECORD,,")
    contents[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in contents.items():
            archive.writestr(path, data)
    return wheel


def build_clashlib(directory: Path, version: str) -> Path:
    return build_wheel(
        directory, "clashlib", version, {"clashlib/__init__.py": f'VERSION = "{version}"\n'}
    )


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip()

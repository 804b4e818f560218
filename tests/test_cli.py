"""The `tether` console script, run as a user would."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import tether

SCRIPT = shutil.which("tether", path=str(Path(sys.executable).parent))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    assert SCRIPT is not None, "the tether console script is not installed in the venv"
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=60)


def test_version() -> None:
    proc = run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"tether {tether.__version__}"


def test_handshake_line_is_explained() -> None:
    proc = run("handshake", "1|3|unix|/tmp/plugin123|grpc|")
    assert proc.returncode == 0, proc.stderr
    assert "app protocol version   3" in proc.stdout
    assert "/tmp/plugin123" in proc.stdout
    assert "none (no AutoMTLS)" in proc.stdout


def test_bad_handshake_line_gives_go_plugins_error_in_one_line() -> None:
    proc = run("handshake", "hello world")
    assert proc.returncode == 1
    assert proc.stderr.startswith("tether: Unrecognized remote plugin message: hello world")
    assert "Traceback" not in proc.stderr


def test_no_command_prints_help() -> None:
    proc = run()
    assert proc.returncode == 2
    assert "handshake" in proc.stdout

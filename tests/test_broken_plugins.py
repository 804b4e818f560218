"""Plugins that fail before or during the handshake, run as real child processes.

Each case is a mode of tests/plugins/helper.py (go-plugin's TestHelperProcess pattern). The
host must report go-plugin's error text, and must not leave the broken process running or
unreaped.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tether
from _lifecycle import pid_reaped, read_pid
from conftest import HELPER, MakeClient, pidfile_env
from plugins.helper import HANDSHAKE, Echo

GO_COOKIE_TEXT = (
    "This binary is a plugin. These are not meant to be executed directly.\n"
    "Please execute the program that consumes these plugins, which will\n"
    "load any plugins automatically\n"
)
GO_COOKIE_FIRST_LINE = GO_COOKIE_TEXT.splitlines()[0]


def assert_reaped(pidfile: Path) -> None:
    """The helper that wrote `pidfile` was killed and reaped (not left running or a zombie)."""
    pid = read_pid(pidfile)
    assert pid_reaped(pid), f"plugin process {pid} is still there after the failed start"


# --- the magic cookie -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "handshake",
    [
        pytest.param(
            tether.HandshakeConfig(1, HANDSHAKE.magic_cookie_key, "not-the-cookie"),
            id="wrong-value",
        ),
        pytest.param(
            tether.HandshakeConfig(1, "SOME_OTHER_COOKIE_KEY", HANDSHAKE.magic_cookie_value),
            id="missing-key",
        ),
    ],
)
def test_wrong_cookie_reports_go_plugin_text(
    make_client: MakeClient, handshake: tether.HandshakeConfig
) -> None:
    client = make_client(handshake=handshake, inherit_env=False)
    with pytest.raises(tether.PluginExitedError) as info:
        client.start()
    err = info.value
    assert err.returncode == 1
    assert GO_COOKIE_FIRST_LINE in err.stderr_tail
    assert GO_COOKIE_FIRST_LINE in str(err)
    assert "plugin exited before we could connect" in str(err)
    assert client.pid is None
    assert client.reattach_config is None


def test_running_the_plugin_directly_prints_go_plugin_text() -> None:
    # As a user would, from a shell: no cookie in the environment.
    env = {k: v for k, v in os.environ.items() if k != HANDSHAKE.magic_cookie_key}
    result = subprocess.run(
        [sys.executable, HELPER, "healthy"], env=env, capture_output=True, timeout=30
    )
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode() == GO_COOKIE_TEXT


def test_running_the_plugin_with_an_empty_environment() -> None:
    result = subprocess.run([sys.executable, HELPER, "healthy"], env={}, capture_output=True)
    assert (result.returncode, result.stdout) == (1, b"")
    assert result.stderr.decode() == GO_COOKIE_TEXT


# --- bad handshake lines ----------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_unknown_core_version(make_client: MakeClient, pidfile: Path) -> None:
    client = make_client("bad_core", env=pidfile_env(pidfile))
    with pytest.raises(tether.HandshakeError) as info:
        client.start()
    assert not isinstance(info.value, tether.PluginExitedError)
    assert "incompatible core API version with plugin. Plugin version: 2, Core version: 1" in str(
        info.value
    )
    assert_reaped(pidfile)


@pytest.mark.timeout(20)
def test_garbage_instead_of_handshake(make_client: MakeClient, pidfile: Path) -> None:
    client = make_client("garbage", env=pidfile_env(pidfile))
    with pytest.raises(tether.HandshakeError) as info:
        client.start()
    assert "Unrecognized remote plugin message: hello this is not a handshake" in str(info.value)
    assert_reaped(pidfile)


@pytest.mark.timeout(20)
def test_netrpc_is_refused(make_client: MakeClient, pidfile: Path) -> None:
    client = make_client("netrpc", env=pidfile_env(pidfile))
    with pytest.raises(tether.UnsupportedProtocolError) as info:
        client.start()
    text = str(info.value)
    assert 'unsupported plugin protocol "netrpc"' in text
    assert "only gRPC" in text
    assert "native protocol" in text
    assert "net/rpc protocol is not supported" in text
    assert_reaped(pidfile)


@pytest.mark.timeout(20)
def test_exit_before_handshake(make_client: MakeClient) -> None:
    client = make_client("exit7")
    with pytest.raises(tether.PluginExitedError) as info:
        client.start()
    err = info.value
    assert err.returncode == 7
    assert err.stderr_tail[-1] == "helper: giving up with exit code 7"
    assert "exited with code 7" in str(err)
    assert "helper: giving up with exit code 7" in str(err)


def test_missing_executable(tmp_path: Path) -> None:
    client = tether.Client([str(tmp_path / "no-such-plugin")], handshake=HANDSHAKE)
    with pytest.raises(tether.PluginExitedError) as info:
        client.start()
    assert info.value.returncode is None
    assert "no-such-plugin" in str(info.value)


@pytest.mark.timeout(20)
def test_start_timeout(make_client: MakeClient, pidfile: Path) -> None:
    client = make_client("silent", start_timeout=1.0, env=pidfile_env(pidfile))
    began = time.monotonic()
    with pytest.raises(tether.StartTimeoutError) as info:
        client.start()
    elapsed = time.monotonic() - began
    assert "timeout while waiting for plugin to start" in str(info.value)
    assert isinstance(info.value, TimeoutError)
    assert 0.9 <= elapsed < 5.0
    assert_reaped(pidfile)


# --- version negotiation ----------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_no_common_app_version(make_client: MakeClient, pidfile: Path) -> None:
    client = make_client("versioned", versions=(1,), env=pidfile_env(pidfile))
    with pytest.raises(tether.HandshakeError) as info:
        client.start()
    # The plugin announces its lowest version when nothing matches; the host names both sides.
    assert "incompatible API version with plugin. Plugin version: 2, Client versions: 1" in str(
        info.value
    )
    assert_reaped(pidfile)


@pytest.mark.parametrize(
    ("versions", "negotiated"),
    [((1, 2, 3), 3), ((2,), 2), ((3, 2), 3), ((2, 4), 2)],
)
def test_version_negotiation(
    make_client: MakeClient, versions: tuple[int, ...], negotiated: int
) -> None:
    client = make_client("versioned", versions=versions)
    client.start()
    assert client.negotiated_version == negotiated
    assert client.dispense("echo", Echo).tag() == f"v{negotiated}"
    rc = client.reattach_config
    assert rc is not None
    assert rc.protocol_version == negotiated


# --- checksums --------------------------------------------------------------------------------


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_checksum_match_starts(make_client: MakeClient) -> None:
    client = make_client(checksum="sha256:" + _sha256(sys.executable))
    client.start()
    assert client.dispense("echo", Echo).add(2, 3) == 5


def test_checksum_mismatch_starts_nothing(make_client: MakeClient, pidfile: Path) -> None:
    wrong = "sha256:" + hashlib.sha256(b"not the interpreter").hexdigest()
    client = make_client(checksum=wrong, env=pidfile_env(pidfile))
    with pytest.raises(tether.ChecksumMismatchError):
        client.start()
    assert client.pid is None
    time.sleep(0.2)  # a process started despite the mismatch would have written its pid
    assert not pidfile.exists()

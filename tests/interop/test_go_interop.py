"""tether <-> go-plugin 1.0.1, both directions, over go-plugin's gRPC protocol.

Go host -> tether plugin: the Go peers (kvhost, negotiatedhost) run tether plugins
(examples/kv/plugin.py and the test plugins next to this file) through `sh -c`.
tether host -> Go plugin: examples/kv/host.py, or `tether.Client` / `tether.AsyncClient` in
this process, run the Go kvplugin.

Every test gets its own cwd (the kv_<key> files) and TMPDIR (plugin sockets), so a socket
left behind is seen by `peers.leftovers()`. See GOPLUGIN_WIRE.md §10-11 for what each side
must do.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

import tether
from interop.peers import COOKIE_TEXT, Peers, relayed
from interop.pyside import (
    CHATTY_PLUGIN_PY,
    FORCED_KILL,
    GRACEFUL_MS,
    KV_HOST_PY,
    KV_PLUGIN_PY,
    VERSIONED_PLUGIN_PY,
    assert_graceful,
    assert_ok,
    kv_pb2,
    kv_shared,
    pid_alive,
    pid_cmd,
    processes_in,
    python_cmd,
    run_py_host,
    wait_gone,
)

# The Python KV example appends this to every value it stores (like go-plugin's own example).
PY_MARKER = "\n\nWritten from plugin-python"
AUTOMTLS = pytest.mark.parametrize("automtls", ["0", "1"], ids=["plain", "automtls"])


@pytest.fixture
def host_tmpdir(peers: Peers, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make this process's tether hosts create their socket dirs in the test's TMPDIR too."""
    monkeypatch.setattr(tempfile, "tempdir", str(peers.tmpdir))
    return peers.tmpdir


def go_client(
    go_bins: dict[str, Path], peers: Peers, cls: Any = tether.Client, **kwargs: Any
) -> Any:
    """A tether client (not started) of the Go kvplugin, isolated in the test's dirs."""
    kwargs.setdefault("handshake", kv_shared().HANDSHAKE)
    kwargs.setdefault("name", "kv")
    return cls(
        [str(go_bins["kvplugin"])],
        cwd=str(peers.cwd),
        env={"TMPDIR": str(peers.tmpdir)},
        **kwargs,
    )


def plugin_records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == f"tether.plugin.{name}"]


def wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# --------------------------------------------------------------------------------------------
# 1. Go host -> tether KV plugin (examples/kv/plugin.py)


@AUTOMTLS
def test_go_host_uses_tether_kv_plugin(
    go_bins: dict[str, Path], peers: Peers, automtls: str
) -> None:
    kvhost = go_bins["kvhost"]
    pidfile = peers.cwd / "plugin.pid"
    plugin = pid_cmd(pidfile, python_cmd(KV_PLUGIN_PY))

    put = peers.run(
        kvhost, "put", "greeting", "hello world", KV_PLUGIN=plugin, KV_AUTOMTLS=automtls
    )
    assert_ok(put)
    assert put.stdout == ""
    assert ("configuring client automatic mTLS" in put.stderr) == (automtls == "1")
    assert (peers.cwd / "kv_greeting").read_bytes() == b"hello world" + PY_MARKER.encode()
    # The plugin's `log.info("put", extra={"key": ..., "bytes": ...})`, written as hclog JSON
    # by tether and relayed by go-plugin at INFO with its fields (in random order).
    assert relayed(put, "[INFO]  kvhost.sh: put:", "@module=kv", "key=greeting", "bytes=11"), (
        put.stderr
    )
    put_pid = int(pidfile.read_text())
    assert wait_gone(put_pid, 2.0), f"tether plugin {put_pid} still running after the host exited"

    get = peers.run(kvhost, "get", "greeting", KV_PLUGIN=plugin, KV_AUTOMTLS=automtls)
    assert_ok(get)
    assert get.stdout == f"hello world{PY_MARKER}\n"
    get_pid = int(pidfile.read_text())
    assert get_pid != put_pid
    assert wait_gone(get_pid, 2.0)
    # Both plugin processes removed their socket (and its directory) on Shutdown.
    assert peers.leftovers() == []


def test_go_host_sees_tether_plugin_error(go_bins: dict[str, Path], peers: Peers) -> None:
    run = peers.run(go_bins["kvhost"], "get", "missing", KV_PLUGIN=python_cmd(KV_PLUGIN_PY))
    assert run.returncode == 1
    # context.abort(NOT_FOUND, ...) in the Python servicer, as go-plugin's host reports it.
    assert "Error: rpc error: code = NotFound desc = no value for key 'missing'" in run.stderr
    assert_graceful(run)
    assert peers.leftovers() == []


# --------------------------------------------------------------------------------------------
# 2. tether KV host (examples/kv/host.py) -> Go kvplugin


@AUTOMTLS
def test_tether_host_uses_go_kv_plugin(
    go_bins: dict[str, Path], peers: Peers, automtls: str
) -> None:
    plugin = str(go_bins["kvplugin"])

    put = run_py_host(
        peers, KV_HOST_PY, "put", "k", "hello from python", KV_PLUGIN=plugin, KV_AUTOMTLS=automtls
    )
    assert put.returncode == 0, put.stderr
    assert put.stdout == ""
    assert (peers.cwd / "kv_k").read_bytes() == b"hello from python"  # the Go plugin's format

    get = run_py_host(
        peers, KV_HOST_PY, "get", "k", KV_PLUGIN=plugin, KV_AUTOMTLS=automtls, KV_LOG_LEVEL="debug"
    )
    assert get.returncode == 0, get.stderr
    assert get.stdout == "hello from python\n"
    # The Go plugin's hclog JSON debug line, relayed into the host's logging at DEBUG under
    # tether.plugin.kv with its fields (host.py's format: "LEVEL logger: message").
    assert "DEBUG tether.plugin.kv: kv get @module=kvplugin key=k\n" in get.stderr, get.stderr
    if automtls == "1":
        assert "INFO tether.plugin.kv: configuring server automatic mTLS @module=kvplugin" in (
            get.stderr
        )
    assert FORCED_KILL not in get.stderr
    # A whole host run (Python start-up, handshake, ping, get, kill) takes a few hundred ms;
    # the forced-kill fallback alone would add 2 s. (The in-process test below is exact.)
    assert get.seconds < 2.0
    assert peers.leftovers() == []


def test_tether_host_missing_key_fails(go_bins: dict[str, Path], peers: Peers) -> None:
    run = run_py_host(peers, KV_HOST_PY, "get", "nope", KV_PLUGIN=str(go_bins["kvplugin"]))
    assert run.returncode == 1
    assert run.stdout == ""
    assert "open kv_nope: no such file or directory" in run.stderr
    assert peers.leftovers() == []


@AUTOMTLS
def test_tether_client_kills_go_plugin_gracefully(
    go_bins: dict[str, Path],
    peers: Peers,
    host_tmpdir: Path,
    caplog: pytest.LogCaptureFixture,
    automtls: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    pb2, shared = kv_pb2(), kv_shared()
    client = go_client(go_bins, peers, auto_mtls=automtls == "1")
    try:
        client.start()
        assert client.protocol == "grpc"
        assert client.negotiated_version == 1
        kv = client.dispense(shared.PLUGIN_NAME, shared.KVPlugin)
        kv.Put(pb2.PutRequest(key="k", value=b"\x00binary\xff"))
        assert kv.Get(pb2.GetRequest(key="k")).value == b"\x00binary\xff"
        pid = client.pid
        assert processes_in(peers.cwd) == [pid]  # (what the refusal tests check is empty)
        start = time.perf_counter()
        client.kill()
        kill_ms = (time.perf_counter() - start) * 1000
    finally:
        client.kill()
    assert client.returncode == 0
    assert kill_ms < GRACEFUL_MS
    assert not any(FORCED_KILL in r.getMessage() for r in caplog.records)
    assert not pid_alive(pid)
    assert peers.leftovers() == []  # the Go plugin's socket and tether's own socket dir

    # Logs from the Go plugin: debug lines at DEBUG, with their hclog fields.
    puts = [r for r in plugin_records(caplog, "kv") if r.getMessage().startswith("kv put")]
    assert len(puts) == 1
    assert puts[0].levelno == logging.DEBUG
    assert puts[0].__dict__["plugin_fields"] == {"@module": "kvplugin", "key": "k", "bytes": 8}


# --------------------------------------------------------------------------------------------
# 4. Version negotiation: negotiatedhost (2: net/rpc, 3: gRPC) -> tether plugin serving only 3


def test_negotiated_version_3(go_bins: dict[str, Path], peers: Peers) -> None:
    host, plugin = go_bins["negotiatedhost"], python_cmd(VERSIONED_PLUGIN_PY)

    put = peers.run(host, "put", "k", "negotiated", KV_PLUGIN=plugin)
    get = peers.run(host, "get", "k", KV_PLUGIN=plugin)
    for run in (put, get):
        assert_ok(run)
        assert run.field("NEGOTIATED_VERSION") == "3"
        assert run.field("NEGOTIATED_PROTOCOL") == "grpc"
    assert get.stdout == f"negotiated{PY_MARKER}\n"
    # 7. A Python WARNING arrives in the Go host's log as [WARN], fields intact.
    assert relayed(get, "[WARN]  negotiatedhost.sh: kv get:", "@module=kv_versioned", "key=k"), (
        get.stderr
    )
    assert peers.leftovers() == []


def test_negotiation_fails_when_host_offers_only_netrpc(
    go_bins: dict[str, Path], peers: Peers
) -> None:
    pidfile = peers.cwd / "plugin.pid"
    run = peers.run(
        go_bins["negotiatedhost"],
        "get",
        "k",
        KV_PLUGIN=python_cmd(VERSIONED_PLUGIN_PY),
        KV_PROTO="netrpc",
        INTEROP_PIDFILE=str(pidfile),
    )
    # PLUGIN_PROTOCOL_VERSIONS=2 has nothing in common with the plugin's {3}: the plugin
    # announces its lowest version, 3, and go-plugin refuses it.
    assert run.returncode == 1
    assert (
        "Error: Incompatible API version with plugin. Plugin version: 3, Client versions: [2]"
        in (run.stderr)
    )
    assert "NEGOTIATED_VERSION=" not in run.stderr
    # go-plugin's Start() kills the `sh -c` wrapper on failure; the Python plugin under it
    # notices its parent is gone, exits and removes its socket.
    pid = int(pidfile.read_text())
    assert wait_gone(pid, 5.0), f"tether plugin {pid} outlived its host"
    assert wait_for(lambda: peers.leftovers() == [], 2.0), peers.leftovers()


# --------------------------------------------------------------------------------------------
# 5. A Go plugin offering net/rpc to a tether host


def test_tether_host_refuses_netrpc(
    go_bins: dict[str, Path], peers: Peers, host_tmpdir: Path
) -> None:
    # kvplugin serves version 2 over net/rpc; tether asks for 2 only.
    client = go_client(go_bins, peers, versions=(2,))
    with pytest.raises(tether.UnsupportedProtocolError) as info:
        client.start()
    message = str(info.value)
    assert 'unsupported plugin protocol "netrpc"' in message
    assert "only gRPC (`grpc`) and tether's native protocol (`tether`)" in message
    assert "net/rpc protocol is not supported" in message
    assert processes_in(peers.cwd) == []  # the refused plugin was killed and reaped
    client.kill()  # harmless after a failed start
    # go-plugin SIGKILLs a plugin whose handshake it refuses, and so does tether: a Go plugin
    # leaves its socket behind then (GOPLUGIN_WIRE §11); tether's own socket dir is gone.
    assert not [name for name in peers.leftovers() if name.startswith("tether-")]


# --------------------------------------------------------------------------------------------
# 6. A Go plugin started with the wrong cookie


def test_go_plugin_rejects_wrong_cookie(
    go_bins: dict[str, Path], peers: Peers, host_tmpdir: Path
) -> None:
    wrong = tether.HandshakeConfig(
        protocol_version=1, magic_cookie_key="BASIC_PLUGIN", magic_cookie_value="goodbye"
    )
    client = go_client(go_bins, peers, handshake=wrong)
    with pytest.raises(tether.PluginExitedError) as info:
        client.start()
    assert info.value.returncode == 1
    assert info.value.stderr_tail == tuple(COOKIE_TEXT.splitlines())
    assert "This binary is a plugin. These are not meant to be executed directly." in str(
        info.value
    )
    assert processes_in(peers.cwd) == []
    assert peers.leftovers() == []


# --------------------------------------------------------------------------------------------
# 8. AsyncClient -> Go kvplugin


async def test_async_client_uses_go_plugin(
    go_bins: dict[str, Path], peers: Peers, host_tmpdir: Path
) -> None:
    pb2, shared = kv_pb2(), kv_shared()
    async with go_client(go_bins, peers, cls=tether.AsyncClient) as client:
        await client.ping()
        kv = await client.dispense(shared.PLUGIN_NAME, shared.KVPlugin)
        await asyncio.gather(
            *(kv.Put(pb2.PutRequest(key=f"k{i}", value=f"v{i}".encode())) for i in range(5))
        )
        replies = await asyncio.gather(*(kv.Get(pb2.GetRequest(key=f"k{i}")) for i in range(5)))
        assert [r.value for r in replies] == [f"v{i}".encode() for i in range(5)]
        pid = client.pid
        start = time.perf_counter()
    kill_ms = (time.perf_counter() - start) * 1000
    assert client.returncode == 0
    assert kill_ms < GRACEFUL_MS
    assert not pid_alive(pid)
    assert (peers.cwd / "k3").exists() is False  # the Go plugin writes kv_<key>
    assert (peers.cwd / "kv_k3").read_bytes() == b"v3"
    assert peers.leftovers() == []


# --------------------------------------------------------------------------------------------
# 9. Ping (health service "plugin") and a plugin that dies


def test_ping_go_plugin_then_sigkill(
    go_bins: dict[str, Path], peers: Peers, host_tmpdir: Path
) -> None:
    client = go_client(go_bins, peers)
    try:
        client.ping()
        pid = client.pid
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: client.exited, 5.0)
        start = time.perf_counter()
        with pytest.raises(tether.ConnectionClosedError):
            client.ping(timeout=10.0)
        assert time.perf_counter() - start < 5.0  # fails fast, does not wait out the timeout
    finally:
        client.kill()
    assert client.returncode == -signal.SIGKILL


# --------------------------------------------------------------------------------------------
# 10. Stdio of a tether gRPC plugin (kv_chatty_plugin.py)


def test_tether_plugin_stdout_reaches_tether_host_log(
    peers: Peers, host_tmpdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pb2, shared = kv_pb2(), kv_shared()
    raw = io.StringIO()
    with tether.Client(
        [sys.executable, str(CHATTY_PLUGIN_PY)],
        handshake=shared.HANDSHAKE,
        name="chatty",
        cwd=str(peers.cwd),
        stdout=raw,
    ) as client:
        kv = client.dispense(shared.PLUGIN_NAME, shared.KVPlugin)
        kv.Put(pb2.PutRequest(key="a", value=b"hello"))
        kv.Put(pb2.PutRequest(key="b", value=b"long:2500"))

        def stdio_lines() -> list[str]:
            return [
                r.getMessage()
                for r in plugin_records(caplog, "chatty")
                if getattr(r, "plugin_stream", None) in ("stdout", "stderr")
            ]

        expected = ["stdout says: hello", "stderr says: hello", "x" * 2500]
        wait_for(lambda: len("".join(stdio_lines())) >= len("".join(expected)), 5.0)
        assert wait_for(lambda: raw.getvalue().endswith("x" * 2500 + "\n"), 5.0), raw.getvalue()
    # The raw copy (stdout= sink) holds exactly what the plugin printed to stdout.
    assert raw.getvalue() == "stdout says: hello\n" + "x" * 2500 + "\n"
    # Through GRPCStdio the prints arrive at INFO on the plugin's logger: one record per line,
    # as for the native protocol's stdout relay.
    records = [
        r
        for r in plugin_records(caplog, "chatty")
        if getattr(r, "plugin_stream", None) in ("stdout", "stderr")
    ]
    assert all(r.levelno == logging.INFO for r in records)
    assert [r.getMessage() for r in records] == expected
    assert client.returncode == 0


def test_tether_plugin_stdout_does_not_block_go_1_0_1_host(
    go_bins: dict[str, Path], peers: Peers
) -> None:
    # go-plugin 1.0.1 has no GRPCStdio: nobody ever reads what the plugin prints after the
    # handshake. Printing 1 MiB must neither block the plugin nor break its Shutdown.
    plugin = python_cmd(CHATTY_PLUGIN_PY)
    put = peers.run(go_bins["kvhost"], "put", "k", f"flood:{1 << 20}", KV_PLUGIN=plugin)
    assert_ok(put)
    assert relayed(put, "[INFO]  kvhost.sh: flooded:", "@module=kv_chatty"), put.stderr
    get = peers.run(go_bins["kvhost"], "get", "k", KV_PLUGIN=plugin)
    assert_ok(get)
    assert get.stdout == f"flood:{1 << 20}{PY_MARKER}\n"
    assert peers.leftovers() == []

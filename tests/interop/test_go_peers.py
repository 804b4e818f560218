"""Go host <-> Go plugin sanity checks of the interop peers (go-plugin 1.0.1 on both sides).

These pin down what the Go programs do before they are pointed at tether's Python side: if one
of these fails, an interop failure is the Go peer's fault, not tether's.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from interop.build import GO_SRC
from interop.peers import COOKIE_TEXT, RUN_TIMEOUT, Peers, Run, relayed


def assert_ok(run: Run) -> None:
    assert run.returncode == 0, run.stderr
    # Graceful Shutdown over GRPCController: nowhere near the 2 s forced-kill fallback.
    assert run.kill_ms < 1000, run.stderr
    assert "plugin failed to exit gracefully" not in run.stderr


@pytest.mark.parametrize("automtls", ["0", "1"], ids=["plain", "automtls"])
def test_kv_put_get(go_bins: dict[str, Path], peers: Peers, automtls: str) -> None:
    kvhost, plugin = go_bins["kvhost"], str(go_bins["kvplugin"])

    put = peers.run(
        kvhost, "put", "greeting", "hello world", KV_PLUGIN=plugin, KV_AUTOMTLS=automtls
    )
    assert_ok(put)
    assert put.stdout == ""
    assert (peers.cwd / "kv_greeting").read_bytes() == b"hello world"
    # The plugin's hclog JSON line, relayed through the host's logger with its fields.
    assert relayed(put, "kvhost.sh: kv put:", "@module=kvplugin", "key=greeting", "bytes=11")
    assert ("configuring client automatic mTLS" in put.stderr) == (automtls == "1")

    get = peers.run(kvhost, "get", "greeting", KV_PLUGIN=plugin, KV_AUTOMTLS=automtls)
    assert_ok(get)
    assert get.stdout == "hello world\n"
    assert peers.leftovers() == []


def test_kv_error_exits_nonzero_after_kill(go_bins: dict[str, Path], peers: Peers) -> None:
    run = peers.run(go_bins["kvhost"], "get", "missing", KV_PLUGIN=str(go_bins["kvplugin"]))
    assert run.returncode == 1
    assert "Error: rpc error:" in run.stderr
    assert "kv_missing: no such file or directory" in run.stderr
    assert run.kill_ms < 1000  # Kill ran (and was graceful) before the error exit.
    assert peers.leftovers() == []


def test_kvhost_reports_plugin_that_refuses_to_start(
    go_bins: dict[str, Path], peers: Peers
) -> None:
    # 1.0.1's Start() races the closed stdout (an empty "line") against the process exit, so
    # the host usually reports an empty unrecognized message rather than the exit.
    run = peers.run(go_bins["kvhost"], "get", "k", KV_PLUGIN="echo oops >&2; exit 3")
    assert run.returncode == 1
    assert (
        "Error: Unrecognized remote plugin message: \n" in run.stderr
        or "Error: plugin exited before we could connect" in run.stderr
    ), run.stderr
    assert "kvhost.sh: oops" in run.stderr  # plain stderr lines are relayed at debug level
    assert "plugin failed to exit gracefully" in run.stderr  # no address: straight to SIGKILL
    assert run.kill_ms < 1000


def test_counter_adds_through_broker(go_bins: dict[str, Path], peers: Peers) -> None:
    counterhost, plugin = go_bins["counterhost"], str(go_bins["counterplugin"])

    for value in ("5", "7"):
        put = peers.run(counterhost, "put", "hits", value, COUNTER_PLUGIN=plugin)
        assert_ok(put)
        # The plugin called the host's AddHelper.Sum once per Put, via GRPCBroker.Dial.
        assert put.field("SUM_CALLS") == "1"
    assert relayed(put, "counterhost: sum called back:", "a=5", "b=7")
    assert relayed(put, "counterhost.sh: counter put:", "key=hits", "old=5", "new=12")

    get = peers.run(counterhost, "get", "hits", COUNTER_PLUGIN=plugin)
    assert_ok(get)
    assert get.stdout == "12\n"
    assert get.field("SUM_CALLS") == "0"
    assert peers.leftovers() == []


def test_counter_broker_under_automtls_fails_on_1_0_1(
    go_bins: dict[str, Path], peers: Peers
) -> None:
    # go-plugin <= 1.4.3 dials broker connections with a TLS config lacking ServerName, so the
    # plugin rejects the host's "localhost" cert (fixed in 1.4.4, #193). If this starts passing,
    # Debian upgraded go-plugin and tests expecting the failure must change.
    plugin = str(go_bins["counterplugin"])
    run = peers.run(
        go_bins["counterhost"], "put", "hits", "1", COUNTER_PLUGIN=plugin, COUNTER_AUTOMTLS="1"
    )
    assert run.returncode == 1
    assert "certificate is valid for localhost, not unused" in run.stderr
    assert run.field("SUM_CALLS") == "0"
    assert run.kill_ms < 1000


@pytest.mark.parametrize(
    ("kv_proto", "version", "protocol"),
    [("", "3", "grpc"), ("grpc", "3", "grpc"), ("netrpc", "2", "netrpc")],
    ids=["both-offered", "grpc-only", "netrpc-only"],
)
def test_negotiated_version(
    go_bins: dict[str, Path], peers: Peers, kv_proto: str, version: str, protocol: str
) -> None:
    host, plugin = go_bins["negotiatedhost"], str(go_bins["kvplugin"])

    put = peers.run(host, "put", "k", f"via {protocol}", KV_PLUGIN=plugin, KV_PROTO=kv_proto)
    get = peers.run(host, "get", "k", KV_PLUGIN=plugin, KV_PROTO=kv_proto)
    for run in (put, get):
        assert run.field("NEGOTIATED_VERSION") == version
        assert run.field("NEGOTIATED_PROTOCOL") == protocol
        if protocol == "grpc":
            assert_ok(run)
        else:
            # net/rpc Kill races on 1.0.1: Control.Quit often returns "session shutdown"
            # because the plugin exits before replying, so the host logs "plugin failed to exit
            # gracefully" and SIGKILLs an already exiting process (~1 run in 4).
            assert run.returncode == 0, run.stderr
            assert run.kill_ms < 1000, run.stderr
    assert get.stdout == f"via {protocol}\n"
    assert peers.leftovers() == []


@pytest.mark.parametrize("cookie", [None, "wrong"], ids=["no-cookie", "wrong-cookie"])
@pytest.mark.parametrize("plugin", ["kvplugin", "counterplugin"])
def test_plugin_run_directly_refuses(
    go_bins: dict[str, Path], peers: Peers, plugin: str, cookie: str | None
) -> None:
    env = {} if cookie is None else {"BASIC_PLUGIN": cookie}
    run = peers.run(go_bins[plugin], **env)
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr == COOKIE_TEXT


def test_full_run_timing(
    go_bins: dict[str, Path], peers: Peers, report_timing: Callable[[str], None]
) -> None:
    """One full Go host -> Go plugin run: spawn, handshake, ping, get, graceful kill, exit."""
    kvhost, plugin = go_bins["kvhost"], str(go_bins["kvplugin"])
    assert_ok(peers.run(kvhost, "put", "k", "v", KV_PLUGIN=plugin))

    runs = [
        peers.run(kvhost, "get", "k", KV_PLUGIN=plugin, KV_LOG_LEVEL="error") for _ in range(10)
    ]
    for run in runs:
        assert_ok(run)
    ms = sorted(run.seconds * 1000 for run in runs)
    kill_ms = sorted(run.kill_ms for run in runs)
    report_timing(
        f"kvhost get -> kvplugin, {len(runs)} runs: min {ms[0]:.1f} ms, "
        f"median {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms; "
        f"Kill() median {statistics.median(kill_ms)} ms"
    )


def test_go_sources_are_gofmt_clean(go_bins: dict[str, Path]) -> None:
    # go_bins guarantees the toolchain is installed.
    gofmt = shutil.which("gofmt")
    assert gofmt is not None
    proc = subprocess.run(
        [gofmt, "-l", str(GO_SRC)], capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "", f"not gofmt'ed:\n{proc.stdout}"

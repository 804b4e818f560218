"""Bidirectional calls through go-plugin's GRPCBroker between tether and go-plugin 1.0.1.

go-plugin's examples/bidirectional: for each Put the host serves AddHelper under a broker id,
and the plugin dials that id back to ask the host for the sum. Python side:
examples/counter (plugin.py, host.py); Go side: counterhost, counterplugin. Both hosts print
SUM_CALLS=<n> to stderr (how often the plugin called back).
"""

from __future__ import annotations

from pathlib import Path

from interop.peers import Peers, relayed
from interop.pyside import (
    COUNTER_HOST_PY,
    COUNTER_PLUGIN_PY,
    FORCED_KILL,
    assert_ok,
    pid_cmd,
    python_cmd,
    run_py_host,
    wait_gone,
)

BROKER_TLS_BUG = "certificate is valid for localhost, not unused"


def test_go_host_uses_tether_counter_plugin(go_bins: dict[str, Path], peers: Peers) -> None:
    counterhost = go_bins["counterhost"]
    pidfile = peers.cwd / "plugin.pid"
    plugin = pid_cmd(pidfile, python_cmd(COUNTER_PLUGIN_PY))

    pids = []
    for value in ("5", "7"):
        put = peers.run(counterhost, "put", "hits", value, COUNTER_PLUGIN=plugin)
        assert_ok(put)
        # The Python plugin dialled the Go host's AddHelper once per Put, via the broker.
        assert put.field("SUM_CALLS") == "1"
        pids.append(int(pidfile.read_text()))
    assert relayed(put, "counterhost: sum called back:", "a=5", "b=7"), put.stderr
    # The Python plugin's INFO log line, relayed by go-plugin with its fields.
    assert relayed(
        put,
        "[INFO]  counterhost.sh: counter put:",
        "@module=counter",
        "key=hits",
        "old=5",
        "new=12",
    ), put.stderr

    get = peers.run(counterhost, "get", "hits", COUNTER_PLUGIN=plugin)
    assert_ok(get)
    assert get.stdout == "12\n"
    assert get.field("SUM_CALLS") == "0"
    # Stored in the Go plugin's format, so the two plugins can take turns on the files.
    assert (peers.cwd / "kv_hits").read_text() == '{"Value":12}'
    pids.append(int(pidfile.read_text()))
    for pid in pids:
        assert wait_gone(pid, 2.0), f"tether plugin {pid} still running"
    assert peers.leftovers() == []


def test_tether_host_uses_go_counter_plugin(go_bins: dict[str, Path], peers: Peers) -> None:
    plugin = str(go_bins["counterplugin"])

    for value in ("5", "7"):
        put = run_py_host(
            peers,
            COUNTER_HOST_PY,
            "put",
            "hits",
            value,
            COUNTER_PLUGIN=plugin,
            COUNTER_LOG_LEVEL="debug",
        )
        assert put.returncode == 0, put.stderr
        assert put.field("SUM_CALLS") == "1"
        assert FORCED_KILL not in put.stderr
    # The Go plugin's debug line, relayed into the Python host's logging with its fields.
    assert "DEBUG tether.plugin.counter: counter put @module=counterplugin key=hits" in put.stderr
    assert "new=12 old=5" in put.stderr

    get = run_py_host(peers, COUNTER_HOST_PY, "get", "hits", COUNTER_PLUGIN=plugin)
    assert get.returncode == 0, get.stderr
    assert get.stdout == "12\n"
    assert get.field("SUM_CALLS") == "0"
    # Both the Go plugin's sockets and the tether host's broker socket dirs are gone.
    assert peers.leftovers() == []


def test_go_and_tether_counter_plugins_take_turns(go_bins: dict[str, Path], peers: Peers) -> None:
    """The same counter file, advanced by the Go plugin and the Python plugin in turn, each
    driven by the other side's host."""
    py_plugin = python_cmd(COUNTER_PLUGIN_PY)
    go_plugin = str(go_bins["counterplugin"])
    assert_ok(peers.run(go_bins["counterhost"], "put", "n", "1", COUNTER_PLUGIN=py_plugin))
    run = run_py_host(peers, COUNTER_HOST_PY, "put", "n", "2", COUNTER_PLUGIN=go_plugin)
    assert run.returncode == 0, run.stderr
    assert_ok(peers.run(go_bins["counterhost"], "put", "n", "3", COUNTER_PLUGIN=go_plugin))
    run = run_py_host(peers, COUNTER_HOST_PY, "put", "n", "4", COUNTER_PLUGIN=py_plugin)
    assert run.returncode == 0, run.stderr
    get = peers.run(go_bins["counterhost"], "get", "n", COUNTER_PLUGIN=py_plugin)
    assert_ok(get)
    assert get.stdout == "10\n"


# AutoMTLS + broker against go-plugin 1.0.1 (GOPLUGIN_WIRE §11; fixed upstream in 1.4.4, #193).
# The bug is in 1.0.1's *dialing* side: GRPCBroker.Dial uses the AutoMTLS config without
# ServerName, so Go checks the peer's "localhost" certificate against the dial target
# "unused". Hence the outcome depends on who dials back, i.e. which side is the plugin:
#
# - Go host -> tether plugin: the tether plugin dials the Go host's AddHelper over TLS
#   (verifying the host's certificate, which it was given in PLUGIN_CLIENT_CERT, itself) and
#   the Go host's broker server (configured with the host's AutoMTLS certificate) accepts
#   it: the callback works under AutoMTLS.
# - tether host -> Go plugin: the Go plugin's Dial fails exactly as it does Go <-> Go, so the
#   Put fails with UNAVAILABLE and the host's AddHelper is never called.


def test_automtls_broker_go_host_to_tether_plugin_works(
    go_bins: dict[str, Path], peers: Peers
) -> None:
    plugin = python_cmd(COUNTER_PLUGIN_PY)
    put = peers.run(
        go_bins["counterhost"], "put", "hits", "3", COUNTER_PLUGIN=plugin, COUNTER_AUTOMTLS="1"
    )
    assert_ok(put)
    assert "configuring client automatic mTLS" in put.stderr
    assert put.field("SUM_CALLS") == "1"
    assert BROKER_TLS_BUG not in put.stderr
    get = peers.run(
        go_bins["counterhost"], "get", "hits", COUNTER_PLUGIN=plugin, COUNTER_AUTOMTLS="1"
    )
    assert_ok(get)
    assert get.stdout == "3\n"
    assert peers.leftovers() == []


def test_automtls_broker_tether_host_to_go_plugin_fails_on_1_0_1(
    go_bins: dict[str, Path], peers: Peers
) -> None:
    plugin = str(go_bins["counterplugin"])
    put = run_py_host(
        peers, COUNTER_HOST_PY, "put", "hits", "3", COUNTER_PLUGIN=plugin, COUNTER_AUTOMTLS="1"
    )
    assert put.returncode == 1, put.stderr
    assert "StatusCode.UNAVAILABLE" in put.stderr
    assert BROKER_TLS_BUG in put.stderr
    assert put.field("SUM_CALLS") == "0"
    assert not (peers.cwd / "kv_hits").exists()
    # The failure is confined to the callback: the plugin itself is fine and shuts down
    # gracefully, and calls that need no callback still work under AutoMTLS.
    assert FORCED_KILL not in put.stderr
    (peers.cwd / "kv_hits").write_text('{"Value":41}')
    get = run_py_host(
        peers, COUNTER_HOST_PY, "get", "hits", COUNTER_PLUGIN=plugin, COUNTER_AUTOMTLS="1"
    )
    assert get.returncode == 0, get.stderr
    assert get.stdout == "41\n"
    assert peers.leftovers() == []

"""AutoMTLS on the gRPC path, end to end, for each pair of peers.

- tether host -> tether plugin: both certificates are P-256, grpcio does TLS itself, no relay
  on either side (and it is TLS: plaintext and unknown certificates are refused);
- tether host -> Go plugin: the Go plugin accepts the host's P-256 certificate and presents
  go-plugin's P-521 one, which grpcio cannot verify: the host relays;
- Go host -> tether plugin: a host certificate of go-plugin's profile (P-521) gets a P-521
  answer and the relay. Run with the real Go host in test_go_interop.py and
  test_go_counter.py; here the plugin is driven directly, so that its process can be looked at.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health_pb2

import tether
from _grpc_health import health_check, refused
from interop.peers import Peers
from interop.pyside import KV_PLUGIN_PY, kv_pb2, kv_shared
from tether import _handshake as hs
from tether._grpc_broker import GRPC_OPTIONS
from tether._grpc_tls import GRPCTLS, Dialed, dial
from tether._mtls import Certificate, decode_server_cert, der_to_pem, generate_certificate

TIMEOUT = 10.0


def refused_closing(channel: grpc.Channel) -> bool:
    return refused(channel, close=True)


@pytest.fixture
def host_tmpdir(peers: Peers, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process's tether hosts create their socket dirs in the test's TMPDIR too."""
    monkeypatch.setattr(tempfile, "tempdir", str(peers.tmpdir))
    return peers.tmpdir


def curve(der: bytes) -> str:
    key = x509.load_der_x509_certificate(der).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key.curve.name


def unix_socket_paths(pid: int) -> set[str]:
    """The paths of the Unix sockets process `pid` holds (listening or accepted)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    paths = set()
    with open("/proc/net/unix") as table:
        next(table)
        for line in table:
            fields = line.split()
            # Num RefCount Protocol Flags Type St Inode [Path]
            if len(fields) >= 8 and fields[6] in inodes:
                paths.add(fields[7])
    return paths


def kv_client(peers: Peers, cls: Any = tether.Client, **kwargs: Any) -> Any:
    return cls(
        [sys.executable, str(KV_PLUGIN_PY)],
        handshake=kv_shared().HANDSHAKE,
        name="kv",
        cwd=str(peers.cwd),
        env={"TMPDIR": str(peers.tmpdir)},
        auto_mtls=True,
        **kwargs,
    )


# --------------------------------------------------------------------------------------------
# tether host -> tether plugin: grpcio's own TLS


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_tether_to_tether_uses_grpcio_tls_without_relay(
    peers: Peers, host_tmpdir: Path, transport: str
) -> None:
    pb2, shared = kv_pb2(), kv_shared()
    client = kv_client(peers, transport=transport)
    try:
        client.start()
        kv = client.dispense(shared.PLUGIN_NAME, shared.KVPlugin)
        kv.Put(pb2.PutRequest(key="k", value=b"secret"))
        assert kv.Get(pb2.GetRequest(key="k")).value.startswith(b"secret")

        line = client._line
        plugin_der = decode_server_cert(line.server_cert)
        assert curve(plugin_der) == "secp256r1"
        assert curve(client._launch._cert.cert_der) == "secp256r1"
        conn = client._grpc
        assert conn.dialed.relay is None
        assert conn.dialed.credentials is not None  # a grpcio secure channel
        assert conn.target == tether._grpc_tls.grpc_target(line.network, line.address)
        # No relay socket in the host, no plaintext backend socket in the plugin: the plugin's
        # only Unix socket is the one it announced (none over TCP).
        assert not any(p.endswith("/relay") for p in unix_socket_paths(os.getpid()))
        expected = {line.address} if transport == "unix" else set()
        assert unix_socket_paths(client.pid) <= expected

        # Really mutual TLS: plaintext, a stranger's certificate and a wrong pin are refused.
        target = conn.target
        assert refused_closing(grpc.insecure_channel(target))
        stranger = GRPCTLS.between(generate_certificate("P-256"), der_to_pem(plugin_der))
        assert refused_closing(
            grpc.secure_channel(
                target, stranger.channel_credentials(), stranger.channel_options([])
            )
        )
        wrong_pin = GRPCTLS.between(client._launch._cert, generate_certificate("P-256").cert_pem)
        assert refused_closing(
            grpc.secure_channel(
                target, wrong_pin.channel_credentials(), wrong_pin.channel_options([])
            )
        )
        client.ping()
    finally:
        client.kill()
    assert client.returncode == 0
    assert peers.leftovers() == []


def test_async_client_uses_grpcio_tls_without_relay(peers: Peers, host_tmpdir: Path) -> None:
    pb2, shared = kv_pb2(), kv_shared()

    async def main() -> None:
        async with kv_client(peers, tether.AsyncClient) as client:
            kv = await client.dispense(shared.PLUGIN_NAME, shared.KVPlugin)
            await kv.Put(pb2.PutRequest(key="a", value=b"async"))
            reply = await kv.Get(pb2.GetRequest(key="a"))
            assert reply.value.startswith(b"async")
            assert client._grpc.dialed.relay is None
            assert client._grpc.dialed.credentials is not None
            assert not any(p.endswith("/relay") for p in unix_socket_paths(os.getpid()))

    asyncio.run(main())
    assert peers.leftovers() == []


# --------------------------------------------------------------------------------------------
# tether host -> Go plugin: the Go plugin takes our P-256 certificate, we relay to its P-521


def test_tether_host_relays_to_a_go_plugin(
    go_bins: dict[str, Path], peers: Peers, host_tmpdir: Path
) -> None:
    pb2, shared = kv_pb2(), kv_shared()
    client: Any = tether.Client(
        [str(go_bins["kvplugin"])],
        handshake=shared.HANDSHAKE,
        name="kv",
        cwd=str(peers.cwd),
        env={"TMPDIR": str(peers.tmpdir)},
        auto_mtls=True,
    )
    try:
        client.start()
        kv = client.dispense(shared.PLUGIN_NAME, shared.KVPlugin)
        kv.Put(pb2.PutRequest(key="go", value=b"from a P-256 host"))
        assert kv.Get(pb2.GetRequest(key="go")).value == b"from a P-256 host"
        assert curve(client._launch._cert.cert_der) == "secp256r1"
        assert curve(decode_server_cert(client._line.server_cert)) == "secp521r1"
        relay = client._grpc.dialed.relay
        assert relay is not None
        assert client._grpc.target == "unix:" + relay.path
    finally:
        client.kill()
    assert client.returncode == 0
    assert peers.leftovers() == []


# --------------------------------------------------------------------------------------------
# A Go host's P-521 certificate -> tether plugin: P-521 answer, relay


@pytest.fixture
def go_like_plugin(peers: Peers) -> Iterator[tuple[subprocess.Popen[str], Certificate]]:
    """The tether KV plugin started the way a Go host starts it, with a P-521 client cert."""
    host_cert = generate_certificate()  # go-plugin's generateCert() profile
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGIN_", "BASIC_"))}
    env.update(
        hs.host_env(
            kv_shared().HANDSHAKE,
            [1],
            min_port=hs.DEFAULT_MIN_PORT,
            max_port=hs.DEFAULT_MAX_PORT,
            unix_socket_dir=None,
            client_cert_pem=host_cert.cert_pem_str,
        ),
        TMPDIR=str(peers.tmpdir),
    )
    proc = subprocess.Popen(
        [sys.executable, str(KV_PLUGIN_PY)],
        cwd=peers.cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield proc, host_cert
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_go_host_certificate_gets_p521_and_the_relay(
    go_like_plugin: tuple[subprocess.Popen[str], Certificate],
) -> None:
    proc, host_cert = go_like_plugin
    assert proc.stdout is not None
    line = hs.HandshakeLine.parse(proc.stdout.readline())
    plugin_der = decode_server_cert(line.server_cert)
    assert curve(plugin_der) == "secp521r1"
    # Behind the announced socket, grpcio's plaintext one, which only the relay reaches.
    paths = unix_socket_paths(proc.pid)
    assert line.address in paths
    assert any(p.endswith("/grpc") for p in paths)

    tls = GRPCTLS.between(host_cert, der_to_pem(plugin_der))
    assert not tls.native
    dialed: Dialed = dial(line.network, line.address, tls, GRPC_OPTIONS)
    relay = dialed.relay
    try:
        assert relay is not None
        assert health_check(dialed.channel) == health_pb2.HealthCheckResponse.SERVING
    finally:
        dialed.channel.close()
        if relay is not None:
            relay.close()
    assert refused_closing(grpc.insecure_channel("unix:" + line.address))

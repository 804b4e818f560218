"""AutoMTLS on the gRPC path (tether._grpc_tls): grpcio's own TLS between certificates it can
use, the relay as soon as a P-521 (go-plugin) certificate takes part.

Real grpcio servers and channels on real sockets in this process, with real certificates; the
end-to-end counterparts with plugin processes and Go peers are in tests/interop/test_automtls.py.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import SignatureAlgorithmOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from _grpc_health import health_check as check
from _grpc_health import refused
from tether._grpc_broker import GRPC_OPTIONS, GRPCBroker
from tether._grpc_tls import GRPCTLS, Dialed, dial, serve_tcp, serve_unix
from tether._mtls import Certificate, generate_certificate, grpcio_compatible
from tether._transport import make_socket_dir, remove_socket_dir

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def p256_host() -> Certificate:
    return generate_certificate("P-256")


@pytest.fixture(scope="module")
def p256_plugin() -> Certificate:
    return generate_certificate("P-256")


@pytest.fixture(scope="module")
def p521_go() -> Certificate:
    """What a Go peer (go-plugin's generateCert) presents."""
    return generate_certificate()


@pytest.fixture
def socket_dir() -> Iterator[str]:
    directory = make_socket_dir()
    yield directory
    remove_socket_dir(directory)


def health_server() -> grpc.Server:
    server = grpc.server(ThreadPoolExecutor(max_workers=4), options=GRPC_OPTIONS)
    servicer = health.HealthServicer()
    servicer.set("plugin", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return server


@pytest.fixture
def served(socket_dir: str) -> Iterator[Callable[[GRPCTLS | None], str]]:
    """Serve a health server on a Unix socket with the given TLS; yields its address."""
    cleanups: list[Callable[[], object]] = []

    def serve(tls: GRPCTLS | None) -> str:
        server = health_server()
        address, relay, backend_dir = serve_unix(server, socket_dir, tls)
        server.start()
        cleanups.append(lambda: server.stop(0))
        if relay is not None:
            cleanups.append(relay.close)
        cleanups.append(lambda: remove_socket_dir(backend_dir))
        return address

    yield serve
    for cleanup in reversed(cleanups):
        cleanup()


def close(dialed: Dialed) -> None:
    dialed.channel.close()
    if dialed.relay is not None:
        dialed.relay.close()


# --------------------------------------------------------------------------------------------
# Which certificates grpcio can use


def test_p256_profile_is_go_plugins_on_another_curve(p256_host: Certificate) -> None:
    cert = x509.load_der_x509_certificate(p256_host.cert_der)
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert isinstance(key.curve, ec.SECP256R1)
    # The hash Go's x509.CreateCertificate picks for a P-256 key.
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    go_profile = x509.load_der_x509_certificate(generate_certificate().cert_der)
    assert cert.subject == go_profile.subject
    assert [e.oid for e in cert.extensions] == [e.oid for e in go_profile.extensions]
    assert [e.critical for e in cert.extensions] == [e.critical for e in go_profile.extensions]


def test_grpcio_compatible_tells_p256_from_p521(
    p256_host: Certificate, p521_go: Certificate
) -> None:
    assert grpcio_compatible(p256_host.cert_der)
    assert grpcio_compatible(p256_host.cert_pem)
    assert grpcio_compatible(p256_host.cert_pem_str)
    assert not grpcio_compatible(p521_go.cert_der)
    assert not grpcio_compatible(p521_go.cert_pem_str)
    # One P-521 certificate in a PEM is enough: grpcio might have to verify it.
    assert not grpcio_compatible(p256_host.cert_pem + p521_go.cert_pem)
    assert not grpcio_compatible("no certificate here")
    assert not grpcio_compatible(b"\x30\x03\x02\x01\x00")


def test_native_only_when_both_certificates_suit_grpcio(
    p256_host: Certificate, p256_plugin: Certificate, p521_go: Certificate
) -> None:
    assert GRPCTLS.between(p256_host, p256_plugin.cert_pem).native
    assert not GRPCTLS.between(p256_host, p521_go.cert_pem).native  # tether host, Go plugin
    assert not GRPCTLS.between(p521_go, p256_host.cert_pem).native  # our P-521 cert


def test_between_keeps_only_the_certificate_blocks(
    p256_host: Certificate, p256_plugin: Certificate
) -> None:
    noisy = "junk before\n" + p256_plugin.cert_pem_str + "junk after\n"
    tls = GRPCTLS.between(p256_host, noisy)
    assert tls.native
    assert tls.peer_pem == p256_plugin.cert_pem


# --------------------------------------------------------------------------------------------
# grpcio's own TLS: no relay, and really TLS


def test_native_tls_serves_and_dials_without_relay(
    served: Callable[[GRPCTLS | None], str],
    p256_host: Certificate,
    p256_plugin: Certificate,
) -> None:
    address = served(GRPCTLS.between(p256_plugin, p256_host.cert_pem))
    dialed = dial("unix", address, GRPCTLS.between(p256_host, p256_plugin.cert_pem), GRPC_OPTIONS)
    try:
        assert dialed.relay is None
        assert dialed.credentials is not None
        assert dialed.target == "unix:" + address  # grpcio dials the plugin itself
        assert check(dialed.channel) == health_pb2.HealthCheckResponse.SERVING
    finally:
        close(dialed)


def test_native_tls_refuses_plaintext_and_strangers(
    served: Callable[[GRPCTLS | None], str],
    p256_host: Certificate,
    p256_plugin: Certificate,
) -> None:
    address = served(GRPCTLS.between(p256_plugin, p256_host.cert_pem))
    plain = grpc.insecure_channel("unix:" + address)
    stranger = dial(
        "unix", address, GRPCTLS.between(generate_certificate("P-256"), p256_plugin.cert_pem), []
    )
    # A host that pins another plugin certificate must not accept this server.
    wrong_pin = dial(
        "unix", address, GRPCTLS.between(p256_host, generate_certificate("P-256").cert_pem), []
    )
    try:
        assert refused(plain)
        assert refused(stranger.channel)
        assert refused(wrong_pin.channel)
    finally:
        plain.close()
        close(stranger)
        close(wrong_pin)


def test_native_socket_speaks_tls_to_pythons_ssl(
    served: Callable[[GRPCTLS | None], str],
    p256_host: Certificate,
    p256_plugin: Certificate,
) -> None:
    """What a Go host sees: TLS ≥ 1.2 with ALPN h2 and the plugin's certificate."""
    address = served(GRPCTLS.between(p256_plugin, p256_host.cert_pem))
    context = GRPCTLS.between(p256_host, p256_plugin.cert_pem).client_context()
    with socket.socket(socket.AF_UNIX) as raw:
        raw.settimeout(TIMEOUT)
        raw.connect(address)
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert tls.selected_alpn_protocol() == "h2"
            assert tls.getpeercert(binary_form=True) == p256_plugin.cert_der


def test_native_tls_over_tcp_in_the_port_range(
    p256_host: Certificate, p256_plugin: Certificate
) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    server = health_server()
    try:
        address, relay, backend_dir = serve_tcp(
            server, port, port + 20, GRPCTLS.between(p256_plugin, p256_host.cert_pem)
        )
        assert relay is None
        assert backend_dir is None
        host, bound = address.rsplit(":", 1)
        assert host == "127.0.0.1"
        assert port < int(bound) <= port + 20  # skipped the busy port
        server.start()
        dialed = dial("tcp", address, GRPCTLS.between(p256_host, p256_plugin.cert_pem), [])
        plain = grpc.insecure_channel(address)
        try:
            assert dialed.relay is None
            assert check(dialed.channel) == health_pb2.HealthCheckResponse.SERVING
            assert refused(plain)
        finally:
            close(dialed)
            plain.close()
    finally:
        server.stop(0)
        busy.close()


# --------------------------------------------------------------------------------------------
# P-521 on either side: the relay, as before


@pytest.mark.parametrize("go_side", ["host", "plugin"])
def test_p521_peer_goes_through_the_relay(
    served: Callable[[GRPCTLS | None], str],
    p256_host: Certificate,
    p256_plugin: Certificate,
    p521_go: Certificate,
    go_side: str,
) -> None:
    # The relay on our side is Python's ssl, which is what a Go peer's TLS talks to.
    host, plugin = (p521_go, p256_plugin) if go_side == "host" else (p256_host, p521_go)
    server_tls = GRPCTLS.between(plugin, host.cert_pem)
    client_tls = GRPCTLS.between(host, plugin.cert_pem)
    assert not server_tls.native
    assert not client_tls.native
    address = served(server_tls)
    dialed = dial("unix", address, client_tls, GRPC_OPTIONS)
    try:
        assert dialed.relay is not None
        assert dialed.target == "unix:" + dialed.relay.path
        assert check(dialed.channel) == health_pb2.HealthCheckResponse.SERVING
    finally:
        close(dialed)


def test_grpcio_cannot_verify_a_p521_plugin(
    served: Callable[[GRPCTLS | None], str], p256_host: Certificate, p521_go: Certificate
) -> None:
    """Why a Go plugin's connection keeps the relay: grpcio's TLS refuses its certificate."""
    address = served(GRPCTLS.between(p521_go, p256_host.cert_pem))
    tls = GRPCTLS.between(p256_host, p521_go.cert_pem)
    native = grpc.secure_channel(
        "unix:" + address, tls.channel_credentials(), options=tls.channel_options([])
    )
    try:
        assert refused(native)
    finally:
        native.close()


# --------------------------------------------------------------------------------------------
# The broker follows the same rule


@pytest.mark.parametrize("peer", ["tether", "go"])
def test_broker_uses_native_tls_between_tether_certificates(
    p256_host: Certificate, p256_plugin: Certificate, p521_go: Certificate, peer: str
) -> None:
    plugin = p256_plugin if peer == "tether" else p521_go
    serving = GRPCBroker(tls=GRPCTLS.between(p256_host, plugin.cert_pem))
    dialing = GRPCBroker(tls=GRPCTLS.between(plugin, p256_host.cert_pem))
    try:
        dialing.start_consuming(serving.outgoing())
        service_id = serving.next_id()
        serving.accept_and_serve(service_id, _register_health)
        channel = dialing.dial(service_id)
        assert check(channel) == health_pb2.HealthCheckResponse.SERVING
        uses_relay = bool(serving._relays) or bool(dialing._relays)
        assert uses_relay == (peer == "go")
    finally:
        dialing.close()
        serving.close()


def _register_health(server: grpc.Server) -> None:
    servicer = health.HealthServicer()
    servicer.set("plugin", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)


def test_relay_directories_are_private_and_removed(
    socket_dir: str, p256_host: Certificate, p521_go: Certificate
) -> None:
    server = health_server()
    address, relay, backend_dir = serve_unix(
        server, socket_dir, GRPCTLS.between(p521_go, p256_host.cert_pem)
    )
    assert relay is not None
    assert backend_dir is not None
    try:
        assert os.stat(backend_dir).st_mode & 0o777 == 0o700
        assert Path(address).parent == Path(socket_dir)
    finally:
        server.stop(0)
        relay.close()
        remove_socket_dir(backend_dir)
    assert not os.path.exists(backend_dir)


def test_p521_client_context_still_verifies_the_plugin(
    p256_host: Certificate, p521_go: Certificate
) -> None:
    context = GRPCTLS.between(p256_host, p521_go.cert_pem).client_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname

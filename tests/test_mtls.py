"""Tests for tether._mtls: certificate profile, encodings, and real mutual TLS over loopback."""

from __future__ import annotations

import base64
import contextlib
import datetime
import os
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID, SignatureAlgorithmOID

from tether._errors import HandshakeError
from tether._mtls import (
    Certificate,
    client_context,
    decode_server_cert,
    der_to_pem,
    encode_server_cert,
    generate_certificate,
    pem_to_der,
    server_context,
)

# Every socket operation gets this timeout, so a broken handshake fails instead of hanging.
IO_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def host_cert() -> Certificate:
    return generate_certificate()


@pytest.fixture(scope="module")
def plugin_cert() -> Certificate:
    return generate_certificate()


@pytest.fixture(scope="module")
def stranger_cert() -> Certificate:
    return generate_certificate()


@pytest.fixture(scope="module")
def parsed(host_cert: Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(host_cert.cert_der)


# --------------------------------------------------------------------------------------------
# Certificate profile: go-plugin's generateCert()


def test_key_is_ecdsa_p521(host_cert: Certificate, parsed: x509.Certificate) -> None:
    public = parsed.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP521R1)
    key = serialization.load_pem_private_key(host_cert.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == public.public_numbers()


def test_key_pem_is_unencrypted_sec1(host_cert: Certificate) -> None:
    text = host_cert.key_pem.decode("ascii")
    assert text.startswith("-----BEGIN EC PRIVATE KEY-----\n")
    assert text.rstrip("\n").endswith("-----END EC PRIVATE KEY-----")
    assert "ENCRYPTED" not in text
    assert "Proc-Type" not in text


def test_names_are_localhost_hashicorp(parsed: x509.Certificate) -> None:
    assert parsed.subject == parsed.issuer
    # Same attribute order as Go's pkix.Name encoding (O before CN).
    assert [(a.oid, a.value) for a in parsed.subject] == [
        (NameOID.ORGANIZATION_NAME, "HashiCorp"),
        (NameOID.COMMON_NAME, "localhost"),
    ]
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not san.critical
    assert list(san.value) == [x509.DNSName("localhost")]


def test_is_a_ca_with_go_key_usages(parsed: x509.Certificate) -> None:
    basic = parsed.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca is True
    assert basic.value.path_length is None

    usage = parsed.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.key_encipherment
    assert usage.value.key_agreement
    assert usage.value.key_cert_sign
    assert not usage.value.content_commitment
    assert not usage.value.data_encipherment
    assert not usage.value.crl_sign
    assert not usage.value.encipher_only
    assert not usage.value.decipher_only

    ext_usage = parsed.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not ext_usage.critical
    assert list(ext_usage.value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH,
        ExtendedKeyUsageOID.SERVER_AUTH,
    ]


def test_extension_set_matches_go(parsed: x509.Certificate) -> None:
    assert {ext.oid for ext in parsed.extensions} == {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    }


def test_validity_window() -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    cert = x509.load_der_x509_certificate(generate_certificate().cert_der)
    after = datetime.datetime.now(datetime.UTC)
    skew = datetime.timedelta(seconds=30)
    # Certificate times have whole seconds, so allow one second of truncation.
    assert before - skew - datetime.timedelta(seconds=1) <= cert.not_valid_before_utc
    assert cert.not_valid_before_utc <= after - skew
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    expected = datetime.timedelta(hours=262980) + skew
    assert abs(lifetime - expected) <= datetime.timedelta(seconds=1)


def test_self_signed_with_ecdsa_sha512(parsed: x509.Certificate) -> None:
    assert parsed.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA512
    assert isinstance(parsed.signature_hash_algorithm, hashes.SHA512)
    public = parsed.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(
        parsed.signature, parsed.tbs_certificate_bytes, ec.ECDSA(hashes.SHA512())
    )  # raises if not self-signed


def test_serial_is_random_below_2_pow_128() -> None:
    serials = {
        x509.load_der_x509_certificate(generate_certificate().cert_der).serial_number
        for _ in range(5)
    }
    assert len(serials) == 5
    assert all(0 < serial < 2**128 for serial in serials)


def test_pem_and_der_agree(host_cert: Certificate) -> None:
    assert host_cert.cert_pem_str.startswith("-----BEGIN CERTIFICATE-----\n")
    assert (
        x509.load_pem_x509_certificate(host_cert.cert_pem).public_bytes(serialization.Encoding.DER)
        == host_cert.cert_der
    )
    assert der_to_pem(host_cert.cert_der) == host_cert.cert_pem_str
    assert pem_to_der(host_cert.cert_pem) == host_cert.cert_der


def test_each_call_gives_a_new_key(host_cert: Certificate, plugin_cert: Certificate) -> None:
    assert host_cert.key_pem != plugin_cert.key_pem
    assert host_cert.cert_der != plugin_cert.cert_der


def test_repr_hides_the_key(host_cert: Certificate) -> None:
    text = repr(host_cert)
    assert "PRIVATE" not in text
    assert "redacted" in text


# --------------------------------------------------------------------------------------------
# Handshake field F6 and PLUGIN_CLIENT_CERT encodings


def test_encode_is_raw_std_base64(host_cert: Certificate) -> None:
    field = encode_server_cert(host_cert.cert_der)
    assert "=" not in field
    assert "\n" not in field
    assert "|" not in field
    assert len(field) > 50  # a Go host ignores F6 when it is 50 characters or shorter
    assert field == base64.b64encode(host_cert.cert_der).decode().rstrip("=")
    assert decode_server_cert(field) == host_cert.cert_der


@pytest.mark.parametrize("length", [0, 1, 2, 3, 4, 200])
def test_round_trip_every_padding_length(length: int) -> None:
    der = (
        b"\x30"
        + (bytes([length]) if length < 128 else b"\x81" + bytes([length]))
        + (b"\x05" * length)
    )
    field = encode_server_cert(der)
    assert "=" not in field
    assert decode_server_cert(field) == der
    padded = base64.b64encode(der).decode()
    assert decode_server_cert(padded) == der


def test_decode_tolerates_padding_and_whitespace(host_cert: Certificate) -> None:
    padded = base64.b64encode(host_cert.cert_der).decode()
    assert decode_server_cert(padded) == host_cert.cert_der
    assert decode_server_cert(" " + padded + "\r\n") == host_cert.cert_der


@pytest.mark.parametrize(
    "field",
    [
        "",
        "not base64 at all!",
        "MIIC*abc",
        "A",  # impossible length
        base64.b64encode(b"hello, this is not DER").decode(),
        base64.b64encode(b"\x30\x05ab").decode(),  # truncated SEQUENCE
        base64.b64encode(b"\x30\x80\x00\x00").decode(),  # BER indefinite length
        "MIIC-_abc",  # URL-safe alphabet is not Go's StdEncoding
    ],
)
def test_decode_rejects_garbage(field: str) -> None:
    with pytest.raises(HandshakeError, match="not valid base64 DER"):
        decode_server_cert(field)


def test_pem_to_der_accepts_what_go_accepts(host_cert: Certificate) -> None:
    crlf = host_cert.cert_pem_str.replace("\n", "\r\n")
    assert pem_to_der(crlf) == host_cert.cert_der
    noisy = "some preamble\n" + host_cert.cert_pem_str + "trailing text\n"
    assert pem_to_der(noisy) == host_cert.cert_der
    assert pem_to_der(noisy.encode()) == host_cert.cert_der


@pytest.mark.parametrize(
    "pem",
    [
        "",
        "hello",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
        "-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n",
    ],
)
def test_pem_to_der_rejects_garbage(pem: str) -> None:
    with pytest.raises(HandshakeError, match="PLUGIN_CLIENT_CERT"):
        pem_to_der(pem)


# --------------------------------------------------------------------------------------------
# Real TLS over loopback


@dataclass
class ServerResult:
    peer: dict[str, object] | None = None
    peer_der: bytes | None = None
    alpn: str | None = None
    received: bytes = b""
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def _recv_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _serve_once(
    listener: socket.socket, wrap: Callable[[socket.socket], socket.socket], result: ServerResult
) -> None:
    try:
        conn, _ = listener.accept()
        conn.settimeout(IO_TIMEOUT)
        with conn, wrap(conn) as tls:
            if isinstance(tls, ssl.SSLSocket):
                result.peer = tls.getpeercert()  # type: ignore[assignment]
                result.peer_der = tls.getpeercert(binary_form=True)
                result.alpn = tls.selected_alpn_protocol()
            result.received = _recv_exactly(tls, 4)
            tls.sendall(b"pong:" + result.received)
    except BaseException as exc:
        result.error = exc
    finally:
        result.done.set()


@contextlib.contextmanager
def running_server(
    wrap: Callable[[socket.socket], socket.socket],
) -> Iterator[tuple[tuple[str, int], ServerResult]]:
    """Accept one connection on 127.0.0.1 in a thread, wrap it, and echo 4 bytes back."""
    result = ServerResult()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(IO_TIMEOUT)
        thread = threading.Thread(target=_serve_once, args=(listener, wrap, result), daemon=True)
        thread.start()
        try:
            yield listener.getsockname()[:2], result
        finally:
            thread.join(IO_TIMEOUT * 2)
            assert not thread.is_alive(), "server thread hung"


def _tls_server(context: ssl.SSLContext) -> Callable[[socket.socket], socket.socket]:
    return lambda conn: context.wrap_socket(conn, server_side=True)


def _ping(
    address: tuple[str, int], context: ssl.SSLContext, hostname: str = "localhost"
) -> tuple[bytes, ssl.SSLSocket]:
    """Connect, handshake, send b'ping', and return the reply and the (closed) socket."""
    with (
        socket.create_connection(address, timeout=IO_TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        tls.sendall(b"ping")
        reply = _recv_exactly(tls, 9)
        return reply, tls


def _handshake_details(
    address: tuple[str, int], context: ssl.SSLContext
) -> tuple[bytes, dict[str, object], bytes | None, str | None, str | None]:
    with (
        socket.create_connection(address, timeout=IO_TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        peer: dict[str, object] = tls.getpeercert()  # type: ignore[assignment]
        peer_der = tls.getpeercert(binary_form=True)
        alpn = tls.selected_alpn_protocol()
        version = tls.version()
        tls.sendall(b"ping")
        return _recv_exactly(tls, 9), peer, peer_der, alpn, version


def _subject_cn(peer: dict[str, object]) -> str:
    subject = peer["subject"]
    assert isinstance(subject, tuple)
    names: dict[str, str] = dict(rdn[0] for rdn in subject)
    return names["commonName"]


def test_mutual_tls_exchange(host_cert: Certificate, plugin_cert: Certificate) -> None:
    # The plugin only ever sees the host's PEM (env var); the host only the plugin's F6 field.
    plugin_ctx = server_context(plugin_cert, host_cert.cert_pem_str)
    host_ctx = client_context(
        host_cert, decode_server_cert(encode_server_cert(plugin_cert.cert_der))
    )
    with running_server(_tls_server(plugin_ctx)) as (address, result):
        reply, peer, peer_der, alpn, version = _handshake_details(address, host_ctx)
    assert result.error is None, result.error
    assert reply == b"pong:ping"
    assert result.received == b"ping"
    # Each side saw exactly the other's pinned certificate.
    assert peer_der == plugin_cert.cert_der
    assert result.peer_der == host_cert.cert_der
    assert _subject_cn(peer) == "localhost"
    assert result.peer is not None
    assert _subject_cn(result.peer) == "localhost"
    assert ("DNS", "localhost") in peer["subjectAltName"]  # type: ignore[operator]
    assert version in {"TLSv1.2", "TLSv1.3"}
    assert alpn is None
    assert result.alpn is None


def test_alpn_is_negotiated_when_asked(host_cert: Certificate, plugin_cert: Certificate) -> None:
    plugin_ctx = server_context(plugin_cert, host_cert.cert_pem, alpn=["h2"])
    host_ctx = client_context(host_cert, plugin_cert.cert_der, alpn=("h2",))
    with running_server(_tls_server(plugin_ctx)) as (address, result):
        reply, _, _, alpn, _ = _handshake_details(address, host_ctx)
    assert result.error is None, result.error
    assert reply == b"pong:ping"
    assert alpn == "h2"
    assert result.alpn == "h2"


def test_client_accepts_pem_peer(host_cert: Certificate, plugin_cert: Certificate) -> None:
    plugin_ctx = server_context(plugin_cert, host_cert.cert_pem)
    host_ctx = client_context(host_cert, plugin_cert.cert_pem_str)
    with running_server(_tls_server(plugin_ctx)) as (address, result):
        reply, _ = _ping(address, host_ctx)
    assert result.error is None, result.error
    assert reply == b"pong:ping"


def test_every_certificate_in_client_pem_is_trusted(
    host_cert: Certificate, plugin_cert: Certificate, stranger_cert: Certificate
) -> None:
    bundle = stranger_cert.cert_pem + host_cert.cert_pem
    plugin_ctx = server_context(plugin_cert, bundle)
    host_ctx = client_context(host_cert, plugin_cert.cert_der)
    with running_server(_tls_server(plugin_ctx)) as (address, result):
        reply, _ = _ping(address, host_ctx)
    assert result.error is None, result.error
    assert reply == b"pong:ping"


def test_contexts_require_tls12_and_verification(
    host_cert: Certificate, plugin_cert: Certificate
) -> None:
    plugin_ctx = server_context(plugin_cert, host_cert.cert_pem)
    host_ctx = client_context(host_cert, plugin_cert.cert_der)
    for ctx in (plugin_ctx, host_ctx):
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert host_ctx.check_hostname
    # Only the pinned peer is trusted, never the system store.
    host_serial = x509.load_der_x509_certificate(host_cert.cert_der).serial_number
    plugin_serial = x509.load_der_x509_certificate(plugin_cert.cert_der).serial_number
    assert [int(str(c["serialNumber"]), 16) for c in plugin_ctx.get_ca_certs()] == [host_serial]
    assert [int(str(c["serialNumber"]), 16) for c in host_ctx.get_ca_certs()] == [plugin_serial]


def _exchange_or_raise(address: tuple[str, int], context: ssl.SSLContext, hostname: str) -> bytes:
    reply, _ = _ping(address, context, hostname)
    # TLS 1.3 clients finish the handshake before the server has checked their certificate;
    # the rejection then shows up as an alert on read, or as a closed connection.
    if not reply:
        raise ConnectionError("connection closed by server")
    return reply


def _client_failure(address: tuple[str, int], context: ssl.SSLContext, hostname: str) -> None:
    """Assert the client cannot complete an exchange; the error may surface at any step."""
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _exchange_or_raise(address, context, hostname)


def test_server_rejects_a_different_client_certificate(
    host_cert: Certificate, plugin_cert: Certificate, stranger_cert: Certificate
) -> None:
    plugin_ctx = server_context(plugin_cert, host_cert.cert_pem)
    # The stranger trusts the plugin, but the plugin only trusts the real host.
    stranger_ctx = client_context(stranger_cert, plugin_cert.cert_der)
    with running_server(_tls_server(plugin_ctx)) as (address, result):
        _client_failure(address, stranger_ctx, "localhost")
        assert result.done.wait(IO_TIMEOUT)
    assert isinstance(result.error, ssl.SSLError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(result.error)
    assert result.received == b""


def test_server_rejects_a_client_without_certificate(
    host_cert: Certificate, plugin_cert: Certificate
) -> None:
    plugin_ctx = server_context(plugin_cert, host_cert.cert_pem)
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.load_verify_locations(cadata=plugin_cert.cert_der)
    with running_server(_tls_server(plugin_ctx)) as (address, result):
        _client_failure(address, anonymous, "localhost")
        assert result.done.wait(IO_TIMEOUT)
    assert isinstance(result.error, ssl.SSLError)
    assert "CERTIFICATE" in str(result.error)
    assert result.received == b""


def test_client_rejects_a_server_it_does_not_pin(
    host_cert: Certificate, plugin_cert: Certificate, stranger_cert: Certificate
) -> None:
    plugin_ctx = server_context(plugin_cert, host_cert.cert_pem)
    host_ctx = client_context(host_cert, stranger_cert.cert_der)  # wrong F6
    with running_server(_tls_server(plugin_ctx)) as (address, result):
        with pytest.raises(ssl.SSLCertVerificationError):
            _ping(address, host_ctx)
        assert result.done.wait(IO_TIMEOUT)
    assert isinstance(result.error, ssl.SSLError)
    assert result.received == b""


def test_client_checks_the_hostname(host_cert: Certificate, plugin_cert: Certificate) -> None:
    plugin_ctx = server_context(plugin_cert, host_cert.cert_pem)
    host_ctx = client_context(host_cert, plugin_cert.cert_der)
    with running_server(_tls_server(plugin_ctx)) as (address, result):
        with pytest.raises(ssl.SSLCertVerificationError, match=r"example\.com"):
            _ping(address, host_ctx, hostname="example.com")
        assert result.done.wait(IO_TIMEOUT)
    assert isinstance(result.error, ssl.SSLError)


def test_plaintext_client_against_tls_server_fails_cleanly(
    host_cert: Certificate, plugin_cert: Certificate
) -> None:
    plugin_ctx = server_context(plugin_cert, host_cert.cert_pem)
    with running_server(_tls_server(plugin_ctx)) as (address, result):
        with socket.create_connection(address, timeout=IO_TIMEOUT) as raw:
            raw.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            assert result.done.wait(IO_TIMEOUT)
            try:
                reply = raw.recv(100)
            except ConnectionError:
                reply = b""
        # OpenSSL may answer with an alert record, but never with application data.
        assert b"pong" not in reply
    assert isinstance(result.error, ssl.SSLError)
    assert result.received == b""


def test_tls_client_against_plaintext_server_fails_cleanly(
    host_cert: Certificate, plugin_cert: Certificate
) -> None:
    host_ctx = client_context(host_cert, plugin_cert.cert_der)
    # A plugin that ignored PLUGIN_CLIENT_CERT and serves plaintext.
    with (
        running_server(lambda conn: conn) as (address, result),
        pytest.raises((ssl.SSLError, ConnectionError)),
    ):
        _ping(address, host_ctx)
    assert result.error is None or isinstance(result.error, OSError)


# --------------------------------------------------------------------------------------------
# Bad inputs to the context builders


@pytest.mark.parametrize("pem", ["", "garbage", b"\x00\x01"])
def test_server_context_rejects_bad_client_cert(host_cert: Certificate, pem: str | bytes) -> None:
    with pytest.raises(HandshakeError, match="PLUGIN_CLIENT_CERT"):
        server_context(host_cert, pem)


def test_server_context_rejects_der_that_is_not_a_certificate(host_cert: Certificate) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"  # empty SEQUENCE
    with pytest.raises(HandshakeError, match="PLUGIN_CLIENT_CERT"):
        server_context(host_cert, pem)


@pytest.mark.parametrize("peer", [b"", b"garbage", "garbage", b"\x30\x00"])
def test_client_context_rejects_bad_server_cert(host_cert: Certificate, peer: bytes | str) -> None:
    with pytest.raises(HandshakeError, match="server certificate"):
        client_context(host_cert, peer)


# --------------------------------------------------------------------------------------------
# The private key never stays on disk


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


def test_key_files_are_private_and_removed(
    private_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    host_cert: Certificate,
    plugin_cert: Certificate,
) -> None:
    seen: list[tuple[str, int, int]] = []
    original = ssl.SSLContext.load_cert_chain

    def observing_load_cert_chain(
        self: ssl.SSLContext, certfile: str, *args: object, **kwargs: object
    ) -> None:
        directory = os.path.dirname(certfile)
        seen.append(
            (
                directory,
                stat.S_IMODE(os.stat(directory).st_mode),
                stat.S_IMODE(os.stat(certfile).st_mode),
            )
        )
        original(self, certfile, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", observing_load_cert_chain)
    server_context(plugin_cert, host_cert.cert_pem)
    client_context(host_cert, plugin_cert.cert_der)
    assert len(seen) == 2
    for directory, dir_mode, file_mode in seen:
        assert Path(directory).parent == private_tmp
        assert dir_mode == 0o700
        assert file_mode == 0o600
    assert list(private_tmp.iterdir()) == []


def test_key_files_are_removed_when_loading_fails(
    private_tmp: Path, host_cert: Certificate, plugin_cert: Certificate
) -> None:
    mismatched = Certificate(
        cert_pem=host_cert.cert_pem, key_pem=plugin_cert.key_pem, cert_der=host_cert.cert_der
    )
    with pytest.raises(HandshakeError, match="own TLS certificate"):
        server_context(mismatched, plugin_cert.cert_pem)
    with pytest.raises(HandshakeError, match="own TLS certificate"):
        client_context(mismatched, plugin_cert.cert_der)
    assert list(private_tmp.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Start-up cost


def test_importing_the_module_does_not_import_cryptography() -> None:
    code = (
        "import sys, tether._mtls\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'cryptography')\n"
        "assert not loaded, loaded\n"
        "tether._mtls.generate_certificate()\n"
        "assert 'cryptography' in sys.modules\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert completed.returncode == 0, completed.stderr

"""go-plugin's AutoMTLS on top of Python's `ssl` module.

When a go-plugin host enables AutoMTLS it generates a throw-away self-signed certificate, hands
its PEM to the plugin in `PLUGIN_CLIENT_CERT`, and expects the plugin to answer with its own
throw-away certificate in field F6 of the handshake line (DER, base64 without padding). Each side
then pins the other's certificate as its *only* trusted CA; the host also checks that the plugin's
certificate is valid for `localhost`.

This module produces certificates with exactly the profile of go-plugin's `generateCert()`
(`mtls.go`), converts between the encodings the handshake uses, and builds the `ssl.SSLContext`
for either side. `cryptography` is imported only inside `generate_certificate()` and
`grpcio_compatible()`, so a plugin that never does AutoMTLS does not pay for importing it.

go-plugin's curve, P-521, is the one grpcio's TLS (BoringSSL) cannot use; the same profile on
P-256 is what tether generates wherever its peer may be grpcio (see `_grpc_tls`). Go accepts
both.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from tether._errors import HandshakeError

__all__ = [
    "Certificate",
    "client_context",
    "decode_server_cert",
    "der_to_pem",
    "encode_server_cert",
    "generate_certificate",
    "grpcio_compatible",
    "pem_certs",
    "pem_to_der",
    "server_context",
]

_HOST = "localhost"
_ORGANIZATION = "HashiCorp"
# go-plugin: NotBefore = now - 30 s (tolerates small clock skew between host and plugin),
# NotAfter = now + 262980 h (about 30 years: the certificate lives only as long as the process).
_NOT_BEFORE_SKEW_SECONDS = 30
_VALIDITY_HOURS = 262980
_SERIAL_LIMIT = 1 << 128

_NO_CLIENT_CERT = (
    "PLUGIN_CLIENT_CERT does not contain a valid PEM certificate "
    "(expected a '-----BEGIN CERTIFICATE-----' block)"
)
_PEM_CERT_RE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n(?P<body>.*?)-----END CERTIFICATE-----",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class Certificate:
    """A certificate and its private key, in the encodings the handshake and `ssl` need.

    `cert_pem` is what a host puts in `PLUGIN_CLIENT_CERT`, `cert_der` what a plugin encodes
    into field F6, and `key_pem` is the SEC1 (`EC PRIVATE KEY`) key, which must never leave
    the process.
    """

    cert_pem: bytes
    key_pem: bytes
    cert_der: bytes

    @property
    def cert_pem_str(self) -> str:
        """`cert_pem` as text, ready for the `PLUGIN_CLIENT_CERT` environment variable."""
        return self.cert_pem.decode("ascii")

    def __repr__(self) -> str:
        # Keep the private key out of logs and tracebacks.
        return f"Certificate(cert_der=<{len(self.cert_der)} bytes>, key_pem=<redacted>)"


def generate_certificate(curve: Literal["P-521", "P-256"] = "P-521") -> Certificate:
    """Generate a certificate with the profile of go-plugin's `generateCert()`.

    ECDSA P-521 by default, self-signed CA, `CN=localhost, O=HashiCorp`, SAN `DNS:localhost`,
    usable for both client and server authentication, signed with ECDSA-SHA512. With
    `curve="P-256"` the key is P-256 and the signature ECDSA-SHA256, the hash Go's
    `x509.CreateCertificate` picks for a P-256 key: grpcio's TLS can present and verify that one.

    Cost (measured on a 2-core x86-64 container, Python 3.11.7, cryptography 50.0.2, OpenSSL
    3.0.19): about 1.5 ms per call for P-521 key generation, signing and serialisation (mean of
    50), but about 100-180 ms for the first call, which is almost all importing `cryptography`.
    """
    # Imported here, not at module level: importing cryptography costs far more than generating
    # the key, and plugins that are not started with AutoMTLS never need it.
    import datetime
    import secrets

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if curve == "P-256":
        key = ec.generate_private_key(ec.SECP256R1())
        digest: hashes.SHA256 | hashes.SHA512 = hashes.SHA256()
    else:
        key = ec.generate_private_key(ec.SECP521R1())
        digest = hashes.SHA512()
    # Go draws the serial from [0, 2^128); cryptography refuses 0, so draw from [1, 2^128).
    serial = secrets.randbelow(_SERIAL_LIMIT - 1) + 1
    now = datetime.datetime.now(datetime.UTC)
    # Go's pkix.Name always encodes O before CN; keep that order so the DER names match.
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, _HOST),
        ]
    )
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(seconds=_NOT_BEFORE_SKEW_SECONDS))
        .not_valid_after(now + datetime.timedelta(hours=_VALIDITY_HOURS))
        # Criticality follows Go's x509.CreateCertificate: basic constraints and key usage are
        # critical, the rest are not (SAN is critical only when the subject is empty).
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(_HOST)]), critical=False)
        # Go (>= 1.15) adds a SHA-1 subject key identifier to every CA certificate it creates,
        # and no authority key identifier to self-signed ones.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    cert = builder.sign(key, digest)
    return Certificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,  # SEC1: "EC PRIVATE KEY"
            serialization.NoEncryption(),
        ),
        cert_der=cert.public_bytes(serialization.Encoding.DER),
    )


def grpcio_compatible(cert: bytes | str) -> bool:
    """Whether grpcio's TLS can present or verify `cert` (DER bytes, or PEM text or bytes).

    BoringSSL, inside grpcio, offers no `ecdsa_secp521r1_sha512` signature scheme, so a P-521
    peer fails the handshake whichever side it is on. Tested with grpcio 1.85.3: P-256, P-384
    and RSA keys work, P-521 does not. Anything else, or anything that does not parse, counts
    as incompatible, which leaves that connection on the relay that always worked. Every
    certificate of a PEM must be compatible, since grpcio would have to verify any of them.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    ders = pem_certs(cert) if isinstance(cert, str) or cert.startswith(b"-----") else [cert]
    if not ders:
        return False
    for der in ders:
        try:
            key = x509.load_der_x509_certificate(der).public_key()
        except ValueError:
            return False
        if isinstance(key, rsa.RSAPublicKey):
            continue
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1 | ec.SECP384R1
        ):
            return False
    return True


def _is_der_sequence(data: bytes) -> bool:
    """Whether `data` is exactly one DER SEQUENCE, as every X.509 certificate is.

    A structural check only, so that garbage is rejected with a clear message here instead of
    as an obscure OpenSSL error later, without importing cryptography.
    """
    if len(data) < 2 or data[0] != 0x30:
        return False
    first = data[1]
    if first < 0x80:
        return len(data) == 2 + first
    count = first & 0x7F
    # 0x80 is BER's indefinite length, which DER forbids; 4 length bytes is already 4 GiB.
    if count == 0 or count > 4 or len(data) < 2 + count:
        return False
    length = int.from_bytes(data[2 : 2 + count], "big")
    return len(data) == 2 + count + length


def encode_server_cert(der: bytes) -> str:
    """Encode a DER certificate for field F6 of the handshake line (Go's `RawStdEncoding`)."""
    return base64.b64encode(der).decode("ascii").rstrip("=")


def decode_server_cert(field: str) -> bytes:
    """Decode field F6 of the handshake line into the plugin's DER certificate.

    Go writes it without padding; padding is accepted too, since non-Go plugins often add it.
    Raises `HandshakeError` if the field is not base64 of a DER structure.
    """
    text = field.strip().rstrip("=")
    try:
        der = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        der = b""
    if not _is_der_sequence(der):
        raise HandshakeError(
            "the server certificate in the plugin's handshake line is not valid base64 DER "
            f"(field starts with {field[:20]!r}, {len(field)} characters)"
        )
    return der


def der_to_pem(der: bytes) -> str:
    """PEM-encode a DER certificate the way Go's `pem.Encode` does (64-column lines)."""
    return ssl.DER_cert_to_PEM_cert(der)


def pem_certs(pem: str | bytes) -> list[bytes]:
    """Every valid `CERTIFICATE` block in `pem`, as DER, skipping anything else.

    This mirrors Go's `CertPool.AppendCertsFromPEM`, which go-plugin uses on
    `PLUGIN_CLIENT_CERT`: text around the blocks and blocks that do not decode are ignored.
    """
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    certs: list[bytes] = []
    for match in _PEM_CERT_RE.finditer(data):
        body = b"".join(match.group("body").split())
        try:
            der = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            continue
        if _is_der_sequence(der):
            certs.append(der)
    return certs


def pem_to_der(pem: str | bytes) -> bytes:
    """The first certificate in `pem`, as DER.

    Raises `HandshakeError` if `pem` holds no valid `CERTIFICATE` block; the message names
    `PLUGIN_CLIENT_CERT`, which is where a plugin gets PEM from.
    """
    certs = pem_certs(pem)
    if not certs:
        raise HandshakeError(_NO_CLIENT_CERT)
    return certs[0]


def _load_own_certificate(context: ssl.SSLContext, own: Certificate) -> None:
    """Load our certificate and key into `context` without leaving the key on disk.

    `load_cert_chain` only reads files, so the key goes into a private directory (mkdtemp
    creates it 0700) for the duration of the call and is removed even if loading fails.
    """
    directory = tempfile.mkdtemp(prefix="tether-mtls-")
    try:
        path = os.path.join(directory, "identity.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            # One file holding both: OpenSSL finds the key and the certificate by PEM type.
            file.write(own.key_pem)
            file.write(own.cert_pem)
        try:
            context.load_cert_chain(path)
        except ssl.SSLError as exc:
            raise HandshakeError(f"could not load our own TLS certificate and key: {exc}") from exc
    finally:
        # Not rmtree(ignore_errors=True): if the key file cannot be removed we want to know.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, "identity.pem"))
        os.rmdir(directory)


def _trust_only(context: ssl.SSLContext, peer_ders: Sequence[bytes], what: str) -> None:
    """Make the peer's self-signed certificate(s) the only CA(s) `context` trusts."""
    try:
        context.load_verify_locations(cadata=b"".join(peer_ders))
    except ssl.SSLError as exc:
        raise HandshakeError(f"{what} is not a usable certificate: {exc}") from exc


def _new_context(protocol: int, alpn: Sequence[str] | None) -> ssl.SSLContext:
    context = ssl.SSLContext(protocol)
    # go-plugin sets MinVersion TLS 1.2 on both sides.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    # Pin semantics: a presented certificate that is itself in the trust store is accepted as
    # is. Without this, OpenSSL 3.0 looks the issuer up by subject name, and since every
    # AutoMTLS certificate is named "O=HashiCorp, CN=localhost", a PEM holding several of them
    # (which Go's cert pool accepts) made it fail with "unknown ca" in our tests.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if alpn is not None:
        context.set_alpn_protocols(list(alpn))
    return context


def server_context(
    own: Certificate, peer_cert_pem: str | bytes, *, alpn: Sequence[str] | None = None
) -> ssl.SSLContext:
    """The TLS context a plugin serves with: go-plugin's `RequireAndVerifyClientCert`.

    `peer_cert_pem` is the host's certificate from `PLUGIN_CLIENT_CERT`; it becomes the only
    trusted CA, so only that host can connect. `alpn` (for gRPC: `["h2"]`) is set if given.
    """
    # Every certificate in the PEM is trusted, as Go's AppendCertsFromPEM would do; go-plugin
    # hosts send exactly one.
    peers = pem_certs(peer_cert_pem)
    if not peers:
        raise HandshakeError(_NO_CLIENT_CERT)
    context = _new_context(ssl.PROTOCOL_TLS_SERVER, alpn)
    _trust_only(context, peers, "PLUGIN_CLIENT_CERT")
    _load_own_certificate(context, own)
    return context


def client_context(
    own: Certificate, peer_cert: bytes | str, *, alpn: Sequence[str] | None = None
) -> ssl.SSLContext:
    """The TLS context a host connects with; connect with `server_hostname="localhost"`.

    `peer_cert` is the plugin's certificate, as DER bytes (from `decode_server_cert`) or PEM
    text. It becomes the only trusted CA and must be valid for `localhost`; our certificate
    is presented for the plugin to check against `PLUGIN_CLIENT_CERT`.
    """
    peers = pem_certs(peer_cert) if isinstance(peer_cert, str) else [peer_cert]
    if not peers or not all(_is_der_sequence(der) for der in peers):
        raise HandshakeError("the plugin's server certificate is neither DER nor PEM")
    context = _new_context(ssl.PROTOCOL_TLS_CLIENT, alpn)
    context.check_hostname = True
    _trust_only(context, peers, "the plugin's server certificate")
    _load_own_certificate(context, own)
    return context

"""AutoMTLS on the gRPC path: grpcio's own TLS when it can, the `_tlsrelay` when it cannot.

grpcio's TLS (BoringSSL) fails any handshake in which a P-521 certificate takes part, and
P-521 is what go-plugin generates. A tether host generates P-256 instead (Go accepts it), and a
tether plugin answers a P-256 host with a P-256 certificate of its own; so between two tether
processes both certificates suit grpcio, which then does TLS itself, with no relay. As soon as
either certificate is P-521 (a Go host or a Go plugin), that connection goes through the relay
on Python's `ssl`, as it always did. The choice is made per peer, from the certificates alone,
and brokered connections follow the same rule as the main one.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ._errors import ConfigError, TetherError
from ._handshake import split_host_port
from ._transport import SUN_PATH_MAX, listen_tcp, listen_unix, make_socket_dir, unix_socket_path

if TYPE_CHECKING:
    import ssl

    import grpc

    from ._mtls import Certificate
    from ._tlsrelay import ClientRelay, ServerRelay

__all__ = ["GRPCTLS", "dial", "grpc_target", "serve_tcp", "serve_unix"]

# go-plugin's certificates name only "localhost"; grpcio would check the target's name instead.
_TLS_NAME: Final = "localhost"

Options = Sequence[tuple[str, Any]]


@dataclass(frozen=True, slots=True)
class GRPCTLS:
    """AutoMTLS between us and one peer: our certificate, the peer's, and how to use them.

    `native` is true when grpcio can handle both certificates; then grpcio's credentials are
    used, otherwise the relay's `ssl` contexts.
    """

    own: Certificate
    peer_pem: bytes
    native: bool

    @classmethod
    def between(cls, own: Certificate, peer_pem: bytes | str) -> GRPCTLS:
        from ._mtls import der_to_pem, grpcio_compatible, pem_certs

        # Only the certificate blocks, re-encoded: what Go's AppendCertsFromPEM would trust,
        # with nothing around them for grpcio's PEM reader to trip on. Without any, keep the
        # text, so that loading it fails with the usual message.
        ders = pem_certs(peer_pem)
        raw = peer_pem.encode("ascii", "replace") if isinstance(peer_pem, str) else peer_pem
        pem = "".join(der_to_pem(der) for der in ders).encode("ascii") if ders else raw
        native = grpcio_compatible(own.cert_der) and grpcio_compatible(pem)
        return cls(own, pem, native)

    def server_credentials(self) -> grpc.ServerCredentials:
        """go-plugin's RequireAndVerifyClientCert, with the peer's certificate as the only CA."""
        import grpc

        return grpc.ssl_server_credentials(
            [(self.own.key_pem, self.own.cert_pem)],
            root_certificates=self.peer_pem,
            require_client_auth=True,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        import grpc

        return grpc.ssl_channel_credentials(
            root_certificates=self.peer_pem,
            private_key=self.own.key_pem,
            certificate_chain=self.own.cert_pem,
        )

    def channel_options(self, options: Options) -> list[tuple[str, Any]]:
        return [*options, ("grpc.ssl_target_name_override", _TLS_NAME)]

    def server_context(self) -> ssl.SSLContext:
        from ._mtls import server_context

        return server_context(self.own, self.peer_pem, alpn=["h2"])

    def client_context(self) -> ssl.SSLContext:
        from ._mtls import client_context

        return client_context(self.own, self.peer_pem.decode("ascii"), alpn=["h2"])


def serve_unix(
    server: grpc.Server, directory: str, tls: GRPCTLS | None
) -> tuple[str, ServerRelay | None, str | None]:
    """Bind `server` to a new Unix socket in `directory`: (address, relay, relay's own dir).

    The relay's directory (holding grpcio's plaintext socket) is the caller's to remove.
    """
    if tls is None or tls.native:
        address = unix_socket_path(directory)  # grpcio binds it itself
        if tls is None:
            server.add_insecure_port("unix:" + address)
        else:
            server.add_secure_port("unix:" + address, tls.server_credentials())
        return address, None, None
    listener, address = listen_unix(directory)
    backend_dir = make_socket_dir()
    return address, _server_relay(server, listener, tls, backend_dir), backend_dir


def serve_tcp(
    server: grpc.Server, min_port: int, max_port: int, tls: GRPCTLS
) -> tuple[str, ServerRelay | None, str | None]:
    """Bind `server` to 127.0.0.1 in the port range, always with TLS; as `serve_unix`."""
    if not tls.native:
        listener, address = listen_tcp(min_port, max_port)
        backend_dir = make_socket_dir()
        return address, _server_relay(server, listener, tls, backend_dir), backend_dir
    credentials = tls.server_credentials()
    if max_port == 0:
        port = server.add_secure_port("127.0.0.1:0", credentials)
        return f"127.0.0.1:{port}", None, None
    for port in range(max(min_port, 1), max_port + 1):
        # Probe first: grpcio logs an error line on stderr for every port it fails to bind.
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            probe.close()
        try:
            server.add_secure_port(f"127.0.0.1:{port}", credentials)
        except RuntimeError:
            continue  # taken between the probe and grpcio's bind
        return f"127.0.0.1:{port}", None, None
    raise ConfigError(f"no free TCP port on 127.0.0.1 between {min_port} and {max_port}")


def _server_relay(
    server: grpc.Server, listener: socket.socket, tls: GRPCTLS, backend_dir: str
) -> ServerRelay:
    from ._tlsrelay import ServerRelay

    backend = os.path.join(backend_dir, "grpc")
    assert len(os.fsencode(backend)) < SUN_PATH_MAX
    server.add_insecure_port("unix:" + backend)
    return ServerRelay(listener, tls.server_context(), backend)


@dataclass(slots=True)
class Dialed:
    """A channel to a plugin or broker server, and what `aio_channel` needs to open another."""

    channel: grpc.Channel
    target: str
    options: list[tuple[str, Any]]
    credentials: grpc.ChannelCredentials | None
    relay: ClientRelay | None

    def aio_channel(self) -> grpc.aio.Channel:
        """An asyncio channel to the same server, over the same TLS (or relay)."""
        import grpc.aio

        if self.credentials is None:
            return grpc.aio.insecure_channel(self.target, options=self.options)
        return grpc.aio.secure_channel(self.target, self.credentials, options=self.options)


def dial(network: str, address: str, tls: GRPCTLS | None, options: Options) -> Dialed:
    """A channel to `address`: plaintext, grpcio's TLS, or through a new relay."""
    import grpc

    target = grpc_target(network, address)
    if tls is None:
        opts = list(options)
        return Dialed(grpc.insecure_channel(target, options=opts), target, opts, None, None)
    if tls.native:
        opts = tls.channel_options(options)
        credentials = tls.channel_credentials()
        channel = grpc.secure_channel(target, credentials, options=opts)
        return Dialed(channel, target, opts, credentials, None)
    from ._tlsrelay import ClientRelay, tls_dialer

    relay = ClientRelay(tls_dialer(network, address, tls.client_context()))
    target = "unix:" + relay.path
    opts = list(options)
    return Dialed(grpc.insecure_channel(target, options=opts), target, opts, None, relay)


def grpc_target(network: str, address: str) -> str:
    """grpcio's name for a plugin's (or a broker server's) address."""
    if network == "unix":
        return "unix:" + address
    if network == "tcp":
        host, port = split_host_port(address)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    raise TetherError(f"unknown address type: {network}")

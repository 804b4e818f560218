"""Signing commands (`keygen`, `sign`, `verify`) and `handshake`, for plugin authors."""

from __future__ import annotations

from pathlib import Path

import click

from ._app import STATE, common_options, config_path, echo_json

__all__ = ["handshake_cmd", "keygen_cmd", "sign_cmd", "verify_cmd"]

DEFAULT_KEY = Path("~/.config/tether/signing.key")


@click.command("keygen")
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False),
    default=str(DEFAULT_KEY),
    show_default=True,
    help="Where to write the private key (mode 0600); the public key goes to OUT.pub.",
)
@common_options
def keygen_cmd(out: str) -> None:
    """Make an ed25519 signing key and print its public key.

    Add the printed `ed25519:...` line to security.trusted_keys in the configuration.
    """
    from .._signing import write_keypair

    path = Path(out).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    public = write_keypair(path)
    if STATE.json:
        echo_json({"private_key": str(path), "public_key_file": f"{path}.pub", "public": public})
        return
    click.echo(f"wrote private key {path} (keep it secret) and {path}.pub", err=True)
    click.echo("add this line to security.trusted_keys:", err=True)
    click.echo(public)


@click.command("sign")
@click.option(
    "--key",
    "-k",
    type=click.Path(dir_okay=False),
    default=str(DEFAULT_KEY),
    show_default=True,
    help="The private key from `tether keygen`.",
)
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@common_options
def sign_cmd(key: str, paths: tuple[str, ...]) -> None:
    """Sign plugin files: writes PATH.sig next to each."""
    from .._errors import ConfigError
    from .._signing import sign_file, signature_path

    key_path = Path(key).expanduser()
    try:
        pem = key_path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the private key {key_path}: {exc.strerror} (make one with "
            "`tether keygen`, or pass --key FILE)"
        ) from None
    done = []
    for path in paths:
        signature = sign_file(path, pem)
        done.append({"path": path, "signature": str(signature_path(path)), "key": signature.key_id})
        if not STATE.json:
            click.echo(f"signed {path} -> {signature_path(path)} (key {signature.key_id})")
    if STATE.json:
        echo_json(done)


@click.command("verify")
@click.option(
    "--key",
    "-k",
    "keys",
    multiple=True,
    metavar="PUBLIC",
    help="A trusted public key: `ed25519:...` or a .pub file (repeatable; default: "
    "security.trusted_keys of the configuration).",
)
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@common_options
def verify_cmd(keys: tuple[str, ...], paths: tuple[str, ...]) -> None:
    """Check each file's signature (PATH.sig) against the trusted keys."""
    from .._errors import ConfigError
    from .._signing import verify_file

    trusted = [_public_key(k) for k in keys]
    if not trusted:
        path = config_path(required=False)
        if path is not None:
            from .._config import load_config

            trusted = list(load_config(path).security.trusted_keys)
    if not trusted:
        raise ConfigError(
            "no trusted keys: pass --key ed25519:... (or the .pub file from `tether keygen`), "
            "or list them under security.trusted_keys in the configuration"
        )
    results = []
    for file in paths:
        key_id = verify_file(file, trusted)
        results.append({"path": file, "ok": True, "key": key_id})
        if not STATE.json:
            click.echo(f"ok  {file} (signed by key {key_id})")
    if STATE.json:
        echo_json(results)


def _public_key(text: str) -> str:
    if text.startswith("ed25519:"):
        return text
    path = Path(text).expanduser()
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        from .._errors import ConfigError

        raise ConfigError(
            f"--key {text}: neither an `ed25519:...` public key nor a readable file ({exc})"
        ) from None


@click.command("handshake")
@click.argument("line")
@common_options
def handshake_cmd(line: str) -> None:
    """Explain a plugin's handshake line (go-plugin's format), or why a host rejects it."""
    from .. import _handshake as hs

    parsed = hs.HandshakeLine.parse(line)
    rows = [
        ("core protocol version", str(parsed.core_version)),
        ("app protocol version", str(parsed.app_version)),
        ("network", parsed.network),
        ("address", parsed.address),
        ("protocol", parsed.protocol),
        (
            "server certificate",
            f"{len(parsed.server_cert)} base64 characters (AutoMTLS)"
            if parsed.server_cert
            else "none (no AutoMTLS)",
        ),
    ]
    if parsed.multiplex is not None:
        rows.append(("gRPC broker multiplexing", "yes" if parsed.multiplex else "no"))
    if STATE.json:
        echo_json({name.replace(" ", "_"): value for name, value in rows})
        return
    width = max(len(name) for name, _ in rows)
    click.echo("\n".join(f"{name:<{width}}  {value}" for name, value in rows))

"""ed25519 signatures of plugin files, and the checks made before a plugin is executed.

Keys. `generate_keypair()` returns the private key as PKCS#8 PEM and the public key as one
line, `ed25519:<base64 of the 32 raw bytes>`, which goes into `security.trusted_keys`.
A key's id is the first 16 hex digits of the sha256 of its raw public bytes.

Signatures are detached: signing `plugin.py` writes `plugin.py.sig`, a small text file::

    tether-signature v1
    algorithm: ed25519
    key-id: 3f1c0a9be2d47c55
    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    signature: <base64 of the 64-byte signature>

What is signed is not the file itself but the first four lines above with the key-id line
left out (`tether-signature v1\\nalgorithm: ed25519\\nsha256: <hex>\\n`): the file is hashed
in blocks, so it never has to fit in memory, and the fixed prefix keeps a tether signature
from being valid for anything else. The file's name is not signed, so a signed file may be
renamed or installed elsewhere with its `.sig`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ._errors import ChecksumMismatchError, ConfigError, TetherError
from ._launch import verify_checksum

__all__ = [
    "PUBLIC_KEY_PREFIX",
    "SIGNATURE_SUFFIX",
    "Signature",
    "VerificationError",
    "generate_keypair",
    "key_id",
    "parse_public_key",
    "sign_file",
    "signature_path",
    "verify_file",
    "verify_plugin",
    "write_keypair",
]

PUBLIC_KEY_PREFIX = "ed25519:"
SIGNATURE_SUFFIX = ".sig"
_HEADER = "tether-signature v1"
_ALGORITHM = "ed25519"
_FIELDS = ("algorithm", "key-id", "sha256", "signature")


class VerificationError(TetherError):
    """A plugin file failed signature verification; it must not be executed."""


@dataclass(frozen=True, slots=True)
class Signature:
    """The contents of a `.sig` file."""

    key_id: str
    sha256: str  # hex digest of the signed file
    value: bytes  # the 64-byte ed25519 signature
    algorithm: str = _ALGORITHM

    def signed_message(self) -> bytes:
        return f"{_HEADER}\nalgorithm: {self.algorithm}\nsha256: {self.sha256}\n".encode()

    def to_text(self) -> str:
        return (
            f"{_HEADER}\n"
            f"algorithm: {self.algorithm}\n"
            f"key-id: {self.key_id}\n"
            f"sha256: {self.sha256}\n"
            f"signature: {base64.b64encode(self.value).decode()}\n"
        )

    @classmethod
    def parse(cls, text: str) -> Signature:
        """Parse a `.sig` file's text; ValueError says what is malformed."""
        lines = [line.strip() for line in text.strip().splitlines()]
        if not lines or lines[0] != _HEADER:
            raise ValueError(f"the first line is not {_HEADER!r}")
        fields: dict[str, str] = {}
        for number, line in enumerate(lines[1:], start=2):
            key, sep, value = line.partition(":")
            if not sep or key.strip() not in _FIELDS:
                raise ValueError(f"line {number} is not one of the fields {', '.join(_FIELDS)}")
            fields[key.strip()] = value.strip()
        missing = [name for name in _FIELDS if name not in fields]
        if missing:
            raise ValueError(f"missing field(s): {', '.join(missing)}")
        if fields["algorithm"] != _ALGORITHM:
            raise ValueError(f"unsupported algorithm {fields['algorithm']!r} (only ed25519)")
        digest = fields["sha256"].lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError("sha256 is not 64 hex digits")
        try:
            raw = base64.b64decode(fields["signature"], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("signature is not base64") from None
        if len(raw) != 64:
            raise ValueError("signature is not 64 bytes long")
        return cls(key_id=fields["key-id"], sha256=digest, value=raw)


# --------------------------------------------------------------------------------------
# Keys.


def parse_public_key(text: str) -> bytes:
    """The 32 raw bytes of an `ed25519:<base64>` public key; ValueError says what is wrong."""
    expected = "a public key 'ed25519:<base64 of 32 bytes>', as printed by `tether keygen`"
    text = text.strip()
    if not text.startswith(PUBLIC_KEY_PREFIX):
        raise ValueError(expected)
    try:
        raw = base64.b64decode(text[len(PUBLIC_KEY_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(expected) from None
    if len(raw) != 32:
        raise ValueError(expected)
    return raw


def key_id(public_raw: bytes) -> str:
    """A short, stable name for a public key: 16 hex digits of its sha256."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def _public_text(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode()


def generate_keypair() -> tuple[bytes, str]:
    """A new key: (private key as unencrypted PKCS#8 PEM, public key as `ed25519:<base64>`)."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, _public_text(private.public_key())


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never overwrite a key, and create it with its final mode (no window in which
    # the private key is readable by others, whatever the umask).
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; remove it or choose another path") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc}") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # O_CREAT's mode is filtered by the umask


def write_keypair(private_path: str | os.PathLike[str]) -> str:
    """Generate a key, write the private key (mode 0600) and `<path>.pub` (mode 0600).

    Returns the public key text. Existing files are never overwritten (ConfigError).
    """
    private = Path(private_path)
    public = private.with_name(private.name + ".pub")
    if public.exists():
        raise ConfigError(f"{public} already exists; remove it or choose another path")
    pem, public_text = generate_keypair()
    _write_new(private, pem, 0o600)
    _write_new(public, (public_text + "\n").encode(), 0o600)
    return public_text


def _load_private_key(private_key_pem: bytes | str) -> Ed25519PrivateKey:
    data = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"cannot load the private key ({exc}); expected an unencrypted PEM key "
            "written by `tether keygen`"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"the private key is {type(key).__name__}, expected an ed25519 key")
    return key


# --------------------------------------------------------------------------------------
# Signing and verifying.


def signature_path(path: str | os.PathLike[str]) -> Path:
    """Where the detached signature of `path` lives: `<path>.sig`."""
    file = Path(path)
    return file.with_name(file.name + SIGNATURE_SUFFIX)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sign_file(path: str | os.PathLike[str], private_key_pem: bytes | str) -> Signature:
    """Sign `path` and write the detached signature to `<path>.sig` (replacing an old one)."""
    file = Path(path)
    key = _load_private_key(private_key_pem)
    try:
        digest = _sha256(file)
    except OSError as exc:
        raise ConfigError(f"cannot read {file} to sign it: {exc}") from exc
    public_raw = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    unsigned = Signature(key_id=key_id(public_raw), sha256=digest, value=b"")
    signature = Signature(unsigned.key_id, digest, key.sign(unsigned.signed_message()))
    signature_path(file).write_text(signature.to_text(), encoding="ascii")
    return signature


def _trusted(trusted_keys: Iterable[str]) -> dict[str, Ed25519PublicKey]:
    keys: dict[str, Ed25519PublicKey] = {}
    for text in trusted_keys:
        try:
            raw = parse_public_key(text)
        except ValueError as exc:
            raise ConfigError(f"security.trusted_keys: got {text!r}, expected {exc}") from None
        keys[key_id(raw)] = Ed25519PublicKey.from_public_bytes(raw)
    return keys


_SIGN_HINT = "sign it with `tether sign --key <private key file> {file}`"


def _read_signature(file: Path) -> Signature:
    sig_path = signature_path(file)
    hint = _SIGN_HINT.format(file=file)
    try:
        text = sig_path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise VerificationError(
            f"{file} is not signed: {sig_path} does not exist. To fix: {hint}, "
            "or set security.require_signature to false"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VerificationError(f"cannot read {sig_path}: {exc}. To fix: {hint}") from None
    try:
        return Signature.parse(text)
    except ValueError as exc:
        raise VerificationError(f"{sig_path} is malformed: {exc}. To fix: {hint} again") from None


def verify_file(path: str | os.PathLike[str], trusted_keys: Iterable[str]) -> str:
    """Check `path` against its `<path>.sig`; return the id of the key that signed it.

    Raises `VerificationError` saying why (no `.sig`, malformed `.sig`, untrusted key,
    signature invalid, file changed since signing) and how to fix it, or `ConfigError` if
    a trusted key is malformed.
    """
    file = Path(path)
    keys = _trusted(trusted_keys)
    signature = _read_signature(file)
    hint = _SIGN_HINT.format(file=file)
    public = keys.get(signature.key_id)
    if public is None:
        known = ", ".join(sorted(keys)) or "none"
        raise VerificationError(
            f"{file} was signed by key {signature.key_id}, which is not trusted "
            f"(trusted key ids: {known}). To fix: add that key's public key (the "
            "`ed25519:...` line from `tether keygen`) to security.trusted_keys, "
            f"or {hint} using a trusted key"
        )
    try:
        public.verify(signature.value, signature.signed_message())
    except InvalidSignature:
        raise VerificationError(
            f"the signature in {signature_path(file)} is not valid for key "
            f"{signature.key_id}: the .sig file was altered or not made by that key. "
            f"To fix: {hint} again"
        ) from None
    try:
        actual = _sha256(file)
    except OSError as exc:
        raise VerificationError(f"cannot read {file} to verify it: {exc}") from exc
    if not hmac.compare_digest(actual, signature.sha256):
        raise VerificationError(
            f"{file} has changed since it was signed (sha256 now {actual}, signed "
            f"{signature.sha256}). To fix: if the change is yours, {hint} again; "
            "otherwise do not run it"
        )
    return signature.key_id


def verify_plugin(
    executable: str | os.PathLike[str],
    *,
    checksum: str | bytes | None,
    require_signature: bool,
    trusted_keys: Iterable[str] = (),
    name: str | None = None,
) -> str | None:
    """Every check the security settings ask for, before `executable` is run.

    The checksum (if given) is checked first, then the signature (if required). Returns
    the signing key's id, or None when no signature was required. Raises
    `ChecksumMismatchError` or `VerificationError`, each saying how to fix it.
    """
    file = os.fspath(executable)
    if checksum is not None:
        try:
            verify_checksum(file, checksum)
        except ChecksumMismatchError as exc:
            field = f"plugins.{name}.checksum" if name else "the plugin's checksum"
            raise ChecksumMismatchError(
                f"{exc}. To fix: if {file} was updated on purpose, set {field} to its new "
                f"sha256 (`sha256sum {file}`); otherwise do not run it"
            ) from exc
    if not require_signature:
        return None
    return verify_file(file, trusted_keys)

"""Tests for tether._signing: ed25519 keys, detached signatures, checks before exec."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import tether
from tether._signing import (
    Signature,
    VerificationError,
    generate_keypair,
    key_id,
    parse_public_key,
    sign_file,
    signature_path,
    verify_file,
    verify_plugin,
    write_keypair,
)

# Keys are cheap, but one pair per module keeps the tests quick and their output stable.
PRIVATE, PUBLIC = generate_keypair()
OTHER_PRIVATE, OTHER_PUBLIC = generate_keypair()
KEY_ID = key_id(parse_public_key(PUBLIC))


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    path = tmp_path / "plugin.py"
    path.write_text("print('hello')\n")
    return path


def test_generate_keypair_formats() -> None:
    assert PRIVATE.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert PUBLIC.startswith("ed25519:")
    assert "\n" not in PUBLIC
    assert len(parse_public_key(PUBLIC)) == 32
    assert PUBLIC != OTHER_PUBLIC
    assert len(KEY_ID) == 16
    assert hashlib.sha256(parse_public_key(PUBLIC)).hexdigest()[:16] == KEY_ID


@pytest.mark.parametrize(
    "text",
    ["", "ed25519:", "ssh-ed25519 AAAA", "ed25519:not base64!", "ed25519:" + "A" * 40],
)
def test_parse_public_key_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"a public key 'ed25519:<base64 of 32 bytes>'"):
        parse_public_key(text)


def test_write_keypair_files_are_private(tmp_path: Path) -> None:
    public = write_keypair(tmp_path / "signing.key")
    private_file = tmp_path / "signing.key"
    public_file = tmp_path / "signing.key.pub"
    assert stat.S_IMODE(private_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(public_file.stat().st_mode) == 0o600
    assert public_file.read_text() == public + "\n"
    # The written private key signs for the written public key.
    plugin = tmp_path / "p"
    plugin.write_bytes(b"x")
    sign_file(plugin, private_file.read_bytes())
    assert verify_file(plugin, [public]) == key_id(parse_public_key(public))


def test_write_keypair_never_overwrites(tmp_path: Path) -> None:
    write_keypair(tmp_path / "k")
    before = (tmp_path / "k").read_bytes()
    with pytest.raises(tether.ConfigError, match="already exists"):
        write_keypair(tmp_path / "k")
    assert (tmp_path / "k").read_bytes() == before
    (tmp_path / "k").unlink()
    with pytest.raises(tether.ConfigError, match=r"k\.pub already exists"):
        write_keypair(tmp_path / "k")  # the stale .pub must not be paired with a new key
    assert not (tmp_path / "k").exists()


def test_sign_and_verify_round_trip(plugin: Path) -> None:
    signature = sign_file(plugin, PRIVATE)
    assert signature_path(plugin) == plugin.with_name("plugin.py.sig")
    assert signature.key_id == KEY_ID
    assert signature.sha256 == hashlib.sha256(plugin.read_bytes()).hexdigest()
    assert verify_file(plugin, [OTHER_PUBLIC, PUBLIC]) == KEY_ID
    assert verify_file(str(plugin), (PUBLIC,)) == KEY_ID


def test_signature_file_format(plugin: Path) -> None:
    signature = sign_file(plugin, PRIVATE.decode())  # str PEM works too
    lines = signature_path(plugin).read_text().splitlines()
    assert lines[0] == "tether-signature v1"
    assert lines[1] == "algorithm: ed25519"
    assert lines[2] == f"key-id: {KEY_ID}"
    assert lines[3] == f"sha256: {signature.sha256}"
    assert lines[4] == "signature: " + base64.b64encode(signature.value).decode()
    assert len(lines) == 5
    assert Signature.parse("\n".join(lines)) == signature


def test_a_signed_file_can_be_moved(plugin: Path, tmp_path: Path) -> None:
    sign_file(plugin, PRIVATE)
    moved = tmp_path / "installed"
    moved.write_bytes(plugin.read_bytes())
    signature_path(moved).write_bytes(signature_path(plugin).read_bytes())
    assert verify_file(moved, [PUBLIC]) == KEY_ID


def test_tampered_file(plugin: Path) -> None:
    sign_file(plugin, PRIVATE)
    plugin.write_text("print('evil')\n")
    with pytest.raises(VerificationError) as info:
        verify_file(plugin, [PUBLIC])
    message = str(info.value)
    assert f"{plugin} has changed since it was signed" in message
    assert hashlib.sha256(plugin.read_bytes()).hexdigest() in message
    assert f"tether sign --key <private key file> {plugin}" in message
    assert isinstance(info.value, tether.TetherError)


def test_signed_by_an_untrusted_key(plugin: Path) -> None:
    sign_file(plugin, OTHER_PRIVATE)
    with pytest.raises(VerificationError) as info:
        verify_file(plugin, [PUBLIC])
    message = str(info.value)
    other_id = key_id(parse_public_key(OTHER_PUBLIC))
    assert f"signed by key {other_id}, which is not trusted" in message
    assert f"trusted key ids: {KEY_ID}" in message
    assert "security.trusted_keys" in message


def test_no_trusted_keys_at_all(plugin: Path) -> None:
    sign_file(plugin, PRIVATE)
    with pytest.raises(VerificationError, match=r"trusted key ids: none"):
        verify_file(plugin, [])


def test_missing_signature(plugin: Path) -> None:
    with pytest.raises(VerificationError) as info:
        verify_file(plugin, [PUBLIC])
    message = str(info.value)
    assert f"{plugin} is not signed: {plugin}.sig does not exist" in message
    assert "tether sign" in message
    assert "security.require_signature" in message


GOOD_SIG = (
    "tether-signature v1\nalgorithm: ed25519\nkey-id: {id}\nsha256: {digest}\nsignature: {sig}\n"
)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "the first line is not 'tether-signature v1'"),
        ("-----BEGIN PGP SIGNATURE-----\n", "the first line is not"),
        (
            "tether-signature v1\nalgorithm: ed25519\n",
            "missing field(s): key-id, sha256, signature",
        ),
        ("tether-signature v1\ncolour: blue\n", "line 2 is not one of the fields"),
        ("tether-signature v1\nno colon here\n", "line 2 is not one of the fields"),
        (GOOD_SIG.replace("ed25519", "rsa"), "unsupported algorithm 'rsa'"),
        (GOOD_SIG.replace("{digest}", "abc"), "sha256 is not 64 hex digits"),
        (GOOD_SIG.replace("{sig}", "%%%"), "signature is not base64"),
        (
            GOOD_SIG.replace("{sig}", base64.b64encode(b"short").decode()),
            "signature is not 64 bytes",
        ),
    ],
)
def test_malformed_signature(plugin: Path, text: str, why: str) -> None:
    real = sign_file(plugin, PRIVATE)
    filled = text.replace("{id}", KEY_ID).replace("{digest}", real.sha256)
    filled = filled.replace("{sig}", base64.b64encode(real.value).decode())
    signature_path(plugin).write_text(filled)
    with pytest.raises(VerificationError) as info:
        verify_file(plugin, [PUBLIC])
    message = str(info.value)
    assert f"{plugin}.sig is malformed: {why}" in message
    assert "tether sign" in message


def test_a_signature_file_that_is_not_text(plugin: Path) -> None:
    signature_path(plugin).write_bytes(b"\xff\xfe\x00")
    with pytest.raises(VerificationError, match=r"cannot read .*plugin\.py\.sig"):
        verify_file(plugin, [PUBLIC])


def test_an_edited_digest_in_the_signature(plugin: Path) -> None:
    # Someone replaced the file and edited the .sig's sha256 to match: the signature no
    # longer covers the digest.
    sign_file(plugin, PRIVATE)
    plugin.write_text("print('evil')\n")
    sig = signature_path(plugin)
    old = Signature.parse(sig.read_text())
    new_digest = hashlib.sha256(plugin.read_bytes()).hexdigest()
    sig.write_text(sig.read_text().replace(old.sha256, new_digest))
    with pytest.raises(VerificationError, match=f"not valid for key {KEY_ID}"):
        verify_file(plugin, [PUBLIC])


def test_a_signature_claiming_a_trusted_key_id(plugin: Path) -> None:
    sign_file(plugin, OTHER_PRIVATE)
    sig = signature_path(plugin)
    other_id = key_id(parse_public_key(OTHER_PUBLIC))
    sig.write_text(sig.read_text().replace(other_id, KEY_ID))
    with pytest.raises(VerificationError, match="was altered or not made by that key"):
        verify_file(plugin, [PUBLIC])


def test_the_signed_file_is_missing(plugin: Path) -> None:
    sign_file(plugin, PRIVATE)
    plugin.unlink()
    with pytest.raises(VerificationError, match=r"cannot read .* to verify it"):
        verify_file(plugin, [PUBLIC])


def test_a_malformed_trusted_key_is_a_config_error(plugin: Path) -> None:
    sign_file(plugin, PRIVATE)
    with pytest.raises(tether.ConfigError, match=r"security\.trusted_keys: got 'nope', expected"):
        verify_file(plugin, ["nope"])


def test_signing_needs_an_ed25519_private_key(plugin: Path) -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(tether.ConfigError, match="expected an ed25519 key"):
        sign_file(plugin, ec_pem)
    with pytest.raises(tether.ConfigError, match="cannot load the private key"):
        sign_file(plugin, b"not a key")
    assert not signature_path(plugin).exists()


def test_signing_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(tether.ConfigError, match=r"cannot read .* to sign it"):
        sign_file(tmp_path / "nope", PRIVATE)


# --------------------------------------------------------------------------------------
# verify_plugin: everything the security settings ask for.


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_verify_plugin_with_nothing_required(plugin: Path) -> None:
    assert verify_plugin(plugin, checksum=None, require_signature=False) is None


def test_verify_plugin_checksum_only(plugin: Path) -> None:
    assert verify_plugin(plugin, checksum=sha256_of(plugin), require_signature=False) is None
    digest = bytes.fromhex(sha256_of(plugin))
    assert verify_plugin(plugin, checksum=digest, require_signature=False) is None


def test_verify_plugin_checksum_mismatch_says_how_to_fix(plugin: Path) -> None:
    with pytest.raises(tether.ChecksumMismatchError) as info:
        verify_plugin(plugin, checksum="00" * 32, require_signature=False, name="calc")
    message = str(info.value)
    assert "checksums did not match" in message
    assert sha256_of(plugin) in message
    assert "set plugins.calc.checksum to its new sha256" in message
    assert f"sha256sum {plugin}" in message


def test_verify_plugin_bad_checksum_text(plugin: Path) -> None:
    with pytest.raises(tether.ConfigError, match="is not a hex sha256 digest"):
        verify_plugin(plugin, checksum="xyz", require_signature=False)


def test_verify_plugin_signature_required(plugin: Path) -> None:
    with pytest.raises(VerificationError, match="is not signed"):
        verify_plugin(plugin, checksum=None, require_signature=True, trusted_keys=[PUBLIC])
    sign_file(plugin, PRIVATE)
    assert verify_plugin(plugin, checksum=None, require_signature=True, trusted_keys=[PUBLIC]) == (
        KEY_ID
    )


def test_verify_plugin_checks_both(plugin: Path) -> None:
    sign_file(plugin, PRIVATE)
    assert (
        verify_plugin(
            plugin, checksum=sha256_of(plugin), require_signature=True, trusted_keys=[PUBLIC]
        )
        == KEY_ID
    )
    # The checksum is checked first: a wrong checksum fails even with a good signature.
    with pytest.raises(tether.ChecksumMismatchError):
        verify_plugin(plugin, checksum="11" * 32, require_signature=True, trusted_keys=[PUBLIC])


def test_verify_plugin_ignores_signatures_when_not_required(plugin: Path) -> None:
    sign_file(plugin, OTHER_PRIVATE)
    assert (
        verify_plugin(plugin, checksum=None, require_signature=False, trusted_keys=[PUBLIC]) is None
    )

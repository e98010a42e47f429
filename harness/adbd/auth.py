"""ADB RSA authentication: Android public-key structs, adb_keys files, token signatures.

The host proves key ownership by signing a 20-byte random token with PKCS#1 v1.5,
treating the token as if it were a SHA-1 digest (ADB_SPEC.md §1.5). Verification is
one modular exponentiation plus a constant-time compare of the expected encoding.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TOKEN_SIZE = 20
ANDROID_PUBKEY_MODULUS_SIZE = 256  # bytes; adb keys are 2048-bit
ANDROID_PUBKEY_STRUCT_SIZE = 4 + 4 + 2 * ANDROID_PUBKEY_MODULUS_SIZE + 4  # 524
# DER prefix of DigestInfo{sha1, <20-byte digest>} (RFC 8017 §9.2 note 1).
SHA1_DIGEST_INFO = bytes.fromhex("3021300906052b0e03021a05000414")


class AuthError(ValueError):
    """A public key or key file that cannot be decoded."""


@dataclass(frozen=True)
class AdbPublicKey:
    """An RSA public key as carried in Android's 524-byte ``RSAPublicKey`` struct."""

    modulus: int
    exponent: int
    comment: str = ""

    @property
    def size_bytes(self) -> int:
        """Length of the modulus in bytes (= signature length)."""
        return (self.modulus.bit_length() + 7) // 8


def decode_android_pubkey(blob: bytes, comment: str = "") -> AdbPublicKey:
    """Decode the binary struct: u32 words, u32 n0inv, n[256] LE, rr[256] LE, u32 e."""
    if len(blob) != ANDROID_PUBKEY_STRUCT_SIZE:
        raise AuthError(f"android pubkey struct is {len(blob)} bytes, expected 524")
    words, _n0inv = struct.unpack_from("<II", blob, 0)
    if words != ANDROID_PUBKEY_MODULUS_SIZE // 4:
        raise AuthError(f"unsupported modulus size of {words} words")
    modulus = int.from_bytes(blob[8 : 8 + ANDROID_PUBKEY_MODULUS_SIZE], "little")
    (exponent,) = struct.unpack_from("<I", blob, 8 + 2 * ANDROID_PUBKEY_MODULUS_SIZE)
    if modulus < 3 or exponent < 3:
        raise AuthError("degenerate RSA public key")
    return AdbPublicKey(modulus, exponent, comment)


def encode_android_pubkey(modulus: int, exponent: int) -> bytes:
    """Build the 524-byte struct, including the Montgomery helpers n0inv and rr."""
    n0inv = (-pow(modulus, -1, 1 << 32)) % (1 << 32)
    rr = pow(2, 2 * 8 * ANDROID_PUBKEY_MODULUS_SIZE, modulus)
    size = ANDROID_PUBKEY_MODULUS_SIZE
    return (
        struct.pack("<II", size // 4, n0inv)
        + modulus.to_bytes(size, "little")
        + rr.to_bytes(size, "little")
        + struct.pack("<I", exponent)
    )


def parse_pubkey_line(line: str | bytes) -> AdbPublicKey:
    """Parse one adbkey.pub line: ``base64(struct) [user@host]`` (NULs tolerated)."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.replace("\0", "").strip()
    if not text:
        raise AuthError("empty public key line")
    b64, _, comment = text.partition(" ")
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AuthError(f"public key is not base64: {exc}") from exc
    return decode_android_pubkey(blob, comment.strip())


@dataclass(frozen=True)
class KeyFileScan:
    """An adb_keys file read line by line: the keys, and each line that is not one."""

    keys: tuple[AdbPublicKey, ...]
    bad_lines: tuple[tuple[int, str], ...]  # (line number, why)


def scan_authorized_keys(path: str | os.PathLike[str]) -> KeyFileScan:
    """Read an adb_keys file (one adbkey.pub line each; blank and # lines ignored).

    Raises AuthError when the file cannot be read."""
    try:
        text = Path(path).read_text("utf-8", "replace")
    except OSError as exc:
        raise AuthError(f"cannot read {path}: {exc.strerror or exc}") from exc
    keys, bad = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            keys.append(parse_pubkey_line(line))
        except AuthError as exc:
            bad.append((number, str(exc)))
    return KeyFileScan(tuple(keys), tuple(bad))


def load_authorized_keys(path: str | os.PathLike[str]) -> list[AdbPublicKey]:
    """Read an adb_keys file (one adbkey.pub line each); bad lines are logged, skipped."""
    scan = scan_authorized_keys(path)
    for number, why in scan.bad_lines:
        log.warning("%s:%d: skipping key: %s", path, number, why)
    return list(scan.keys)


def verify_token_signature(key: AdbPublicKey, token: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is PKCS#1 v1.5 over ``token`` taken as a SHA-1 digest."""
    size = key.size_bytes
    if len(token) != TOKEN_SIZE or len(signature) != size:
        return False
    value = int.from_bytes(signature, "big")
    if value >= key.modulus:
        return False
    encoded = pow(value, key.exponent, key.modulus).to_bytes(size, "big")
    suffix = b"\x00" + SHA1_DIGEST_INFO + token
    expected = b"\x00\x01" + b"\xff" * (size - 2 - len(suffix)) + suffix
    return hmac.compare_digest(encoded, expected)


def find_signing_key(
    keys: list[AdbPublicKey], token: bytes, signature: bytes
) -> AdbPublicKey | None:
    """Return the authorized key that produced ``signature``, or None."""
    for key in keys:
        if verify_token_signature(key, token, signature):
            return key
    return None


def new_token() -> bytes:
    """A fresh random AUTH token."""
    return os.urandom(TOKEN_SIZE)

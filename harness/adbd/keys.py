"""Host-side ADB key helper: create ``adbkey`` (PKCS#8 PEM) and ``adbkey.pub`` (Android).

The files match what the adb server writes to ``~/.android``, so either can be used
by adb-shell's ``PythonRSASigner.FromRSAKeyPath`` and by ``adb`` itself.
"""

from __future__ import annotations

import base64
import getpass
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from harness.adbd.auth import encode_android_pubkey

KEY_BITS = 2048
PUBLIC_EXPONENT = 65537


@dataclass(frozen=True)
class AdbKeyPair:
    """Paths of a key pair on disk."""

    private_key: Path
    public_key: Path


def default_comment() -> str:
    """``user@host``, the comment adb appends to a public key."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def format_public_key(modulus: int, exponent: int, comment: str) -> str:
    """One adbkey.pub line: base64 of the 524-byte struct, a space, the comment."""
    blob = encode_android_pubkey(modulus, exponent)
    return base64.b64encode(blob).decode("ascii") + " " + comment


def _generate_pem() -> tuple[bytes, int, int]:
    """Return (PKCS#8 PEM, modulus, exponent) for a fresh 2048-bit key."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa as crsa
    except ImportError:  # pure-Python fallback: slower (seconds), same result
        return _generate_pem_with_rsa()
    key = crsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    numbers = key.public_key().public_numbers()
    return pem, numbers.n, numbers.e


def _generate_pem_with_rsa() -> tuple[bytes, int, int]:
    import rsa
    from pyasn1.codec.der import encoder
    from pyasn1.type import univ

    public, private = rsa.newkeys(KEY_BITS, exponent=PUBLIC_EXPONENT)
    # PKCS#8 PrivateKeyInfo wrapping the PKCS#1 key, as adb and adb-shell expect.
    algorithm = univ.Sequence()
    algorithm.setComponentByPosition(0, univ.ObjectIdentifier("1.2.840.113549.1.1.1"))
    algorithm.setComponentByPosition(1, univ.Null(""))
    info = univ.Sequence()
    info.setComponentByPosition(0, univ.Integer(0))
    info.setComponentByPosition(1, algorithm)
    info.setComponentByPosition(2, univ.OctetString(private.save_pkcs1("DER")))
    pem = rsa.pem.save_pem(encoder.encode(info), "PRIVATE KEY")
    return pem, public.n, public.e


def _write_private(path: Path, data: bytes) -> None:
    # Create with 0600 from the start so the key is never briefly world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def generate_adb_keypair(
    private_key_path: str | os.PathLike[str], comment: str | None = None
) -> AdbKeyPair:
    """Write ``<path>`` and ``<path>.pub`` (both mode 0600); overwrite existing files."""
    private = Path(private_key_path)
    public = Path(str(private) + ".pub")
    private.parent.mkdir(parents=True, exist_ok=True)
    pem, modulus, exponent = _generate_pem()
    _write_private(private, pem)
    line = format_public_key(modulus, exponent, comment or default_comment())
    _write_private(public, line.encode("ascii") + b"\n")
    return AdbKeyPair(private, public)


def ensure_adb_keypair(
    private_key_path: str | os.PathLike[str], comment: str | None = None
) -> AdbKeyPair:
    """Reuse an existing key pair, or generate one if either file is missing."""
    private = Path(private_key_path)
    public = Path(str(private) + ".pub")
    if private.is_file() and public.is_file():
        return AdbKeyPair(private, public)
    return generate_adb_keypair(private, comment)

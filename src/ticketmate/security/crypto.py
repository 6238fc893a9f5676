"""AES-256-GCM keyring for secrets at rest (Teams webhook URLs, Jira secrets, ingest tokens).

A stored value is one blob: 1 byte key-id length, the key id, a 96-bit nonce, then the
ciphertext with its 16-byte tag. The associated data binds a blob to the row and column it
belongs to, so a ciphertext copied to another row fails to decrypt instead of leaking.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ticketmate.config import ConfigError, Settings, parse_key_list

log = logging.getLogger(__name__)

NONCE_BYTES = 12


class DecryptionError(Exception):
    """A stored secret could not be decrypted: unknown key id, wrong key, or tampered data."""


def generate_key_line(kid: str | None = None) -> str:
    """A new `kid:base64key` line for TICKETMATE_ENCRYPTION_KEYS."""
    kid = kid or "k" + secrets.token_hex(4)
    return f"{kid}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


class Keyring:
    """The keys that decrypt, in order; the first one encrypts."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ConfigError("TICKETMATE_ENCRYPTION_KEYS: no encryption key is configured")
        for kid, key in keys:
            if not kid or len(kid.encode()) > 255 or len(key) != 32:
                raise ConfigError(f"TICKETMATE_ENCRYPTION_KEYS: key {kid!r} is not usable")
        self._keys = {kid: AESGCM(key) for kid, key in keys}
        self._raw = dict(keys)
        self.primary_kid = keys[0][0]

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def encrypt(self, plaintext: str, associated_data: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.primary_kid].encrypt(
            nonce, plaintext.encode(), associated_data.encode()
        )
        kid = self.primary_kid.encode()
        return bytes([len(kid)]) + kid + nonce + sealed

    def decrypt(self, blob: bytes, associated_data: str) -> str:
        kid = key_id_of(blob)
        aead = self._keys.get(kid)
        if aead is None:
            raise DecryptionError(
                f"the secret was encrypted with key {kid!r}, which is not configured; "
                "add it to TICKETMATE_ENCRYPTION_KEYS"
            )
        start = 1 + len(kid.encode())
        nonce, sealed = blob[start : start + NONCE_BYTES], blob[start + NONCE_BYTES :]
        try:
            return aead.decrypt(nonce, sealed, associated_data.encode()).decode()
        except InvalidTag:
            raise DecryptionError(
                f"the secret does not decrypt with key {kid!r}: the key is wrong "
                "or the stored data was altered"
            ) from None

    def derive_key(self, purpose: str, kid: str | None = None) -> bytes:
        """A 32-byte key for another use (e.g. keyed digests), separated from the encryption
        key by HKDF so neither can be learnt from the other."""
        raw = self._raw.get(kid or self.primary_kid)
        if raw is None:
            raise DecryptionError(f"key {kid!r} is not configured")
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
            raw
        )

    def needs_rotation(self, blob: bytes) -> bool:
        return key_id_of(blob) != self.primary_kid


def key_id_of(blob: bytes) -> str:
    if len(blob) < 1 + NONCE_BYTES + 16 or len(blob) < 1 + blob[0] + NONCE_BYTES + 16:
        raise DecryptionError("the stored secret is truncated or not an encrypted value")
    try:
        return blob[1 : 1 + blob[0]].decode()
    except UnicodeDecodeError:
        raise DecryptionError("the stored secret has an unreadable key id") from None


def load_keyring(settings: Settings, *, create: bool = False) -> Keyring:
    """Keys from TICKETMATE_ENCRYPTION_KEYS, else from the local key file.

    With create=True a missing key file is generated (mode 0600) with a warning: fine for a
    single machine, but a production deployment should configure its keys explicitly.
    """
    if settings.configured_keys:
        return Keyring(settings.configured_keys)
    path = Path(settings.key_file)
    if not path.exists():
        if not create:
            raise ConfigError(
                "TICKETMATE_ENCRYPTION_KEYS: no key is configured and "
                f"{path} does not exist; run `ticketmate serve` once or set the variable"
            )
        _write_key_file(path)
        log.warning(
            "No TICKETMATE_ENCRYPTION_KEYS configured: generated a local encryption key in %s "
            "(mode 0600). Back it up; without it stored secrets cannot be read.",
            path,
        )
    try:
        return Keyring(parse_key_list(path.read_text()))
    except ValueError as exc:
        raise ConfigError(f"TICKETMATE_KEY_FILE: {path} is not a valid key file ({exc})") from None


def _write_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(generate_key_line("local1") + "\n")
    os.chmod(path, 0o600)

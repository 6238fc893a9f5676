"""The AES-256-GCM keyring: round trip, fresh nonces, binding to the row, clear failures."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from ticketmate.config import ConfigError, load_settings
from ticketmate.security.crypto import DecryptionError, Keyring, generate_key_line, load_keyring

KEY_A = os.urandom(32)
KEY_B = os.urandom(32)


def test_round_trip_and_fresh_nonce() -> None:
    ring = Keyring([("a", KEY_A)])
    first = ring.encrypt("https://example.webhook.office.com/x", "row:1")
    second = ring.encrypt("https://example.webhook.office.com/x", "row:1")
    assert first != second  # a new nonce every time
    assert b"example" not in first
    assert ring.decrypt(first, "row:1") == "https://example.webhook.office.com/x"


def test_ciphertext_is_bound_to_its_row() -> None:
    ring = Keyring([("a", KEY_A)])
    blob = ring.encrypt("secret", "workspaces:1:jira_secret")
    with pytest.raises(DecryptionError, match="altered"):
        ring.decrypt(blob, "workspaces:2:jira_secret")


def test_tampered_ciphertext_is_refused() -> None:
    ring = Keyring([("a", KEY_A)])
    blob = bytearray(ring.encrypt("secret", "r"))
    blob[-1] ^= 1
    with pytest.raises(DecryptionError):
        ring.decrypt(bytes(blob), "r")


def test_wrong_key_is_refused_not_misread() -> None:
    blob = Keyring([("a", KEY_A)]).encrypt("secret", "r")
    with pytest.raises(DecryptionError, match="key 'a'"):
        Keyring([("a", KEY_B)]).decrypt(blob, "r")
    with pytest.raises(DecryptionError, match="not configured"):
        Keyring([("b", KEY_B)]).decrypt(blob, "r")


def test_first_key_encrypts_all_decrypt() -> None:
    old = Keyring([("old", KEY_A)]).encrypt("secret", "r")
    ring = Keyring([("new", KEY_B), ("old", KEY_A)])
    assert ring.decrypt(old, "r") == "secret"
    assert ring.needs_rotation(old)
    assert not ring.needs_rotation(ring.encrypt("secret", "r"))


def test_truncated_blob_is_a_clear_error() -> None:
    with pytest.raises(DecryptionError, match="truncated"):
        Keyring([("a", KEY_A)]).decrypt(b"\x01a123", "r")


def test_generated_key_line_is_usable() -> None:
    kid, key = generate_key_line().split(":")
    assert len(base64.b64decode(key)) == 32
    assert kid


def test_key_file_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, key_file=tmp_path / "var" / "encryption.key")
    with pytest.raises(ConfigError):
        load_keyring(settings)  # not created unless asked
    ring = load_keyring(settings, create=True)
    path = tmp_path / "var" / "encryption.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    blob = ring.encrypt("x", "r")
    assert load_keyring(settings, create=True).decrypt(blob, "r") == "x"


def test_derived_keys_are_stable_and_separate_per_purpose() -> None:
    ring = Keyring([("a", KEY_A), ("b", KEY_B)])
    digest_key = ring.derive_key("url digest")
    assert digest_key == Keyring([("a", KEY_A)]).derive_key("url digest")
    assert digest_key != ring.derive_key("something else")
    assert digest_key != ring.derive_key("url digest", "b")
    assert digest_key != KEY_A
    assert len(digest_key) == 32

"""Random credentials and their digests, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_TOKEN_PREFIX = "tm_"  # noqa: S105  (a visible prefix, not a secret)


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_jira_secret() -> str:
    return secrets.token_urlsafe(32)


def new_ingest_token() -> str:
    return "tmi_" + secrets.token_urlsafe(32)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())

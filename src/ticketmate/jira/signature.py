"""The two ways a Jira sender proves it belongs to a workspace, both checked in constant time.

1. `X-Hub-Signature: sha256=<hex>`: HMAC-SHA256 of the raw body with the workspace's Jira
   secret (WebSub format), sent by Jira Cloud and Data Center webhooks that have a secret.
2. The workspace's ingest token, as `Authorization: Bearer <token>` or `?token=<token>`, for
   Jira Automation "Send web request" and Server versions that cannot sign.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from ticketmate.security.tokens import same

SIGNATURE_PREFIX = "sha256="


def body_signature(secret: str, body: bytes) -> str:
    """The header value Jira sends for this body: `sha256=<lower-case hex>`."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    algorithm, _, digest = header.strip().partition("=")
    if algorithm.lower() != "sha256" or not digest:
        return False
    return same(body_signature(secret, body), SIGNATURE_PREFIX + digest.strip().lower())


def token_matches(ingest_token: str, offered: list[str]) -> bool:
    """True when any offered token is the workspace's; every offer is compared in full."""
    matched = False
    for token in offered:
        matched |= same(token, ingest_token)
    return matched


def credentials_match(
    *, secret: str, ingest_token: str, body: bytes, signature: str | None, tokens: list[str]
) -> bool:
    """Either way of proof is enough; both are always computed so timing tells nothing."""
    signed = signature_matches(secret, body, signature)
    tokened = token_matches(ingest_token, tokens)
    return signed or tokened


def burn_comparison(body: bytes, signature: str | None, tokens: list[str]) -> None:
    """Do the work of a real check against throwaway credentials.

    Used when the workspace does not exist, so a 401 for an unknown workspace takes about as
    long as one for a wrong credential.
    """
    throwaway = secrets.token_urlsafe(32)
    credentials_match(
        secret=throwaway, ingest_token=throwaway, body=body, signature=signature, tokens=tokens
    )

"""The workspaces' decrypted Jira credentials, kept in memory while their generation holds.

Authenticating a Jira request needs the workspace's secret and ingest token in the clear; both
are stored encrypted (AES-GCM). Decrypting them for every request costs more than the rest of
the check, so each process keeps what it decrypted under the workspace's configuration
generation (workspaces/generation.py): Regenerate bumps it in the transaction that replaces a
value, and intake reads it in the transaction that authenticates the request, so a new
secret or token applies to the next request on every process. Key rotation re-encrypts the
same plaintext without a bump: what is cached stays right.

The values stay in this process's memory only: never logged, never written anywhere.
"""

from __future__ import annotations

from ticketmate.security.crypto import Keyring
from ticketmate.workspaces.generation_cache import GenerationCache
from ticketmate.workspaces.service import JiraCredentials, ingest_token_aad, secret_aad

DEFAULT_CACHED_WORKSPACES = 1024


class CredentialsCache:
    """workspace id → (generation, credentials), least recently used dropped first."""

    def __init__(self, max_workspaces: int = DEFAULT_CACHED_WORKSPACES) -> None:
        self.decryptions = 0  # how many times credentials were decrypted: a reuse adds none
        self._kept: GenerationCache[JiraCredentials] = GenerationCache(max_workspaces)

    def get(
        self,
        keyring: Keyring,
        workspace_id: str,
        generation: int,
        secret_ciphertext: bytes,
        ingest_token_ciphertext: bytes,
    ) -> JiraCredentials:
        """The workspace's credentials under `generation`, decrypted only when the cached ones
        were read under another. Raises DecryptionError as the keyring does."""
        cached = self._kept.lookup(workspace_id, generation)
        if cached is not None:
            return cached
        credentials = JiraCredentials(
            secret=keyring.decrypt(secret_ciphertext, secret_aad(workspace_id)),
            ingest_token=keyring.decrypt(ingest_token_ciphertext, ingest_token_aad(workspace_id)),
        )
        self.decryptions += 1
        self._kept.keep(workspace_id, generation, credentials)
        return credentials

    def forget(self, workspace_id: str) -> None:
        """Drop what is held for the workspace (its credentials were just replaced here)."""
        self._kept.forget(workspace_id)

    def __len__(self) -> int:
        return len(self._kept)

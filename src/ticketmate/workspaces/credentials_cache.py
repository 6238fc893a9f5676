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

import threading
from collections import OrderedDict

from ticketmate.security.crypto import Keyring
from ticketmate.workspaces.service import JiraCredentials, ingest_token_aad, secret_aad

DEFAULT_CACHED_WORKSPACES = 1024


class CredentialsCache:
    """workspace id → (generation, credentials), least recently used dropped first."""

    def __init__(self, max_workspaces: int = DEFAULT_CACHED_WORKSPACES) -> None:
        self.max_workspaces = max_workspaces
        self.decryptions = 0  # how many times credentials were decrypted: a reuse adds none
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[int, JiraCredentials]] = OrderedDict()

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
        with self._lock:
            cached = self._entries.get(workspace_id)
            if cached is not None and cached[0] == generation:
                self._entries.move_to_end(workspace_id)
                return cached[1]
        credentials = JiraCredentials(
            secret=keyring.decrypt(secret_ciphertext, secret_aad(workspace_id)),
            ingest_token=keyring.decrypt(ingest_token_ciphertext, ingest_token_aad(workspace_id)),
        )
        with self._lock:
            self.decryptions += 1
            current = self._entries.get(workspace_id)
            if current is None or current[0] <= generation:
                self._entries[workspace_id] = (generation, credentials)
                self._entries.move_to_end(workspace_id)
                while len(self._entries) > self.max_workspaces:
                    self._entries.popitem(last=False)
        return credentials

    def forget(self, workspace_id: str) -> None:
        """Drop what is held for the workspace (its credentials were just replaced here)."""
        with self._lock:
            self._entries.pop(workspace_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

"""The workspaces' Jira credentials are decrypted once per generation, not per request, and a
Regenerate applies to the next request on every process sharing the database."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.jira.support import payload, post_signed, post_with_token
from tests.support.factories import MadeUser, MadeWorkspace, bearer
from ticketmate.app import create_app
from ticketmate.config import Settings
from ticketmate.db import Database
from ticketmate.security.crypto import Keyring
from ticketmate.state import Services
from ticketmate.workspaces.service import JiraCredentials

MM = "mattermost_mattermost-plugin-jira__"
CREATED = f"{MM}issue-created.json"
BASE = "/api/v1/workspaces/acme/jira"


class CountingKeyring(Keyring):
    """The real keyring, counting what it decrypts."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        super().__init__(keys)
        self.decrypted = 0

    def decrypt(self, blob: bytes, associated_data: str) -> str:
        self.decrypted += 1
        return super().decrypt(blob, associated_data)


def another_process(settings: Settings) -> Services:
    """A second instance of the service on the same database, with caches of its own."""
    return Services(
        settings=settings, db=Database(settings), keyring=CountingKeyring(settings.configured_keys)
    )


def test_credentials_are_decrypted_once_not_per_request(
    settings: Settings, svc: Services, workspace: MadeWorkspace
) -> None:
    other = another_process(settings)
    keyring = other.keyring
    assert isinstance(keyring, CountingKeyring)
    try:
        with TestClient(create_app(settings, services=other)) as client:
            # The first signed event teaches the workspace its Jira site, which moves the
            # generation on: the credentials are read again once after it.
            for _ in range(2):
                assert post_signed(client, workspace, payload(CREATED)).status_code == 202
            assert keyring.decrypted == 4  # the secret and the token, under two generations
            for _ in range(5):
                assert post_signed(client, workspace, payload(CREATED)).status_code == 202
                assert post_with_token(client, workspace, payload(CREATED)).status_code == 202
    finally:
        other.db.dispose()
    assert keyring.decrypted == 4


def test_a_regenerate_applies_to_the_next_request_on_another_process(
    settings: Settings, svc: Services, workspace: MadeWorkspace, admin: MadeUser
) -> None:
    other = another_process(settings)
    try:
        with (
            TestClient(create_app(settings, services=svc)) as admin_side,
            TestClient(create_app(settings, services=other)) as intake_side,
        ):
            assert post_signed(intake_side, workspace, payload(CREATED)).status_code == 202
            answer = admin_side.post(
                f"{BASE}/connection/regenerate", json={"which": "secret"}, headers=bearer(admin)
            )
            assert answer.status_code == 200, answer.text
            new_secret = answer.json()["secret"]
            assert new_secret != workspace.jira.secret
            # The old secret stops working at once on the other process, the new one works.
            assert post_signed(intake_side, workspace, payload(CREATED)).status_code == 401
            renewed = MadeWorkspace(
                workspace.id,
                workspace.slug,
                workspace.name,
                JiraCredentials(new_secret, workspace.jira.ingest_token),
            )
            assert post_signed(intake_side, renewed, payload(CREATED)).status_code == 202
    finally:
        other.db.dispose()

"""Key rotation with two keys: every secret moves to the new key, interrupted runs resume."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.conftest import TEST_KEY_LINE
from tests.security import webhook_urls as U
from tests.support.factories import make_workspace
from tests.support.processes import cli_env, run_cli
from ticketmate.audit.service import Actor, verify_chain
from ticketmate.models import AuditEntry, TeamsWebhook, Workspace
from ticketmate.security.crypto import Keyring, key_id_of
from ticketmate.security.rotation import RotationError, rotate, rows_to_examine
from ticketmate.state import Services
from ticketmate.teams import webhooks as tm_webhooks
from ticketmate.workspaces.service import jira_credentials

NEW_KEY = os.urandom(32)
ADMIN = Actor("user", None, "ops@example.test")
URLS = [U.LOGIC_APPS, U.POWER_PLATFORM, U.POWER_PLATFORM_CU, U.CONNECTOR_V2, U.OUTLOOK_CONNECTOR]


class Interrupted(Exception):
    """What Ctrl+C would be, in a test."""


def old_ring(svc: Services) -> Keyring:
    return svc.keyring  # key "test1", the one everything was written with


def new_ring(svc: Services) -> Keyring:
    return Keyring([("new", NEW_KEY), *svc.settings.configured_keys])


def only_new() -> Keyring:
    return Keyring([("new", NEW_KEY)])


def populate(svc: Services) -> dict[str, str]:
    """Two workspaces (Jira secret + ingest token each) and five webhooks; url by webhook id."""
    acme = make_workspace(svc, "acme")
    globex = make_workspace(svc, "globex")
    urls = {}
    with svc.db.transaction() as session:
        for n, url in enumerate(URLS):
            webhook = tm_webhooks.create_webhook(
                session,
                old_ring(svc),
                acme.id if n % 2 else globex.id,
                tm_webhooks.WebhookCreate(channel_name=f"#c{n}", url=url),
                allow_loopback=False,
                actor=ADMIN,
            )
            urls[webhook.id] = url
    return urls


def key_ids(svc: Services) -> list[str]:
    with svc.db.transaction() as session:
        blobs = list(session.scalars(select(TeamsWebhook.url_ciphertext)))
        for ws in session.scalars(select(Workspace)):
            blobs += [ws.jira_secret_ciphertext, ws.jira_ingest_token_ciphertext]
    return sorted(key_id_of(b) for b in blobs)


def test_interrupted_rotation_resumes_and_finishes(svc: Services) -> None:
    urls = populate(svc)
    before = {w.slug: jira_credentials(svc.keyring, w) for w in workspaces(svc)}
    assert rows_to_examine(svc.db) == 7
    ring = new_ring(svc)

    # A webhook saved after the new key was configured, before rotation: already current.
    calls: list[int] = []

    def interrupt_after_two_batches(rows: int) -> None:
        calls.append(rows)
        if len(calls) == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        rotate(svc.db, ring, batch_size=2, progress=interrupt_after_two_batches)
    assert calls == [2, 2]  # workspaces (2), then the first two webhooks
    assert key_ids(svc).count("new") == 6  # 2 workspaces x 2 secrets + 2 webhook URLs
    assert key_ids(svc).count("test1") == 3

    # Meanwhile the service keeps working with the mixed state: every secret still decrypts.
    for webhook in webhooks(svc):
        assert tm_webhooks.decrypt_webhook_url(ring, webhook) == urls[webhook.id]

    progress: list[int] = []
    report = rotate(svc.db, ring, batch_size=2, progress=progress.append)
    assert report.complete
    assert sum(progress) == report.examined == 7
    assert report.totals["webhook_urls"] == 3  # only those left; the rest were skipped
    assert report.totals["jira_secrets"] == 0
    assert key_ids(svc) == ["new"] * 9

    # The old key can go now.
    for webhook in webhooks(svc):
        assert tm_webhooks.decrypt_webhook_url(only_new(), webhook) == urls[webhook.id]
        assert webhook.url_digest == tm_webhooks.url_digest(only_new(), urls[webhook.id])
    after = {w.slug: jira_credentials(only_new(), w) for w in workspaces(svc)}
    assert after == before

    again = rotate(svc.db, ring, batch_size=2)
    assert again.rotated == 0
    assert again.totals["url_digests"] == 0


def test_rotation_is_audit_logged_per_workspace_and_globally(svc: Services) -> None:
    populate(svc)
    with pytest.raises(Interrupted):
        rotate(svc.db, new_ring(svc), batch_size=3, progress=_raise)
    rotate(svc.db, new_ring(svc), batch_size=3)
    with svc.db.transaction() as session:
        entries = list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "keys.rotated")
                .order_by(AuditEntry.id)
            )
        )
        assert all(verify_chain(session, w.id).ok for w in session.scalars(select(Workspace)))
        assert verify_chain(session, None).ok
    partial = [e for e in entries if e.workspace_id is None and not e.details["complete"]]
    assert len(partial) == 1
    assert partial[0].details["jira_secrets"] == 2
    final = [e for e in entries if e.workspace_id is None and e.details["complete"]]
    assert final[0].details["webhook_urls"] == 5
    assert final[0].details["primary_kid"] == "new"
    assert final[0].actor_type == "system"
    per_workspace = [e for e in entries if e.workspace_id is not None]
    assert sum(e.details["webhook_urls"] for e in per_workspace) == 5
    assert sum(e.details["jira_ingest_tokens"] for e in per_workspace) == 2
    for entry in entries:
        assert set(entry.details) >= {"webhook_urls", "jira_secrets", "jira_ingest_tokens"}


def _raise(_rows: int) -> None:
    raise Interrupted


def test_duplicates_are_found_after_rotation(svc: Services) -> None:
    populate(svc)
    rotate(svc.db, new_ring(svc))
    acme = next(w for w in workspaces(svc) if w.slug == "globex")
    with svc.db.transaction() as session, pytest.raises(tm_webhooks.TeamsError) as caught:
        tm_webhooks.create_webhook(
            session,
            only_new(),
            acme.id,
            tm_webhooks.WebhookCreate(channel_name="#again", url=U.LOGIC_APPS),
            allow_loopback=False,
            actor=ADMIN,
        )
    assert caught.value.code == "duplicate_webhook_url"


def test_a_secret_that_does_not_decrypt_stops_the_run_naming_the_row(svc: Services) -> None:
    urls = populate(svc)
    victim = sorted(urls)[1]
    with svc.db.transaction() as session:
        blob = bytearray(session.get_one(TeamsWebhook, victim).url_ciphertext)
        blob[-1] ^= 1
        session.execute(
            update(TeamsWebhook).where(TeamsWebhook.id == victim).values(url_ciphertext=bytes(blob))
        )
    with pytest.raises(RotationError) as caught:
        rotate(svc.db, new_ring(svc), batch_size=10)
    message = str(caught.value)
    assert victim in message
    assert "cannot be decrypted" in message
    assert all(url not in message for url in urls.values())
    # The batch with the bad row was rolled back as a whole, never half-written.
    assert key_ids(svc).count("test1") == 5


def test_batch_size_must_be_positive(svc: Services) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        rotate(svc.db, new_ring(svc), batch_size=0)


def workspaces(svc: Services) -> list[Workspace]:
    with svc.db.transaction() as session:
        return list(session.scalars(select(Workspace)))


def webhooks(svc: Services) -> list[TeamsWebhook]:
    with svc.db.transaction() as session:
        return list(session.scalars(select(TeamsWebhook)))


def test_keys_generate_and_rotate_from_the_command_line(
    svc: Services, database_url: str, tmp_path: Path
) -> None:
    generated = run_cli(["keys", "generate", "--kid", "k2026"], cli_env(database_url), tmp_path)
    assert generated.returncode == 0, generated.stderr
    line = generated.stdout.strip()
    kid, encoded = line.split(":")
    assert kid == "k2026"
    assert len(base64.b64decode(encoded)) == 32

    urls = populate(svc)
    env = cli_env(database_url, TICKETMATE_ENCRYPTION_KEYS=f"{line},{TEST_KEY_LINE}")
    rotated = run_cli(["keys", "rotate", "--batch-size", "2"], env, tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    assert "5 webhook URL(s), 2 Jira secret(s), 2 ingest token(s) re-encrypted" in rotated.stdout
    assert "Re-encrypting secrets" in rotated.stderr  # the progress bar
    assert key_ids(svc) == ["k2026"] * 9
    ring = Keyring([("k2026", base64.b64decode(encoded))])
    for webhook in webhooks(svc):
        assert tm_webhooks.decrypt_webhook_url(ring, webhook) == urls[webhook.id]

    rerun = run_cli(["keys", "rotate"], env, tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "0 webhook URL(s), 0 Jira secret(s), 0 ingest token(s)" in rerun.stdout

    # Without the key the secrets were written with, the run stops with one clear line.
    stranger = cli_env(database_url, TICKETMATE_ENCRYPTION_KEYS=TEST_KEY_LINE)
    refused = run_cli(["keys", "rotate"], stranger, tmp_path)
    assert refused.returncode == 1
    assert "error: the Jira secret of workspace" in refused.stderr
    assert "'k2026', which is not configured" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) <= 2  # progress label, then the error

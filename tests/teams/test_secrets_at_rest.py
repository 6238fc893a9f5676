"""Webhook URLs at rest: encrypted and bound to their row, never readable anywhere once saved."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import LargeBinary, String, Text, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.types import JSON

from tests.security import webhook_urls as U
from tests.teams.helpers import BASE, People, add_subscription, add_webhook
from ticketmate.audit.service import Actor
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.models import AuditEntry, Base, TeamsWebhook
from ticketmate.security.crypto import DecryptionError, Keyring, key_id_of
from ticketmate.state import Services
from ticketmate.teams import webhooks

ADMIN = Actor("user", None, "ops@acme.test")


def create(svc: Services, workspace_id: str, url: str, name: str = "#eng") -> TeamsWebhook:
    with svc.db.transaction() as session:
        return webhooks.create_webhook(
            session,
            svc.keyring,
            workspace_id,
            webhooks.WebhookCreate(channel_name=name, url=url),
            allow_loopback=True,
            actor=ADMIN,
        )


def load(svc: Services, webhook_id: str) -> TeamsWebhook:
    with svc.db.transaction() as session:
        found = session.get(TeamsWebhook, webhook_id)
        assert found is not None
        return found


def test_round_trip_through_the_service(svc: Services, people: People) -> None:
    for n, url in enumerate([U.LOGIC_APPS, U.POWER_PLATFORM_CU, U.CONNECTOR_V2]):
        webhook = create(svc, people.acme.id, url, f"#c{n}")
        row = load(svc, webhook.id)
        assert key_id_of(row.url_ciphertext) == svc.keyring.primary_kid
        assert url.encode() not in row.url_ciphertext
        assert webhooks.decrypt_webhook_url(svc.keyring, row) == url
        assert row.url_digest == webhooks.url_digest(svc.keyring, url)
        assert row.url_digest != webhooks.url_digest(Keyring([("other", b"k" * 32)]), url)


def test_same_url_encrypts_differently_in_two_workspaces(svc: Services, people: People) -> None:
    one = load(svc, create(svc, people.acme.id, U.CONNECTOR).id)
    two = load(svc, create(svc, people.globex.id, U.CONNECTOR).id)
    assert one.url_ciphertext != two.url_ciphertext  # fresh nonce, other associated data
    assert one.url_digest == two.url_digest  # the keyed hash is what finds duplicates


def test_a_tampered_ciphertext_is_a_clear_error_never_a_wrong_url(
    svc: Services, people: People
) -> None:
    webhook = create(svc, people.acme.id, U.LOGIC_APPS)
    original = load(svc, webhook.id).url_ciphertext
    for position in (len(original) - 1, len(original) // 2, 20):
        blob = bytearray(original)
        blob[position] ^= 0x40
        with svc.db.transaction() as session:
            session.execute(
                update(TeamsWebhook)
                .where(TeamsWebhook.id == webhook.id)
                .values(url_ciphertext=bytes(blob))
            )
        with pytest.raises(DecryptionError, match="altered"):
            webhooks.decrypt_webhook_url(svc.keyring, load(svc, webhook.id))


def test_a_ciphertext_copied_to_another_row_does_not_decrypt(svc: Services, people: People) -> None:
    first = create(svc, people.acme.id, U.LOGIC_APPS, "#one")
    second = create(svc, people.acme.id, U.CONNECTOR, "#two")
    with svc.db.transaction() as session:
        session.execute(
            update(TeamsWebhook)
            .where(TeamsWebhook.id == second.id)
            .values(url_ciphertext=load(svc, first.id).url_ciphertext)
        )
    with pytest.raises(DecryptionError):
        webhooks.decrypt_webhook_url(svc.keyring, load(svc, second.id))


def test_a_wrong_key_is_a_clear_error(svc: Services, people: People) -> None:
    webhook = load(svc, create(svc, people.acme.id, U.LOGIC_APPS).id)
    kid = svc.keyring.primary_kid
    with pytest.raises(DecryptionError, match=f"key '{kid}'"):
        webhooks.decrypt_webhook_url(Keyring([(kid, b"w" * 32)]), webhook)
    with pytest.raises(DecryptionError, match="not configured"):
        webhooks.decrypt_webhook_url(Keyring([("elsewhere", b"w" * 32)]), webhook)


def scan_rows(svc: Services, needles: list[str]) -> list[str]:
    """Every text, binary and JSON value of every table that contains one of the needles."""
    found = []
    with svc.db.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            columns = [
                c
                for c in table.columns
                if isinstance(c.type, String | Text | LargeBinary | JSON)
                or "json" in type(c.type).__name__.lower()
            ]
            if not columns:
                continue
            for row in connection.execute(select(*columns)):
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    if isinstance(value, bytes | memoryview):
                        text = bytes(value).decode("latin-1")
                    elif isinstance(value, str):
                        text = value
                    else:
                        text = json.dumps(value)
                    found += [f"{table.name}.{column.name}" for n in needles if n in text]
    return found


def sqlite_files(svc: Services) -> list[Path]:
    database = make_url(svc.settings.database_url).database
    assert database
    return [p for p in (Path(database), Path(database + "-wal")) if p.exists()]


def test_the_plaintext_url_is_nowhere_after_save(
    client: TestClient,
    svc: Services,
    people: People,
    auth: dict[str, str],
    sink: TeamsSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    saved_url, saved_sig = U.unique_workflows_url()
    replaced_url, replaced_sig = U.unique_workflows_url()
    sink_url = sink.url("/workflows/SINKSECRETPATH/triggers/manual/paths/invoke") + "?sig=SINKSIG1"
    secrets = [saved_url, saved_sig, replaced_url, replaced_sig, sink_url, "SINKSECRETPATH"]
    secrets += [u.split("/workflows/")[1][:32] for u in (saved_url, replaced_url)]

    responses: list[Any] = []
    webhook = add_webhook(client, auth, saved_url, "#eng")
    tested = add_webhook(client, auth, sink_url, "#sink")
    subscription = add_subscription(client, auth, webhook["id"])
    item = f"{BASE}/webhooks/{webhook['id']}"
    responses += [
        client.get(f"{BASE}/webhooks", headers=auth),
        client.get(item, headers=auth),
        client.patch(item, json={"url": replaced_url, "save_untested": True}, headers=auth),
        client.patch(
            item,
            json={"url": replaced_url, "channel_name": "#e", "save_untested": True},
            headers=auth,
        ),
        client.post(f"{BASE}/webhooks/{tested['id']}/test", headers=auth),
        client.post(f"{BASE}/webhooks/test", json={"url": sink_url}, headers=auth),
        # Refusals quote no URL either.
        client.post(
            f"{BASE}/webhooks",
            json={"channel_name": "#x", "url": saved_url + "&amp;"},
            headers=auth,
        ),
        client.post(
            f"{BASE}/webhooks", json={"channel_name": "#y", "url": replaced_url}, headers=auth
        ),
        client.get(f"{BASE}/subscriptions/{subscription['id']}", headers=auth),
        client.get("/api/v1/workspaces/acme/audit-log", headers=auth),
        client.delete(f"{item}?cascade=true", headers=auth),
    ]
    assert [r.status_code for r in responses] == [
        200,
        200,
        200,
        200,
        200,
        200,
        422,
        409,
        200,
        200,
        204,
    ]
    assert len(sink.received()) == 2

    leaks = [s for r in responses for s in secrets if s in r.text]
    assert leaks == []
    logged = [s for rec in caplog.records for s in secrets if s in rec.getMessage()]
    assert logged == []
    assert caplog.records  # the logs were captured, not silent

    assert scan_rows(svc, secrets) == []
    assert "teams_webhooks.channel_name" in scan_rows(svc, ["#sink"])  # the scan does look
    with svc.db.transaction() as session:
        details = [e.details for e in session.scalars(select(AuditEntry))]
    assert {"url_changed": True, "url_tested": False} in details
    if svc.db.dialect == "sqlite":
        raw = b"".join(p.read_bytes() for p in sqlite_files(svc))
        assert [s for s in secrets if s.encode() in raw] == []
        # The check would see a plaintext if there were one: the channel name is there.
        assert b"#sink" in raw


def test_digest_finds_duplicates_across_keys_before_rotation(svc: Services, people: People) -> None:
    from ticketmate.errors import ApiError

    create(svc, people.acme.id, U.CONNECTOR, "#old")
    rotated = Keyring([("fresh", b"f" * 32), *svc.settings.configured_keys])
    with svc.db.transaction() as session, pytest.raises(ApiError) as caught:
        webhooks.create_webhook(
            session,
            rotated,
            people.acme.id,
            webhooks.WebhookCreate(channel_name="#new", url=U.CONNECTOR),
            allow_loopback=False,
            actor=ADMIN,
        )
    assert caught.value.status_code == 409
    assert caught.value.code == "duplicate_webhook_url"

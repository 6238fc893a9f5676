"""Key rotation: re-encrypt every stored secret with the keyring's first (primary) key.

Secrets at rest: each Teams webhook URL (and its keyed digest, which is derived from the
primary key) and each workspace's Jira secret and ingest token. Rows are handled in small
batches, each committed on its own, so an interrupted run keeps its progress; a re-run skips
what is already on the primary key. A secret that does not decrypt stops the run with the row
named (never the secret): nothing is ever re-encrypted from a wrong plaintext.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ticketmate.audit.service import SYSTEM, Actor, record
from ticketmate.db import Database
from ticketmate.models import TeamsWebhook, Workspace
from ticketmate.security.crypto import DecryptionError, Keyring
from ticketmate.teams.service import url_digest, webhook_url_aad
from ticketmate.workspaces.service import ingest_token_aad, secret_aad

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 100
Progress = Callable[[int], None]


class RotationError(Exception):
    """A stored secret could not be re-encrypted; the message names the row, never the secret."""


@dataclass
class RotationReport:
    primary_kid: str
    examined: int = 0
    # What was re-encrypted (or, for digests, recomputed), in total and per workspace id.
    totals: Counter[str] = field(default_factory=Counter)
    per_workspace: dict[str, Counter[str]] = field(default_factory=dict)
    complete: bool = False

    def count(self, workspace_id: str, what: str) -> None:
        self.totals[what] += 1
        self.per_workspace.setdefault(workspace_id, Counter())[what] += 1

    @property
    def rotated(self) -> int:
        return sum(v for k, v in self.totals.items() if k != "url_digests")


def rows_to_examine(db: Database) -> int:
    """How many rows a run looks at (for a progress bar): every workspace and every webhook."""
    with db.transaction() as session:
        workspaces = session.scalar(select(func.count()).select_from(Workspace)) or 0
        webhooks = session.scalar(select(func.count()).select_from(TeamsWebhook)) or 0
    return int(workspaces) + int(webhooks)


def rotate(
    db: Database,
    keyring: Keyring,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    actor: Actor = SYSTEM,
) -> RotationReport:
    """Re-encrypt what is not on the primary key yet, batch by batch; audit `keys.rotated`.

    `progress` is called after each committed batch with the number of rows it examined; an
    exception raised there (or anywhere) stops the run after the batches already committed.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = RotationReport(primary_kid=keyring.primary_kid)
    try:
        workspaces = _batch_of(Workspace, _rotate_workspace, keyring, report)
        webhooks = _batch_of(TeamsWebhook, _rotate_webhook, keyring, report)
        _in_batches(db, batch_size, progress, report, workspaces)
        _in_batches(db, batch_size, progress, report, webhooks)
        report.complete = True
    finally:
        _record_run(db, report, actor)
    return report


Batch = Callable[[Session, str | None, int], str | None]
Row = TypeVar("Row", Workspace, TeamsWebhook)


def _in_batches(
    db: Database, batch_size: int, progress: Progress | None, report: RotationReport, run: Batch
) -> None:
    after: str | None = None
    while True:
        examined_before = report.examined
        with db.transaction() as session:
            after = run(session, after, batch_size)
        if progress is not None and report.examined > examined_before:
            progress(report.examined - examined_before)
        if after is None:
            return


def _batch_of(
    model: type[Row],
    rotate: Callable[[Keyring, Row, RotationReport], None],
    keyring: Keyring,
    report: RotationReport,
) -> Batch:
    """One batch of `model` rows after the id `after`, locked, each rotated; the last id
    when more may follow."""

    def run(session: Session, after: str | None, limit: int) -> str | None:
        query = select(model).order_by(model.id).limit(limit).with_for_update()
        if after is not None:
            query = query.where(model.id > after)
        rows = list(session.scalars(query))
        for row in rows:
            rotate(keyring, row, report)
            report.examined += 1
        return rows[-1].id if len(rows) == limit else None

    return run


def _rotate_workspace(keyring: Keyring, workspace: Workspace, report: RotationReport) -> None:
    if keyring.needs_rotation(workspace.jira_secret_ciphertext):
        aad = secret_aad(workspace.id)
        plain = _decrypt(keyring, workspace.jira_secret_ciphertext, aad, _ws(workspace, "secret"))
        workspace.jira_secret_ciphertext = keyring.encrypt(plain, aad)
        report.count(workspace.id, "jira_secrets")
    if keyring.needs_rotation(workspace.jira_ingest_token_ciphertext):
        aad = ingest_token_aad(workspace.id)
        where = _ws(workspace, "ingest token")
        plain = _decrypt(keyring, workspace.jira_ingest_token_ciphertext, aad, where)
        workspace.jira_ingest_token_ciphertext = keyring.encrypt(plain, aad)
        report.count(workspace.id, "jira_ingest_tokens")


def _ws(workspace: Workspace, what: str) -> str:
    return f"the Jira {what} of workspace {workspace.slug}"


def _rotate_webhook(keyring: Keyring, webhook: TeamsWebhook, report: RotationReport) -> None:
    aad = webhook_url_aad(webhook.workspace_id, webhook.id)
    where = f"the URL of webhook {webhook.id} ({webhook.channel_name!r})"
    if keyring.needs_rotation(webhook.url_ciphertext):
        url = _decrypt(keyring, webhook.url_ciphertext, aad, where)
        webhook.url_ciphertext = keyring.encrypt(url, aad)
        webhook.url_digest = url_digest(keyring, url)
        report.count(webhook.workspace_id, "webhook_urls")
        return
    # Already on the primary key: its digest normally is too, but one made some other way
    # (e.g. an older derivation) would let duplicates slip through, so it is checked.
    url = _decrypt(keyring, webhook.url_ciphertext, aad, where)
    digest = url_digest(keyring, url)
    if digest != webhook.url_digest:
        webhook.url_digest = digest
        report.count(webhook.workspace_id, "url_digests")


def _decrypt(keyring: Keyring, blob: bytes, aad: str, where: str) -> str:
    try:
        return keyring.decrypt(blob, aad)
    except DecryptionError as exc:
        raise RotationError(f"{where} cannot be decrypted: {exc}") from None


def _record_run(db: Database, report: RotationReport, actor: Actor) -> None:
    # Recorded even for an interrupted run: what was re-encrypted stays re-encrypted.
    try:
        with db.transaction() as session:
            for workspace_id, counts in sorted(report.per_workspace.items()):
                record(
                    session,
                    workspace_id=workspace_id,
                    actor=actor,
                    action="keys.rotated",
                    details=_details(report, counts),
                )
            summary = _details(report, report.totals)
            summary["workspaces"] = len(report.per_workspace)
            summary["rows_examined"] = report.examined
            record(session, workspace_id=None, actor=actor, action="keys.rotated", details=summary)
    except Exception:
        if report.complete:
            raise
        log.exception("could not record the interrupted key rotation in the audit log")


def _details(report: RotationReport, counts: Counter[str]) -> dict[str, Any]:
    return {
        "primary_kid": report.primary_kid,
        "webhook_urls": counts["webhook_urls"],
        "url_digests": counts["url_digests"],
        "jira_secrets": counts["jira_secrets"],
        "jira_ingest_tokens": counts["jira_ingest_tokens"],
        "complete": report.complete,
    }

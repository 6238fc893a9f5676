"""Helpers for the Jira intake tests: real captured payloads, signed requests, stored rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from httpx2 import Response

from tests.support.factories import MadeWorkspace
from ticketmate.jira.signature import body_signature
from ticketmate.models import JiraEventRecord
from ticketmate.state import Services

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "jira-payloads"
INTAKE = "/api/webhooks/jira"


def payload_names() -> list[str]:
    return sorted(path.name for path in PAYLOADS.glob("*.json"))


def payload_bytes(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def payload(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(payload_bytes(name))
    return loaded


def as_bytes(body: bytes | dict[str, Any]) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def post_signed(
    client: TestClient,
    workspace: MadeWorkspace,
    body: bytes | dict[str, Any],
    *,
    identifier: str | None = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """POST as Jira Cloud / Data Center does: X-Hub-Signature with the workspace's secret."""
    raw = as_bytes(body)
    sent = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Hub-Signature": body_signature(workspace.jira.secret, raw),
        "User-Agent": "Atlassian Webhook HTTP Client",
    }
    if identifier is not None:
        sent["X-Atlassian-Webhook-Identifier"] = identifier
    sent.update(headers or {})
    return client.post(
        INTAKE, params={"workspace": workspace.slug, **(params or {})}, content=raw, headers=sent
    )


def post_with_token(
    client: TestClient,
    workspace: MadeWorkspace,
    body: bytes | dict[str, Any],
    *,
    in_query: bool = False,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """POST as Jira Automation does: the ingest token as a bearer header or ?token=."""
    query = {"workspace": workspace.slug, **(params or {})}
    sent = {"Content-Type": "application/json"}
    if in_query:
        query["token"] = workspace.jira.ingest_token
    else:
        sent["Authorization"] = f"Bearer {workspace.jira.ingest_token}"
    sent.update(headers or {})
    return client.post(INTAKE, params=query, content=as_bytes(body), headers=sent)


def stored(svc: Services, event_id: str) -> JiraEventRecord:
    with svc.db.transaction() as session:
        record = session.get(JiraEventRecord, event_id)
        assert record is not None, event_id
        return record


def all_stored(svc: Services) -> list[JiraEventRecord]:
    from sqlalchemy import select

    with svc.db.transaction() as session:
        return list(session.scalars(select(JiraEventRecord).order_by(JiraEventRecord.id)))


def envelope_of(svc: Services, response: Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    record = stored(svc, response.json()["event_id"])
    assert record.status == "routed", record.reason
    assert record.envelope is not None
    return record.envelope


def assert_error(response: Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body

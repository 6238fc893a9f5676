"""Test Connection against a real local HTTP server answering as Teams does."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tests.security import webhook_urls as U
from tests.teams.helpers import BASE, People, add_webhook, assert_error
from ticketmate.app import create_app
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.models import AuditEntry, TeamsWebhook
from ticketmate.state import Services

WORKFLOWS_PATH = "/workflows/7f3e/triggers/manual/paths/invoke"
CONNECTOR_PATH = "/webhookb2/abc@def/IncomingWebhook/0123/4567"
THROTTLED_TEXT = (
    "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error "
    "429 with ContextId tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef.0"
)


def run_test(client: TestClient, auth: dict[str, str], url: str) -> dict[str, Any]:
    response = client.post(f"{BASE}/webhooks/test", json={"url": url}, headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"ok", "status_code", "latency_ms", "message"}
    return body


def entries_of_tests(svc: Services) -> list[AuditEntry]:
    with svc.db.transaction() as session:
        return list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "teams.webhook.tested")
                .order_by(AuditEntry.seq)
            )
        )


ANSWERS = [
    pytest.param(CONNECTOR_PATH, Answer(200, "1"), True, 200, "posted the card", id="200 1"),
    pytest.param(WORKFLOWS_PATH, Answer(202, ""), True, 202, "202 Accepted", id="202"),
    pytest.param(
        CONNECTOR_PATH, Answer(200, THROTTLED_TEXT), False, 200, "HTTP error 429", id="200 error"
    ),
    pytest.param(WORKFLOWS_PATH, Answer(404, ""), False, 404, "removed", id="404"),
    pytest.param(CONNECTOR_PATH, Answer(410, "Gone"), False, 410, "removed", id="410"),
    pytest.param(
        WORKFLOWS_PATH,
        Answer(401, '{"error":{"code":"AuthorizationFailed"}}'),
        False,
        401,
        "signature",
        id="401",
    ),
    pytest.param(
        CONNECTOR_PATH,
        Answer(403, "Webhook Url is not updated"),
        False,
        403,
        "no longer valid",
        id="403 not updated",
    ),
    pytest.param(WORKFLOWS_PATH, Answer(429, ""), False, 429, "throttled", id="429"),
    pytest.param(WORKFLOWS_PATH, Answer(503, ""), False, 503, "temporary", id="503"),
    pytest.param(
        WORKFLOWS_PATH,
        Answer(302, "", {"Location": "http://127.0.0.1:9/elsewhere"}),
        False,
        302,
        "redirect",
        id="redirect not followed",
    ),
]


@pytest.mark.parametrize(("path", "answer", "ok", "status", "says"), ANSWERS)
def test_url_test_explains_each_answer(
    client: TestClient,
    svc: Services,
    people: People,
    auth: dict[str, str],
    sink: TeamsSink,
    path: str,
    answer: Answer,
    ok: bool,
    status: int,
    says: str,
) -> None:
    sink.script(path, answer)
    body = run_test(client, auth, sink.url(path) + "?sig=s3cr3t")
    assert body["ok"] is ok
    assert body["status_code"] == status
    assert says in body["message"]
    assert body["latency_ms"] >= 0
    assert len(sink.received()) == 1  # one request, never a redirect followed
    [entry] = entries_of_tests(svc)
    assert entry.details["ok"] is ok
    assert entry.details["status_code"] == status
    assert entry.details["saved"] is False
    assert (entry.details["error_kind"] is None) is ok
    assert entry.target_id is None
    assert entry.actor_email == people.admin.email
    assert "s3cr3t" not in str(entry.details)
    assert "7f3e" not in str(entry.details)


def test_connector_error_text_is_quoted_without_urls(
    client: TestClient, people: People, auth: dict[str, str], sink: TeamsSink
) -> None:
    sink.script(
        CONNECTOR_PATH,
        Answer(200, f"Webhook message delivery failed with error: see {sink.url('/x?sig=zz')}"),
    )
    body = run_test(client, auth, sink.url(CONNECTOR_PATH))
    assert body["ok"] is False
    assert "Webhook message delivery failed" in body["message"]
    assert "127.0.0.1" not in body["message"]
    assert "sig=zz" not in body["message"]


def test_the_sample_card_uses_the_delivery_envelope(
    client: TestClient, people: People, auth: dict[str, str], sink: TeamsSink
) -> None:
    run_test(client, auth, sink.url(WORKFLOWS_PATH))
    [request] = sink.received(WORKFLOWS_PATH)
    assert request.headers["Content-Type"] == "application/json"
    message = request.json()
    assert set(message) == {"type", "attachments"}
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert "contentUrl" in attachment
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert card["msteams"] == {"width": "Full"}
    assert card["body"][0]["text"] == "Ticket MATE test message"
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["Workspace"] == "Acme Corp"
    assert facts["Sent at"].endswith("Z")
    assert len(request.body) < 28 * 1024


def test_a_silent_teams_is_a_timeout_with_no_status(
    svc: Services, people: People, auth: dict[str, str], sink: TeamsSink
) -> None:
    timeout, answer_after = 0.5, 20.0
    svc.settings = svc.settings.model_copy(update={"delivery_timeout_seconds": timeout})
    sink.script(WORKFLOWS_PATH, Answer(202, "", delay_seconds=answer_after))
    with TestClient(create_app(svc.settings, services=svc)) as client:
        body = run_test(client, auth, sink.url(WORKFLOWS_PATH))
    assert body["ok"] is False
    assert body["status_code"] is None
    assert "did not answer within 0.5 s" in body["message"]
    # Given up at the timeout, long before the answer would have come; bounds relative to
    # both, wide enough for a loaded machine.
    assert timeout * 1000 * 0.9 <= body["latency_ms"] < answer_after * 1000 / 2
    [entry] = entries_of_tests(svc)
    assert entry.details["error_kind"] == "timeout"
    assert entry.details["status_code"] is None


def test_nobody_listening_is_a_connection_failure(
    client: TestClient, people: People, auth: dict[str, str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    body = run_test(client, auth, f"http://127.0.0.1:{port}/workflows/gone")
    assert body["ok"] is False
    assert body["status_code"] is None
    assert "connect" in body["message"].lower()


def test_invalid_url_is_422_and_nothing_is_sent(
    client: TestClient, svc: Services, people: People, auth: dict[str, str], sink: TeamsSink
) -> None:
    response = client.post(
        f"{BASE}/webhooks/test", json={"url": U.LOGIC_APPS.replace("https:", "http:")}, headers=auth
    )
    assert_error(response, 422, "invalid_webhook_url")
    assert_error(
        client.post(f"{BASE}/webhooks/test", json={"url": "x", "y": 1}, headers=auth),
        422,
        "validation_error",
    )
    assert sink.received() == []
    assert entries_of_tests(svc) == []


def webhook_row(svc: Services, webhook_id: str) -> TeamsWebhook:
    with svc.db.transaction() as session:
        row = session.get(TeamsWebhook, webhook_id)
        assert row is not None
        return row


def test_saved_webhook_test_updates_its_health(
    client: TestClient, svc: Services, people: People, auth: dict[str, str], sink: TeamsSink
) -> None:
    webhook = add_webhook(client, auth, sink.url(WORKFLOWS_PATH) + "?sig=abc", "#eng")
    url = f"{BASE}/webhooks/{webhook['id']}/test"
    sink.script(WORKFLOWS_PATH, Answer(404, ""), Answer(429, ""), Answer(202, ""))

    first = client.post(url, headers=auth).json()
    assert (first["ok"], first["status_code"]) == (False, 404)
    assert "removed" in first["message"]
    health = client.get(f"{BASE}/webhooks/{webhook['id']}", headers=auth).json()["health"]
    assert health["consecutive_failures"] == 1
    assert health["last_failure_at"].endswith("Z")
    assert "removed" in health["last_failure_reason"]
    assert health["last_success_at"] is None

    second = client.post(url, headers=auth).json()
    assert "throttled" in second["message"]
    assert webhook_row(svc, webhook["id"]).consecutive_failures == 2

    third = client.post(url, headers=auth).json()
    assert (third["ok"], third["status_code"]) == (True, 202)
    row = webhook_row(svc, webhook["id"])
    assert row.consecutive_failures == 0
    assert row.last_success_at is not None
    assert row.last_failure_at is not None  # history kept

    [one, two, three] = entries_of_tests(svc)
    assert [e.target_id for e in (one, two, three)] == [webhook["id"]] * 3
    assert [e.details["status_code"] for e in (one, two, three)] == [404, 429, 202]
    assert [e.details["error_kind"] for e in (one, two, three)] == ["removed", "throttled", None]
    assert all(e.details["saved"] and e.details["channel_name"] == "#eng" for e in (one, two))
    assert len(sink.received(WORKFLOWS_PATH)) == 3
    assert {r.query for r in sink.received(WORKFLOWS_PATH)} == {"sig=abc"}


def test_saved_test_of_a_missing_webhook_is_404(
    client: TestClient, people: People, auth: dict[str, str], sink: TeamsSink
) -> None:
    response = client.post(f"{BASE}/webhooks/{'0' * 26}/test", headers=auth)
    assert_error(response, 404, "webhook_not_found")
    assert sink.received() == []


def test_tampered_url_gives_a_clear_error_and_sends_nothing(
    client: TestClient, svc: Services, people: People, auth: dict[str, str], sink: TeamsSink
) -> None:
    webhook = add_webhook(client, auth, sink.url(WORKFLOWS_PATH), "#eng")
    blob = bytearray(webhook_row(svc, webhook["id"]).url_ciphertext)
    blob[-5] ^= 0x01
    with svc.db.transaction() as session:
        session.execute(
            update(TeamsWebhook)
            .where(TeamsWebhook.id == webhook["id"])
            .values(url_ciphertext=bytes(blob))
        )
    response = client.post(f"{BASE}/webhooks/{webhook['id']}/test", headers=auth)
    error = assert_error(response, 409, "webhook_url_unreadable")
    assert "cannot be decrypted" in error["message"]
    assert sink.received() == []
    # The list still shows it (masked values need no decryption).
    assert client.get(f"{BASE}/webhooks/{webhook['id']}", headers=auth).status_code == 200


class RawRequestLine:
    """A bare HTTP server recording request lines exactly as they arrived on the wire."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.port = self.server.getsockname()[1]
        self.lines: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.lines.append(data.split(b"\r\n", 1)[0])
                conn.sendall(
                    b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )

    def __enter__(self) -> RawRequestLine:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.close()


@pytest.fixture
def raw_server() -> Iterator[RawRequestLine]:
    with RawRequestLine() as server:
        yield server


def test_the_query_reaches_teams_byte_for_byte(
    client: TestClient, people: People, auth: dict[str, str], raw_server: RawRequestLine
) -> None:
    target = (
        "/workflows/abc/triggers/manual/paths/invoke"
        "?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=a%2Bb%3D"
    )
    body = run_test(client, auth, f"http://127.0.0.1:{raw_server.port}{target}")
    assert body["ok"] is True
    assert raw_server.lines == [f"POST {target} HTTP/1.1".encode()]

"""POST /api/webhooks/jira: limits, content types, authentication, storage, idempotency."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.types import Message

from tests.jira.conftest import RoutingSpy
from tests.jira.support import (
    INTAKE,
    all_stored,
    assert_error,
    payload,
    payload_bytes,
    post_signed,
    post_with_token,
    stored,
)
from tests.support.factories import MadeWorkspace, make_workspace
from ticketmate.errors import ApiError
from ticketmate.jira import intake, intake_writer
from ticketmate.jira import service as jira_events
from ticketmate.jira.signature import body_signature
from ticketmate.state import Services

MM = "mattermost_mattermost-plugin-jira__"
CREATED = f"{MM}issue-created.json"


def delivery_ids(svc: Services, event_id: str) -> list[str]:
    with svc.db.transaction() as session:
        return jira_events.delivery_ids(session, [event_id])[event_id]


# ---------------------------------------------------------------------------------------------
# 413: checked first, reading no further than the limit


def test_body_over_one_mib_is_413_before_authentication(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    big = b'{"a": "' + b"x" * (1024 * 1024) + b'"}'
    for params in ({"workspace": workspace.slug}, {"workspace": "nope"}, {}):
        response = client.post(
            INTAKE, params=params, content=big, headers={"Content-Type": "text/plain"}
        )
        assert_error(response, 413, "payload_too_large")
    assert all_stored(svc) == []


def test_body_of_exactly_one_mib_is_accepted(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    prefix = b'{"webhookEvent": "sprint_started", "pad": "'
    body = prefix + b"x" * (1024 * 1024 - len(prefix) - 2) + b'"}'
    assert len(body) == 1024 * 1024
    response = post_signed(client, workspace, body)
    assert response.status_code == 202, response.text


def test_chunked_body_over_the_limit_is_413(client: TestClient, workspace: MadeWorkspace) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 65536

    response = client.post(
        INTAKE,
        params={"workspace": workspace.slug},
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 413, "payload_too_large")


def _request_with_chunks(
    count: int, size: int, headers: list[tuple[bytes, bytes]]
) -> tuple[Request, list[int]]:
    consumed = [0]

    async def receive() -> Message:
        consumed[0] += 1
        more = consumed[0] < count
        return {"type": "http.request", "body": b"x" * size, "more_body": more}

    scope = {"type": "http", "method": "POST", "path": INTAKE, "headers": headers}
    return Request(scope, receive), consumed


@pytest.mark.anyio
async def test_the_stream_is_read_no_further_than_the_limit() -> None:
    request, consumed = _request_with_chunks(1000, 64 * 1024, [])
    with pytest.raises(ApiError) as raised:
        await intake.read_limited_body(request)
    assert raised.value.status_code == 413
    # 1 MiB is 16 chunks of 64 KiB: the 17th crosses the limit, and reading stops there.
    assert consumed[0] == 17


@pytest.mark.anyio
@pytest.mark.parametrize("length", [b"1048577", b"9" * 5000])
async def test_a_declared_length_over_the_limit_is_refused_unread(length: bytes) -> None:
    request, consumed = _request_with_chunks(1, 10, [(b"content-length", length)])
    with pytest.raises(ApiError) as raised:
        await intake.read_limited_body(request)
    assert raised.value.status_code == 413
    assert consumed[0] == 0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---------------------------------------------------------------------------------------------
# 415


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "text/json"],
)
def test_wrong_content_type_is_415(
    client: TestClient, svc: Services, workspace: MadeWorkspace, content_type: str
) -> None:
    response = post_signed(
        client, workspace, payload(CREATED), headers={"Content-Type": content_type}
    )
    assert_error(response, 415, "unsupported_media_type")
    assert all_stored(svc) == []


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=UTF-8",
        "APPLICATION/JSON;charset=utf-8",
        "application/vnd.atlassian.webhook+json",
        None,  # missing: read as JSON (documented in intake.py)
    ],
)
def test_json_content_types_are_accepted(
    client: TestClient, workspace: MadeWorkspace, content_type: str | None
) -> None:
    raw = payload_bytes(CREATED)
    headers = {"X-Hub-Signature": body_signature(workspace.jira.secret, raw)}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = client.post(
        INTAKE, params={"workspace": workspace.slug}, content=raw, headers=headers
    )
    assert response.status_code == 202, response.text


# ---------------------------------------------------------------------------------------------
# 401: one body for every case


def _unauthenticated_cases(client: TestClient, workspace: MadeWorkspace) -> list[Any]:
    raw = payload_bytes(CREATED)
    other = make_workspace_credentials_elsewhere(client)
    json_header = {"Content-Type": "application/json"}
    signed = {**json_header, "X-Hub-Signature": body_signature(workspace.jira.secret, raw)}
    cases: list[tuple[dict[str, str], dict[str, str]]] = [
        ({"workspace": "nope"}, signed),  # unknown workspace, valid-looking signature
        ({}, signed),  # no workspace at all
        ({"workspace": "../etc\x00"}, signed),  # not even a slug
        ({"workspace": workspace.slug}, json_header),  # no credentials
        (
            {"workspace": workspace.slug},
            {**json_header, "X-Hub-Signature": body_signature("wrong", raw)},
        ),
        (
            {"workspace": workspace.slug},
            {
                **json_header,
                "X-Hub-Signature": "sha1=" + body_signature(workspace.jira.secret, raw)[7:],
            },
        ),
        ({"workspace": workspace.slug}, {**json_header, "X-Hub-Signature": "sha256="}),
        ({"workspace": workspace.slug}, {**json_header, "Authorization": "Bearer tmi_wrong"}),
        ({"workspace": workspace.slug, "token": "tmi_wrong"}, json_header),
        (
            {"workspace": workspace.slug},
            {**json_header, "Authorization": f"Basic {workspace.jira.ingest_token}"},
        ),
        # Another workspace's credentials do not open this one.
        ({"workspace": workspace.slug, "token": other.jira.ingest_token}, json_header),
        (
            {"workspace": workspace.slug},
            {**json_header, "X-Hub-Signature": body_signature(other.jira.secret, raw)},
        ),
    ]
    return [client.post(INTAKE, params=p, content=raw, headers=h) for p, h in cases]


def make_workspace_credentials_elsewhere(client: TestClient) -> MadeWorkspace:
    svc: Services = client.app.state.services  # type: ignore[attr-defined]
    return make_workspace(svc, "globex")


def test_every_unauthenticated_request_gets_the_same_401(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    responses = _unauthenticated_cases(client, workspace)
    bodies = {json.dumps(assert_error(r, 401, "unauthorized"), sort_keys=True) for r in responses}
    assert len(bodies) == 1
    assert {r.headers["www-authenticate"] for r in responses} == {"Bearer"}
    assert all_stored(svc) == []


def test_a_body_changed_after_signing_is_401(client: TestClient, workspace: MadeWorkspace) -> None:
    raw = payload_bytes(CREATED)
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature": body_signature(workspace.jira.secret, raw),
    }
    tampered = raw.replace(b"Unit test summary", b"Unit test summarY")
    response = client.post(
        INTAKE, params={"workspace": workspace.slug}, content=tampered, headers=headers
    )
    assert_error(response, 401, "unauthorized")


def test_bearer_token_and_query_token_both_authenticate(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    for in_query in (False, True):
        response = post_with_token(client, workspace, payload(CREATED), in_query=in_query)
        assert response.status_code == 202, response.text


def test_upper_case_signature_hex_is_accepted(client: TestClient, workspace: MadeWorkspace) -> None:
    raw = payload_bytes(CREATED)
    signature = "sha256=" + body_signature(workspace.jira.secret, raw)[7:].upper()
    response = client.post(
        INTAKE,
        params={"workspace": workspace.slug},
        content=raw,
        headers={"Content-Type": "application/json", "X-Hub-Signature": signature},
    )
    assert response.status_code == 202, response.text


def test_the_invalid_json_check_comes_after_authentication(
    client: TestClient, workspace: MadeWorkspace
) -> None:
    response = client.post(
        INTAKE,
        params={"workspace": workspace.slug},
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 401, "unauthorized")


# ---------------------------------------------------------------------------------------------
# 400


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (b"{not json", "invalid_json", "not valid JSON"),
        (b"", "invalid_json", "empty"),
        (b"   ", "invalid_json", "empty"),
        (b"[1, 2]", "not_json_object", "an array"),
        (b'"text"', "not_json_object", "a string"),
        (b"42", "not_json_object", "a number"),
        (b"null", "not_json_object", "null"),
        (b"true", "not_json_object", "a boolean"),
        (b'{"a": NaN}', "invalid_json", "NaN"),
        (b'{"a": Infinity}', "invalid_json", "Infinity"),
        (b'{"a": "\xff\xfe"}', "invalid_json", "UTF-8"),
        (b'{"a": ' + b"9" * 5000 + b"}", "invalid_json", "digits"),
        (b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}", "invalid_json", "nests deeper"),
        (b"[" * 200_000 + b"]" * 200_000, "invalid_json", "nests deeper"),
    ],
)
def test_bad_bodies_are_400_naming_the_problem(
    client: TestClient, svc: Services, workspace: MadeWorkspace, body: bytes, code: str, words: str
) -> None:
    response = post_signed(client, workspace, body)
    error = assert_error(response, 400, code)
    assert words in error["error"]["message"]
    assert all_stored(svc) == []


def test_a_byte_order_mark_is_tolerated(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    response = post_signed(client, workspace, b"\xef\xbb\xbf" + payload_bytes(CREATED))
    assert response.status_code == 202, response.text


# ---------------------------------------------------------------------------------------------
# Storage


def test_stored_with_the_headers_that_matter_and_no_credentials(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    response = post_signed(
        client,
        workspace,
        payload(CREATED),
        identifier="hook-1",
        params={"token": workspace.jira.ingest_token},
        headers={
            "Authorization": f"Bearer {workspace.jira.ingest_token}",
            "X-Atlassian-Webhook-Retry": "2",
            "X-Atlassian-Webhook-Flow": "Primary",
            "Cookie": "tm_session=abc",
            "X-Other": "x",
        },
    )
    assert response.status_code == 202, response.text
    record = stored(svc, response.json()["event_id"])
    assert record.headers == {
        "content-type": "application/json; charset=utf-8",
        "user-agent": "Atlassian Webhook HTTP Client",
        "x-atlassian-webhook-identifier": "hook-1",
        "x-atlassian-webhook-retry": "2",
        "x-atlassian-webhook-flow": "Primary",
    }
    assert record.workspace_id == workspace.id
    everything = json.dumps(
        [record.headers, record.envelope, record.raw_body, record.reason], ensure_ascii=False
    )
    assert workspace.jira.ingest_token not in everything
    assert workspace.jira.secret not in everything
    assert "sha256=" not in everything


def test_ignored_and_rejected_events_are_stored_and_answered_202(
    client: TestClient, svc: Services, workspace: MadeWorkspace, routing: RoutingSpy
) -> None:
    ignored = post_signed(client, workspace, {"webhookEvent": "sprint_started", "sprint": {}})
    rejected = post_signed(client, workspace, {"webhookEvent": "jira:issue_created", "issue": "X"})
    for response, status in ((ignored, "ignored"), (rejected, "rejected")):
        assert response.status_code == 202, response.text
        assert response.json()["deliveries"] == 0
        record = stored(svc, response.json()["event_id"])
        assert record.status == status
        assert record.reason
        assert record.envelope is None
    assert routing.calls == []


def test_unicode_is_stored_intact(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    body = payload(CREATED)
    body["issue"]["fields"]["summary"] = "Привет, café — naïve ☃"
    raw = json.dumps(body, ensure_ascii=False).encode()
    response = post_signed(client, workspace, raw)
    record = stored(svc, response.json()["event_id"])
    assert record.summary == "Привет, café — naïve ☃"
    assert record.raw_body == raw.decode()


def test_nul_escapes_are_stored_without_breaking_the_database(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    body = payload(CREATED)
    body["issue"]["fields"]["summary"] = "nul\u0000 and \ud800 surrogate"
    body["issue"]["key"] = "K\u0000-1"
    response = post_signed(client, workspace, json.dumps(body).encode())
    assert response.status_code == 202, response.text
    record = stored(svc, response.json()["event_id"])
    assert record.summary == "nul and \ufffd surrogate"
    assert record.issue_key == "K-1"


# ---------------------------------------------------------------------------------------------
# Idempotency on X-Atlassian-Webhook-Identifier


def test_a_repeated_identifier_is_a_duplicate(
    client: TestClient, svc: Services, workspace: MadeWorkspace, routing: RoutingSpy
) -> None:
    first = post_signed(client, workspace, payload(CREATED), identifier="same-id")
    assert first.status_code == 202
    assert first.json()["deliveries"] == 2
    retry = post_signed(
        client,
        workspace,
        payload(CREATED),
        identifier="same-id",
        headers={"X-Atlassian-Webhook-Retry": "1"},
    )
    assert retry.status_code == 200, retry.text
    assert retry.json() == {"duplicate": True, "event_id": first.json()["event_id"]}
    assert len(all_stored(svc)) == 1
    assert len(routing.calls) == 1
    assert routing.woken == 1


def test_a_duplicate_is_detected_whatever_the_new_body(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    first = post_signed(client, workspace, payload(CREATED), identifier="same-id")
    again = post_signed(client, workspace, {"webhookEvent": "sprint_started"}, identifier="same-id")
    assert again.json() == {"duplicate": True, "event_id": first.json()["event_id"]}


def test_identifiers_are_per_workspace(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    other = make_workspace(svc, "globex")
    for target in (workspace, other):
        assert post_signed(client, target, payload(CREATED), identifier="x").status_code == 202
    assert len(all_stored(svc)) == 2


def test_without_identifier_there_is_no_deduplication(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    for _ in range(2):
        assert post_signed(client, workspace, payload(CREATED)).status_code == 202
    assert len(all_stored(svc)) == 2


def test_an_overlong_identifier_still_deduplicates(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    identifier = "i" * 5000
    first = post_signed(client, workspace, payload(CREATED), identifier=identifier)
    second = post_signed(client, workspace, payload(CREATED), identifier=identifier)
    assert second.json() == {"duplicate": True, "event_id": first.json()["event_id"]}
    record = stored(svc, first.json()["event_id"])
    assert record.jira_event_id is not None
    assert record.jira_event_id.startswith("sha256:")


# ---------------------------------------------------------------------------------------------
# One comment reported twice


def _same_comment_twice() -> tuple[dict[str, Any], dict[str, Any]]:
    comment_created = payload(f"{MM}server-comment-created.json")
    issue_commented = payload(f"{MM}server-issue-updated-issue-commented.json")
    issue_commented["comment"] = copy.deepcopy(comment_created["comment"])
    return comment_created, issue_commented


def test_one_comment_reported_twice_is_routed_once(
    client: TestClient, svc: Services, workspace: MadeWorkspace, routing: RoutingSpy
) -> None:
    comment_created, issue_commented = _same_comment_twice()
    first = post_signed(client, workspace, comment_created, identifier="a")
    second = post_signed(client, workspace, issue_commented, identifier="b")
    assert first.json()["deliveries"] == 2
    assert second.status_code == 202
    assert second.json()["deliveries"] == 0
    record = stored(svc, second.json()["event_id"])
    assert record.status == "routed"
    assert record.reason == (
        f"Duplicate of event {first.json()['event_id']} (same comment); not routed again."
    )
    assert [event_id for event_id, _ in routing.calls] == [first.json()["event_id"]]


def test_different_comments_are_each_routed(
    client: TestClient, workspace: MadeWorkspace, routing: RoutingSpy
) -> None:
    comment_created, issue_commented = _same_comment_twice()
    issue_commented["comment"]["id"] = "99999"
    post_signed(client, workspace, comment_created)
    post_signed(client, workspace, issue_commented)
    assert len(routing.calls) == 2


def test_same_comment_in_another_workspace_is_routed(
    client: TestClient, svc: Services, workspace: MadeWorkspace, routing: RoutingSpy
) -> None:
    comment_created, _ = _same_comment_twice()
    post_signed(client, workspace, comment_created)
    post_signed(client, make_workspace(svc, "globex"), comment_created)
    assert len(routing.calls) == 2


# ---------------------------------------------------------------------------------------------
# Routing hook


def test_routing_runs_in_the_storing_transaction_for_routed_events_only(
    client: TestClient, svc: Services, workspace: MadeWorkspace, routing: RoutingSpy
) -> None:
    response = post_signed(client, workspace, payload(f"{MM}issue-updated-priority-raised.json"))
    assert response.json()["deliveries"] == 2
    # Stored with the event, in its transaction: the event's deliveries are there on 202.
    assert len(delivery_ids(svc, response.json()["event_id"])) == 2
    event_id, envelope = routing.calls[0]
    assert event_id == response.json()["event_id"]
    assert [t.value for t in envelope.event_types] == ["issue_updated", "priority_changed"]
    assert routing.woken == 1
    post_signed(client, workspace, {"webhookEvent": "sprint_started"})
    assert len(routing.calls) == 1


def test_no_wake_up_when_nothing_was_enqueued(
    client: TestClient, workspace: MadeWorkspace, routing: RoutingSpy
) -> None:
    routing.deliveries = 0
    assert post_signed(client, workspace, payload(CREATED)).json()["deliveries"] == 0
    assert routing.woken == 0


def test_a_routing_failure_keeps_the_event(
    client: TestClient,
    svc: Services,
    workspace: MadeWorkspace,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_args: object) -> int:
        raise RuntimeError("bug in the router")

    monkeypatch.setattr(intake_writer, "plan_deliveries", broken)
    with caplog.at_level(logging.ERROR, logger="ticketmate.jira.intake_writer"):
        response = post_signed(client, workspace, payload(CREATED))
    assert response.status_code == 202, response.text
    assert response.json()["deliveries"] == 0
    record = stored(svc, response.json()["event_id"])
    assert record.status == "routed"
    assert record.reason is not None
    assert "Routing failed" in record.reason
    assert "routing failed" in caplog.text


# A database outage (503, then the retry stored once): test_database_outage.py, for real.


# ---------------------------------------------------------------------------------------------
# Automation


def test_automation_body_with_event_override(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    body = {"issue": payload(CREATED)["issue"]}
    body["issue"]["id"] = 10040
    response = post_with_token(client, workspace, body, params={"event": "status_changed"})
    record = stored(svc, response.json()["event_id"])
    assert record.status == "routed"
    assert record.jira_event is None
    assert record.event_types == ["issue_updated", "status_changed"]
    assert record.envelope is not None
    assert record.envelope["issue"]["id"] == "10040"
    assert record.issue_key == "TES-41"


def test_automation_custom_body_is_rejected_and_kept(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    response = post_with_token(client, workspace, {"text": "hello"}, in_query=True)
    assert response.status_code == 202
    record = stored(svc, response.json()["event_id"])
    assert record.status == "rejected"
    assert record.reason is not None
    assert "Issue data (Jira format)" in record.reason


# ---------------------------------------------------------------------------------------------
# Secrets stay out of the log


def test_no_credential_ever_reaches_the_log(
    client: TestClient, workspace: MadeWorkspace, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        post_signed(client, workspace, payload(CREATED), identifier="log-1")
        post_with_token(client, workspace, payload(CREATED), in_query=True)
        post_with_token(client, workspace, payload(CREATED))
        client.post(INTAKE, params={"workspace": workspace.slug, "token": "tmi_wrong"}, json={})
    # The test client's own httpx log shows the URL it sent; only the service's lines count.
    service_records = [r for r in caplog.records if not r.name.startswith("httpx")]
    assert service_records
    for record in service_records:
        line = record.getMessage()
        assert workspace.jira.ingest_token not in line
        assert workspace.jira.secret not in line
        assert "tmi_wrong" not in line

"""Idempotency under real concurrency: copies fired at once at a real HTTP server.

The point is PostgreSQL (many connections, READ COMMITTED), where a read-then-write check would
let two copies through; it runs on SQLite too, where writers queue.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import pytest
import uvicorn

from tests.conftest import free_port
from tests.jira.conftest import RoutingSpy
from tests.jira.support import INTAKE, all_stored, as_bytes, payload
from tests.support.factories import MadeWorkspace
from ticketmate.app import create_app
from ticketmate.jira.signature import body_signature
from ticketmate.state import Services

MM = "mattermost_mattermost-plugin-jira__"
COPIES = 8


@pytest.fixture
def live_server(svc: Services) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        create_app(svc.settings, services=svc),
        host="127.0.0.1",
        port=port,
        log_config=None,
        ws="none",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def fire_at_once(url: str, requests: list[tuple[bytes, dict[str, str]]]) -> list[httpx2.Response]:
    """Send every request from its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(requests))

    def send(request: tuple[bytes, dict[str, str]]) -> httpx2.Response:
        body, headers = request
        with httpx2.Client(base_url=url, timeout=30) as client:
            barrier.wait()
            return client.post(INTAKE, params={"workspace": "acme"}, content=body, headers=headers)

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(send, requests))


def signed(
    workspace: MadeWorkspace, body: dict[str, Any], identifier: str
) -> tuple[bytes, dict[str, str]]:
    raw = as_bytes(body)
    return raw, {
        "Content-Type": "application/json",
        "X-Hub-Signature": body_signature(workspace.jira.secret, raw),
        "X-Atlassian-Webhook-Identifier": identifier,
    }


def test_concurrent_copies_of_one_delivery_store_one_event(
    live_server: str, svc: Services, workspace: MadeWorkspace, routing: RoutingSpy
) -> None:
    request = signed(workspace, payload(f"{MM}issue-updated-status-resolved.json"), "same-id")
    responses = fire_at_once(live_server, [request] * COPIES)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * (COPIES - 1) + [202], [r.text for r in responses]
    [accepted] = [r.json() for r in responses if r.status_code == 202]
    assert accepted["deliveries"] == routing.deliveries
    for response in responses:
        if response.status_code == 200:
            assert response.json() == {"duplicate": True, "event_id": accepted["event_id"]}
    assert [record.id for record in all_stored(svc)] == [accepted["event_id"]]
    assert len(routing.calls) == 1


def test_concurrent_reports_of_one_comment_route_it_once(
    live_server: str, svc: Services, workspace: MadeWorkspace, routing: RoutingSpy
) -> None:
    rounds = 4
    requests = []
    for round_number in range(rounds):
        comment_created = payload(f"{MM}server-comment-created.json")
        comment_created["comment"]["id"] = f"77{round_number}"
        issue_commented = payload(f"{MM}server-issue-updated-issue-commented.json")
        issue_commented["comment"] = copy.deepcopy(comment_created["comment"])
        requests.append(signed(workspace, comment_created, f"c-{round_number}"))
        requests.append(signed(workspace, issue_commented, f"u-{round_number}"))
    responses = fire_at_once(live_server, requests)

    assert {r.status_code for r in responses} == {202}, [r.text for r in responses]
    assert len(all_stored(svc)) == 2 * rounds
    routed_comments = sorted(
        str(envelope.comment.id) for _, envelope in routing.calls if envelope.comment is not None
    )
    assert routed_comments == [f"77{n}" for n in range(rounds)]
    duplicates = [r for r in all_stored(svc) if r.reason and r.reason.startswith("Duplicate of")]
    assert len(duplicates) == rounds

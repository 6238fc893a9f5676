"""Combining through the real intake (signed requests, the intake writer's group commit):
updates to one issue for a combining subscription are stored as one waiting card and the
deliveries folded into it, in one batch or across batches."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from tests.jira.support import payload, post_signed
from tests.support.factories import MadeWorkspace
from tests.support.teams import deliveries, make_subscription, make_webhook
from ticketmate.state import Services

UPDATE = "mattermost_mattermost-plugin-jira__issue-updated-assigned.json"
FOLDED = re.compile(r'^ticketmate_deliveries_finished_total\{outcome="folded"\} (\S+)$', re.M)


def folded_count(client: TestClient) -> float:
    found = FOLDED.search(client.get("/metrics").text)
    return float(found.group(1)) if found else 0.0


def test_signed_updates_of_one_issue_are_folded_into_one_waiting_card(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    hook = make_webhook(svc, workspace.id, "combined", "http://127.0.0.1:9/workflows/c")
    make_subscription(svc, workspace.id, hook, "issue_updated", combine="5m")
    body = payload(UPDATE)
    key = body["issue"]["key"]
    before = folded_count(client)
    # Some one after another (a batch each), some at once (sharing a batch).
    for _ in range(2):
        assert post_signed(client, workspace, body).status_code == 202
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: post_signed(client, workspace, body), range(6)))
    assert [a.status_code for a in answers] == [202] * 6
    rows = deliveries(svc, workspace.id)
    assert len(rows) == 8
    [head] = [d for d in rows if d.folded_into is None]
    assert head.issue_key == key
    assert (head.status, head.card_kind) == ("pending", "combined")
    assert head.combine_until is not None
    assert head.next_attempt_at == head.combine_until
    assert head.id == min(d.id for d in rows)  # the first update's delivery heads the card
    assert all(d.status == "folded" and d.folded_into == head.id for d in rows if d is not head)
    # Folded at intake is final at once, and counted among the finished deliveries.
    assert folded_count(client) == before + 7

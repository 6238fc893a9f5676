"""Jira sending the same delivery several times at once (a retry racing the first try, as
happens when our answer is slow): exactly one event is stored and one card is sent."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from tests.support.factories import MadeWorkspace
from tests.support.jira_client import JiraDelivery, JiraSender, issue_created_body
from tests.support.processes import ServeProcess, WorkerProcess
from tests.support.teams import deliveries, make_subscription, make_webhook
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.models import JiraEventRecord
from ticketmate.state import Services


def card_keys(sink: TeamsSink) -> Counter[str]:
    return Counter(
        r.json()["attachments"][0]["content"]["body"][2]["text"].split(":")[0]
        for r in sink.received()
    )


def test_five_concurrent_copies_of_one_delivery_make_one_event_and_one_card(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, database_url: str, tmp_path: Path
) -> None:
    hook = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    make_subscription(svc, workspace.id, hook, "issue_created")
    with ServeProcess(database_url, tmp_path).start() as serve:
        sender = JiraSender(lambda: serve.url, workspace)
        rounds = 10
        copies: list[JiraDelivery] = []
        for n in range(rounds):
            original = sender.deliveries([issue_created_body(f"DEMO-{n}")])[0]
            copies += [JiraDelivery(original.identifier, original.body) for _ in range(5)]
        sender.send(copies, concurrency=len(copies))
        with WorkerProcess(database_url, tmp_path, "--once").start() as worker:
            assert worker.process is not None
            assert worker.process.wait(timeout=60) == 0, worker.output()
    assert all(c.acknowledged for c in copies), [c.answers for c in copies]
    with svc.db.transaction() as session:
        stored = session.scalar(select(func.count()).select_from(JiraEventRecord))
    assert stored == rounds
    assert [d.status for d in deliveries(svc, workspace.id)] == ["delivered"] * rounds
    assert card_keys(sink) == {f"DEMO-{n}": 1 for n in range(rounds)}

"""Teams misbehaving as it does in real life, on every channel at once: 10 % of answers are
429 (half of them with Retry-After), 5 % are 500, 2 % hang past the client's timeout and 1 %
drop the connection. In the end every card is delivered, each channel rested as long as Teams
asked, no channel ever got more than 4 requests in a rolling second, and each channel's cards
first arrived in the order their events were queued."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

from tests.reliability.conftest import size
from tests.reliability.support import (
    assert_within_the_limit,
    card_key,
    deployment,
    duplicates,
    first_arrivals,
    queued_keys,
    settle,
)
from tests.support.factories import MadeWorkspace
from tests.support.jira_client import JiraSender, issue_created_body
from tests.support.teams import make_subscription, make_webhook
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.state import Services

TIMEOUT = 2.0  # the delivery timeout, shortened so a hang costs two seconds, not eight
HANG = Answer(202, "", delay_seconds=TIMEOUT + 1.5)
SETTINGS = {
    "TICKETMATE_DELIVERY_TIMEOUT_SECONDS": str(TIMEOUT),
    "TICKETMATE_RETRY_SCHEDULE_SECONDS": "0.3,0.5,1,1,2,2,3",
    "TICKETMATE_DELIVERY_LEASE_SECONDS": "10",
}


def misbehaving(rng: random.Random, count: int) -> list[Answer]:
    """`count` answers drawn as Teams gives them on a bad day."""
    answers = []
    for _ in range(count):
        draw = rng.random()
        if draw < 0.05:
            answers.append(Answer(429, "", headers={"Retry-After": str(rng.choice((1, 2)))}))
        elif draw < 0.10:
            answers.append(Answer(429, "Too Many Requests"))
        elif draw < 0.15:
            answers.append(Answer(500, "Internal Server Error"))
        elif draw < 0.17:
            answers.append(HANG)
        elif draw < 0.18:
            answers.append(Answer(reset=True))
        else:
            answers.append(Answer(202, ""))
    return answers


def test_every_card_arrives_through_429s_500s_hangs_and_resets_within_the_limit(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, database_url: str, tmp_path: Path
) -> None:
    channels = size(5, 20)
    per_channel = size(24, 100)
    rng = random.Random(20261203)
    for c in range(channels):
        path = f"/workflows/ch{c}"
        hook = make_webhook(svc, workspace.id, f"ch{c}", sink.url(path))
        make_subscription(svc, workspace.id, hook, "issue_created", projects=[f"P{c}"])
        # Retries draw from the same script; past its end the channel answers 202.
        sink.script(path, *misbehaving(rng, 2 * per_channel))
    bodies = [
        issue_created_body(f"P{c}-{n}", project=f"P{c}")
        for n in range(per_channel)
        for c in range(channels)
    ]
    with deployment(database_url, tmp_path, **SETTINGS) as running:
        sender = JiraSender(lambda: running.url, workspace)
        sent = sender.send(sender.deliveries(bodies), concurrency=8)
        assert all(d.acknowledged for d in sent)
        outcome = settle(svc, workspace.id, len(bodies), timeout=size(60, 600))
    assert outcome == {"delivered": len(bodies)}

    order = queued_keys(svc, workspace.id)
    for c in range(channels):
        path = f"/workflows/ch{c}"
        received = sink.received(path)
        # Every card reached Teams, its first copies in the order the events were queued.
        assert first_arrivals(sink, path) == order[f"ch{c}"]
        assert_within_the_limit(svc, sink, path, f"ch{c}")
        for asked, after in itertools.pairwise(received):
            if asked.answered == 429 and "Retry-After" in asked.answer.headers:
                rest = float(asked.answer.headers["Retry-After"])
                waited = after.at - asked.at
                assert waited >= rest, f"{path}: rested {waited:.3f} s of {rest} s"
        # Each card was accepted at once exactly one time, and never sent after that: the only
        # copies before it met an error, a hang past the timeout or a dropped connection.
        for key in order[f"ch{c}"]:
            copies = [r for r in received if card_key(r) == key]
            assert [r.clean_success for r in copies] == [False] * (len(copies) - 1) + [True]
    # A hang or a reset can come after Teams has read the card, so Teams may show those twice.
    extra = duplicates(sink)
    print(f"cards sent more than once: {len(extra)} of {len(bodies)}")

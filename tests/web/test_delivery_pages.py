"""The Delivery Log tab: the log and its filters, the chart and queue depth, a delivery's
detail with the card, Retry now, Retry all dead letters, and Recent Jira events."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from tests.support.teams import (
    deliveries,
    drain,
    event,
    make_subscription,
    make_webhook,
    store_and_route,
)
from tests.web.conftest import Browser, People, flash_of, post_form
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.models import AuditEntry
from ticketmate.state import Services

T = "/w/acme/admin/integrations/teams"
LOG = f"{T}/deliveries"


@dataclass(frozen=True)
class Log:
    eng: str
    ops: str
    delivered: str
    retrying: str
    dead: str


def by_key(svc: Services, people: People) -> dict[str, str]:
    return {d.issue_key or "": d.id for d in deliveries(svc, people.acme.id)}


@pytest.fixture
def log(svc: Services, people: People, sink: TeamsSink) -> Log:
    """Three deliveries to #eng: one delivered, one waiting to retry, one dead letter."""
    eng = make_webhook(svc, people.acme.id, "#eng", sink.url("/workflows/eng"))
    ops = make_webhook(svc, people.acme.id, "#ops", sink.url("/workflows/ops"))
    make_subscription(svc, people.acme.id, eng, "issue_created")
    make_subscription(svc, people.acme.id, ops, "issue_created", projects=["OPS"])
    store_and_route(svc, people.acme.id, event(["issue_created"], key="DEMO-1"))
    drain(svc)
    sink.script("/workflows/eng", Answer(500, "Internal Server Error"))
    store_and_route(svc, people.acme.id, event(["issue_created"], key="DEMO-2"))
    drain(svc)
    sink.script("/workflows/eng", Answer(400, '{"error":{"code":"MessageSizeExceeded"}}'))
    store_and_route(svc, people.acme.id, event(["issue_created"], key="DEMO-3"))
    drain(svc)
    keys = by_key(svc, people)
    return Log(eng, ops, keys["DEMO-1"], keys["DEMO-2"], keys["DEMO-3"])


def rows(page: str) -> list[str]:
    body = page.split('<table class="striped deliveries">', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr id=\"delivery-[^\"]+\".*?</tr>", body, flags=re.S)


def test_the_log_shows_each_delivery_in_words(admin: Browser, log: Log) -> None:
    page = admin.client.get(LOG).text
    listed = rows(page)
    assert [re.search(r"<strong>(DEMO-\d)</strong>", r).group(1) for r in listed] == [  # type: ignore[union-attr]
        "DEMO-3",
        "DEMO-2",
        "DEMO-1",
    ]
    dead, retrying, delivered = listed
    assert '<span class="badge badge-dead-letter">Dead letter</span>' in dead
    assert "Teams refused the card as too large (HTTP 400)." in dead
    assert '<span class="badge badge-pending">Pending</span>' in retrying
    assert "retrying · next attempt <time" in retrying
    assert "HTTP 500" in retrying
    assert '<td class="num">1</td>' in retrying
    assert '<span class="badge badge-delivered">Delivered</span>' in delivered
    assert "Something broke" in delivered
    assert "Issue Created" in delivered
    assert "#eng" in delivered
    assert '<time datetime="' in delivered


def test_chart_and_queue_depth(admin: Browser, log: Log) -> None:
    page = admin.client.get(LOG).text
    assert '<svg viewBox="0 0 720' in page
    assert 'aria-label="Last 24 hours: 1 delivered, 1 retrying, 1 dead letters."' in page
    assert "Delivered 1</span>" in page
    assert "Retrying 1</span>" in page
    assert "Dead letter 1</span>" in page
    assert '<p class="depth"><strong>1</strong> in the queue</p>' in page
    assert "1 pending · 0 in flight" in page
    assert '<strong class="dead-total">1</strong> dead letter' in page
    assert page.count('class="series-delivered"') == 1


@pytest.mark.parametrize(
    ("query", "keys"),
    [
        ("status=dead_letter", ["DEMO-3"]),
        ("status=delivered", ["DEMO-1"]),
        ("event_type=issue_created&time=1h", ["DEMO-3", "DEMO-2", "DEMO-1"]),
        ("status=bogus", ["DEMO-3", "DEMO-2", "DEMO-1"]),  # unknown values mean "any"
    ],
)
def test_filters(admin: Browser, log: Log, query: str, keys: list[str]) -> None:
    page = admin.client.get(f"{LOG}?{query}").text
    assert re.findall(r"<strong>(DEMO-\d)</strong>", page) == keys


def test_filter_by_webhook_and_nothing_found(admin: Browser, log: Log) -> None:
    page = admin.client.get(f"{LOG}?webhook_id={log.ops}").text
    assert "No deliveries match these filters." in page
    assert f'<option value="{log.ops}" selected>#ops</option>' in page
    assert '<a href="/w/acme/admin/integrations/teams/deliveries">Clear</a>' in page


def test_pages_of_fifty(admin: Browser, svc: Services, people: People, log: Log) -> None:
    for n in range(50):
        store_and_route(svc, people.acme.id, event(["issue_created"], key=f"BULK-{n}"))
    first = admin.client.get(f"{LOG}?status=pending").text
    assert len(rows(first)) == 50
    next_url = html.unescape(re.search(r'<a href="([^"]+)">Next page →</a>', first).group(1))  # type: ignore[union-attr]
    assert "status=pending" in next_url
    second = admin.client.get(next_url).text
    assert [re.search(r"<strong>([A-Z]+-\d+)</strong>", r).group(1) for r in rows(second)] == [  # type: ignore[union-attr]
        "DEMO-2"
    ]
    assert "← First page" in second


def test_detail_shows_attempts_the_json_and_the_card_to_draw(admin: Browser, log: Log) -> None:
    page = admin.client.get(f"{LOG}/{log.dead}").text
    assert '<span class="badge badge-dead-letter">Dead letter</span>' in page
    attempts = page.split('<table class="attempts">', 1)[1].split("</table>", 1)[0]
    assert attempts.count("<tr>") == 2  # header + one attempt
    assert "<td>400</td>" in attempts
    assert "MessageSizeExceeded" in html.unescape(attempts)
    assert " ms</td>" in attempts
    card = re.search(r'<script type="application/json" id="card-json">(.*?)</script>', page)
    assert card
    drawn = json.loads(card.group(1))
    assert drawn["type"] == "AdaptiveCard"
    assert drawn["version"] == "1.4"
    assert 'data-adaptive-card="card-json"' in page
    assert "/static/vendor/adaptivecards/adaptivecards.min.js" in page
    sent = html.unescape(
        page.split('<pre class="json" id="message-json">', 1)[1].split("</pre>")[0]
    )
    assert json.loads(sent)["attachments"][0]["content"] == drawn
    assert ">Retry now</button>" in page
    assert ">Retry now</button>" not in admin.client.get(f"{LOG}/{log.delivered}").text


def test_card_text_cannot_break_out_of_the_page(
    admin: Browser, svc: Services, people: People, log: Log
) -> None:
    store_and_route(
        svc, people.acme.id, event(["issue_created"], key="XSS-1", summary="</script><b>hi</b>")
    )
    page = admin.client.get(f"{LOG}/{by_key(svc, people)['XSS-1']}").text
    assert "</script><b>" not in page
    assert "\\u003c/script\\u003e\\u003cb\\u003ehi" in page


def test_retry_now(admin: Browser, svc: Services, people: People, log: Log) -> None:
    done = post_form(admin, f"{LOG}/{log.dead}/retry")
    assert done.headers["location"] == f"{LOG}/{log.dead}"
    assert "Put back in the queue" in flash_of(admin, done)
    status = {d.id: d.status for d in deliveries(svc, people.acme.id)}
    assert status[log.dead] == "pending"
    with svc.db.transaction() as session:
        last = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert last is not None
        assert (last.action, last.target_id) == ("teams.delivery.retried", log.dead)
    refused = post_form(admin, f"{LOG}/{log.delivered}/retry")
    assert "Only dead letters and skipped deliveries can be retried" in flash_of(admin, refused)


def test_retry_all_dead_letters_asks_then_requeues(
    admin: Browser, svc: Services, people: People, log: Log
) -> None:
    page = admin.client.get(LOG).text
    assert ">Retry all dead letters</button>" in page
    assert 'data-confirm="Retry all dead letters?' in page
    asked = post_form(admin, f"{LOG}/retry", webhook_id=log.eng)
    assert "Every dead letter of “#eng” goes back in the queue" in asked.text
    assert {d.status for d in deliveries(svc, people.acme.id)} >= {"dead_letter"}
    none_there = post_form(admin, f"{LOG}/retry", webhook_id=log.ops, confirmed="1")
    assert flash_of(admin, none_there) == "There were no dead letters to retry."
    done = post_form(admin, f"{LOG}/retry", webhook_id="", confirmed="1")
    assert flash_of(admin, done) == "1 dead letter(s) put back in the queue."
    assert "dead_letter" not in {d.status for d in deliveries(svc, people.acme.id)}


def _row(page: str, key: str) -> str:
    row = re.search(rf'<tr id="event-[^"]+">(?:(?!</tr>).)*{key}(?:(?!</tr>).)*</tr>', page, re.S)
    assert row, key
    return html.unescape(row.group(0))


def _words(row: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", row).split())


def _why_not(row: str) -> str:
    link = re.search(r'href="([^"]+)" class="why-not"', row)
    assert link, row
    return link.group(1)


def test_recent_jira_events_say_what_matched_and_why_not(
    admin: Browser, svc: Services, people: People, log: Log
) -> None:
    store_and_route(svc, people.acme.id, event(["status_changed"], key="DEMO-9", status="Done"))
    page = admin.client.get(f"{T}/events").text
    assert ">Recent Jira events</a>" in page
    text = _row(page, "DEMO-1")
    assert "✔ Matched: Issue Created → “#eng”" in text
    assert "✘ Not matched: 1 other subscription · Why not?" in _words(text)
    assert "Delivery 1</a>" in text

    # The reasons are worked out when the event is opened, as a plain link (no JavaScript).
    reasons = admin.client.get(_why_not(text))
    assert reasons.status_code == 200
    shown = _words(html.unescape(reasons.text))
    assert "1 subscription took this event when it arrived; 1 did not." in shown
    assert "Issue Created → “#ops” ✘ Not matched ✘ project DEMO not in [OPS]" in shown
    assert "Issue Created → “#eng” ✔ Matched ✔ Would match" in shown

    changed = _row(page, "DEMO-9")
    assert "✘ Not matched: 2 other subscriptions" in _words(changed)
    shown = html.unescape(admin.client.get(_why_not(changed)).text)
    assert "listens for issue_created; this event is status_changed" in shown


def test_an_events_reasons_come_in_pages(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", sink.url("/workflows/eng"))
    made = [
        make_subscription(svc, people.acme.id, hook, "issue_created", projects=[f"P{n}"])
        for n in range(60)
    ]
    event_id, _ = store_and_route(svc, people.acme.id, event(["issue_created"], key="DEMO-5"))
    first = admin.client.get(f"{T}/events/{event_id}").text
    ids = re.findall(r'<tr id="explanation-([^"]+)">', first)
    assert ids == sorted(made)[:50]
    after = re.search(r'<a href="([^"]+)">Next page →</a>', first)
    assert after
    second = admin.client.get(html.unescape(after.group(1))).text
    assert re.findall(r'<tr id="explanation-([^"]+)">', second) == sorted(made)[50:]
    assert "← First page" in second
    assert admin.client.get(f"{T}/events/{event_id}?cursor=%25%25").status_code == 400
    assert admin.client.get(f"{T}/events/nosuchevent").status_code == 404


def test_an_ignored_event_says_it_was_not_routed(
    admin: Browser, svc: Services, people: People
) -> None:
    from tests.jira.support import payload, post_signed

    answer = post_signed(
        admin.client, people.acme, payload("mobitel-ltd_jira-to-matrix__project-created.json")
    )
    row = _row(admin.client.get(f"{T}/events").text, answer.json()["event_id"])
    assert "Not routed." in row
    shown = html.unescape(admin.client.get(f"{T}/events/{answer.json()['event_id']}").text)
    assert "This event was ignored when it arrived: it was not routed" in shown


def test_another_workspaces_delivery_is_not_found(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    theirs = make_webhook(svc, people.globex.id, "#g", sink.url("/workflows/g"))
    make_subscription(svc, people.globex.id, theirs, "issue_created")
    store_and_route(svc, people.globex.id, event(["issue_created"], key="GLO-1"))
    [delivery] = deliveries(svc, people.globex.id)
    assert admin.client.get(f"{LOG}/{delivery.id}").status_code == 404
    assert post_form(admin, f"{LOG}/{delivery.id}/retry").status_code == 404
    assert "GLO-1" not in admin.client.get(LOG).text

"""The Delivery Log tab: chart and queue depth, the filtered log, a delivery's detail with the
card rendered as Teams shows it, "Retry now", "Retry all dead letters", and the Recent Jira
events view (which subscriptions took each event and how many did not, with a page per event
that works out why each of the others did not, as the subscriptions are now).

Reads go through delivery/service.py and the API's own row shapes (delivery/api.py); retries go
through the API's handlers, which also wake the worker.

Grouping: a delivery `folded` into another links to the card that carried it, named by that
card's kind (a combined card, a digest, a storm summary); such a card says what it is and how
many events it carries, and its page lists them; a combined card still waiting for more updates
to its issue says until when; a `held` delivery waits for its subscription's next digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from ticketmate.delivery import api as delivery_api
from ticketmate.delivery import service
from ticketmate.errors import ApiError
from ticketmate.jira.events import EventType, JiraEvent
from ticketmate.jira.service import delivery_ids as event_delivery_ids
from ticketmate.jira.service import get_event
from ticketmate.models import IntegrationDelivery, JiraEventRecord, TeamsSubscription, Workspace
from ticketmate.models.delivery import DELIVERY_STATUSES
from ticketmate.pagination import Page, decode_cursor
from ticketmate.routing.explanation import explain
from ticketmate.timeutil import rfc3339, utcnow
from ticketmate.web.charts import build_chart, window_start
from ticketmate.web.guard import AdminAction, AdminView, PageRoute, Svc
from ticketmate.web.labels import DELIVERY_STATUS_LABELS, event_type_choices
from ticketmate.web.pages import page, redirect, with_query
from ticketmate.web.queries import (
    chart_rows,
    dead_letter_counts,
    matched_subscriptions,
    queue_depth,
    recent_events,
    webhook_choices,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

LOG = "/w/{slug}/admin/integrations/teams/deliveries"
EVENTS = "/w/{slug}/admin/integrations/teams/events"
PAGE_SIZE = 50
Param = Annotated[str, Query(max_length=128)]

# The time filter: presets, so that no time zone has to be guessed from a typed date.
TIME_RANGES: dict[str, tuple[str, timedelta]] = {
    "1h": ("Last hour", timedelta(hours=1)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
}


def _page(cursor: str) -> Page:
    return Page(limit=PAGE_SIZE, after_id=decode_cursor(cursor) if cursor else None)


# -- grouping: combined cards, digests, storm summaries -------------------------------------------

D = IntegrationDelivery

# The card that carried a folded delivery, by its `card_kind` ("into its combined card").
# Storm summaries made before cards had a kind have none.
CARRIER_WORDS = {"combined": "its combined card", "digest": "its digest", "storm": "its summary"}


def carrier_words(kind: str | None) -> str:
    return CARRIER_WORDS.get(kind or "storm", "its summary")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def card_line(d: delivery_api.DeliveryOut) -> str | None:
    """What a card that carries other deliveries is, with how many events it carries (its own
    and those folded into it): "Combined card · 3 updates", "Digest · 12 updates", "Storm
    summary of 20 events". None for a card of one event."""
    carried = d.folded_count + 1
    if d.card_kind == "combined":
        return f"Combined card · {_count(carried, 'update')}"
    if d.card_kind == "digest":
        return f"Digest · {_count(carried, 'update')}"
    if d.card_kind == "storm" or d.folded_count:
        return f"Storm summary of {_count(carried, 'event')}"
    return None


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass(frozen=True)
class Grouping:
    """A delivery's part in a grouped card, as the Delivery Log shows it."""

    carrier_kind: str | None = None  # folded: the carrying card's kind
    carried_by: str | None = None  # folded: "its combined card", "its digest", "its summary"
    card: str | None = None  # a card that carries others: card_line
    waiting_until: datetime | None = None  # a combined card still waiting for more updates
    next_digest_at: datetime | None = None  # held: when its subscription's next digest goes

    def until_tag(self) -> Markup:
        """ "HH:MM:SS UTC" in a <time> (app.js shows it in the browser's time zone)."""
        return clock_tag(self.waiting_until)


def clock_tag(moment: datetime | None) -> Markup:
    """A time of day to the second, "14:03:27 UTC", in a <time> as the pages write times."""
    if moment is None:
        return Markup("")
    moment = moment.astimezone(UTC)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        rfc3339(moment), f"{moment:%Y-%m-%d %H:%M:%S} UTC", f"{moment:%H:%M:%S} UTC"
    )


def groupings(
    session: Session,
    workspace_id: str,
    rows: list[delivery_api.DeliveryOut],
    now: datetime,
) -> dict[str, Grouping]:
    """Grouping of each delivery that has a part in one (only those)."""
    carriers = {d.folded_into for d in rows if d.folded_into}
    kinds: dict[str, str | None] = {}
    if carriers:
        kinds = dict(
            session.execute(
                select(D.id, D.card_kind).where(D.workspace_id == workspace_id, D.id.in_(carriers))
            ).all()
        )
    digests = {d.digest_of for d in rows if d.status == "held" and d.digest_of}
    next_at: dict[str, datetime | None] = {}
    if digests:
        next_at = dict(
            session.execute(
                select(TeamsSubscription.id, TeamsSubscription.next_digest_at).where(
                    TeamsSubscription.workspace_id == workspace_id,
                    TeamsSubscription.id.in_(digests),
                    TeamsSubscription.digest.is_not(None),
                )
            ).all()
        )
    found: dict[str, Grouping] = {}
    for d in rows:
        until = _moment(d.combine_until)
        waiting = d.status == "pending" and not d.attempt_count and until is not None
        grouping = Grouping(
            carrier_kind=kinds.get(d.folded_into) if d.folded_into else None,
            carried_by=carrier_words(kinds.get(d.folded_into)) if d.folded_into else None,
            card=card_line(d),
            waiting_until=until if waiting and until is not None and until > now else None,
            next_digest_at=next_at.get(d.digest_of) if d.status == "held" and d.digest_of else None,
        )
        if grouping != Grouping():
            found[d.id] = grouping
    return found


@dataclass(frozen=True)
class Carried:
    """One delivery a card carries, for the card's page."""

    id: str
    issue_key: str | None
    summary: str | None
    event_type: str
    created_at: datetime


def carried_deliveries(session: Session, workspace_id: str, delivery_id: str) -> list[Carried]:
    """The deliveries folded into this one's card, oldest first."""
    return [
        Carried(*row)
        for row in session.execute(
            select(D.id, D.issue_key, D.summary, D.event_type, D.created_at)
            .where(D.workspace_id == workspace_id, D.folded_into == delivery_id)
            .order_by(D.id)
        ).all()
    ]


@router.get(LOG)
def delivery_log(
    request: Request,
    p: AdminView,
    svc: Svc,
    status: Param = "",
    webhook_id: Param = "",
    event_type: Param = "",
    time: Param = "",
    cursor: Param = "",
) -> Response:
    # Unknown filter values (an old bookmark, a hand-edited address) mean "any".
    status = status if status in DELIVERY_STATUSES else ""
    event_type = event_type if event_type in EventType._value2member_map_ else ""
    time = time if time in TIME_RANGES else ""
    now = utcnow()
    since = now - TIME_RANGES[time][1] if time else None
    f = service.DeliveryFilter(status or None, webhook_id or None, event_type or None, since)
    with svc.db.transaction() as session:
        rows, next_cursor = service.list_deliveries(session, p.workspace_id, f, _page(cursor))
        folded = service.folded_counts(session, [d.id for d in rows])
        deliveries = [delivery_api.delivery_out(d, folded.get(d.id, 0)) for d in rows]
        grouped = groupings(session, p.workspace_id, deliveries, now)
        chart = build_chart(chart_rows(session, p.workspace_id, window_start(now)), now)
        depth = queue_depth(session, p.workspace_id)
        webhooks = webhook_choices(session, p.workspace_id)
        dead = dead_letter_counts(session, p.workspace_id)
    filters = {"status": status, "webhook_id": webhook_id, "event_type": event_type, "time": time}
    return page(
        request,
        "teams/deliveries.html",
        p,
        tab="deliveries",
        deliveries=deliveries,
        grouped=grouped,
        chart=chart,
        depth=depth,
        webhooks=webhooks,
        dead=dead,
        dead_total=sum(dead.values()),
        filters=filters,
        filtered=any(filters.values()),
        statuses=DELIVERY_STATUS_LABELS,
        event_types=event_type_choices(),
        time_ranges={k: v[0] for k, v in TIME_RANGES.items()},
        next_url=with_query(p.teams_url + "/deliveries", cursor=next_cursor, **filters)
        if next_cursor
        else None,
        first_url=with_query(p.teams_url + "/deliveries", **filters) if cursor else None,
    )


def _card_of(message: dict[str, Any]) -> dict[str, Any] | None:
    """The Adaptive Card inside the Teams message envelope, if it has one."""
    attachments = message.get("attachments")
    if isinstance(attachments, list) and attachments and isinstance(attachments[0], dict):
        content = attachments[0].get("content")
        if isinstance(content, dict):
            return content
    return None


@router.get(LOG + "/{delivery_id}")
def delivery_detail(request: Request, p: AdminView, svc: Svc, delivery_id: str) -> Response:
    with svc.db.transaction() as session:
        try:
            delivery = service.get_delivery(session, p.workspace_id, delivery_id)
        except service.DeliveryNotFound:
            raise ApiError(
                404, "delivery_not_found", "There is no such delivery in this workspace."
            ) from None
        carried = carried_deliveries(session, p.workspace_id, delivery.id)
        detail = delivery_api.detail_out(
            delivery, service.attempts_of(session, delivery.id), [c.id for c in carried]
        )
        grouping = groupings(session, p.workspace_id, [detail], utcnow()).get(detail.id)
    return page(
        request,
        "teams/delivery_detail.html",
        p,
        tab="deliveries",
        d=detail,
        grouping=grouping or Grouping(),
        carried=carried,
        card=_card_of(detail.message),
        message_json=json.dumps(detail.message, indent=2, ensure_ascii=False),
        retryable=detail.status in service.RETRYABLE,
        waiting=detail.status in ("pending", "in_flight"),
    )


@router.post(LOG + "/{delivery_id}/retry")
def retry_delivery(request: Request, p: AdminAction, svc: Svc, delivery_id: str) -> Response:
    """Retry now: the API's handler puts the dead letter back in the queue and wakes the worker."""
    target = f"{p.teams_url}/deliveries/{delivery_id}"
    try:
        delivery_api.retry_one(p.ctx, svc, delivery_id, request)
    except ApiError as exc:
        if exc.status_code != 409:
            raise
        return redirect(target, exc.message, "error")
    return redirect(target, "Put back in the queue; it is sent again in a moment.")


@router.post(LOG + "/retry")
def retry_dead_letters(
    request: Request,
    p: AdminAction,
    svc: Svc,
    webhook_id: Annotated[str, Form(max_length=64)] = "",
    confirmed: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Retry all dead letters, of every channel or of one."""
    log_url = f"{p.teams_url}/deliveries"
    if confirmed != "1":
        with svc.db.transaction() as session:
            names = {w.id: w.channel_name for w in webhook_choices(session, p.workspace_id)}
        scope = f"of “{names[webhook_id]}”" if webhook_id in names else "of every channel"
        return page(
            request,
            "confirm.html",
            p,
            tab="deliveries",
            title="Retry all dead letters?",
            message=f"Every dead letter {scope} goes back in the queue and is sent to Teams "
            "again. Their attempt history is kept.",
            action=f"{log_url}/retry",
            fields={"webhook_id": webhook_id},
            button="Retry all dead letters",
            cancel=log_url,
        )
    answer = delivery_api.retry_bulk(
        p.ctx, svc, delivery_api.BulkRetryIn(webhook_id=webhook_id or None), request
    )
    if not answer.requeued:
        return redirect(log_url, "There were no dead letters to retry.", "info")
    return redirect(log_url, f"{answer.requeued} dead letter(s) put back in the queue.")


@router.get(EVENTS)
def recent_jira_events(request: Request, p: AdminView, svc: Svc, cursor: Param = "") -> Response:
    """Received events with their routing outcome: the answer to "Messages not delivering"."""
    with svc.db.transaction() as session:
        events, next_cursor = recent_events(session, p.workspace_id, _page(cursor))
        delivery_ids = event_delivery_ids(session, [e.id for e in events])
        matched = matched_subscriptions(session, p.workspace_id, events)
    return page(
        request,
        "teams/events.html",
        p,
        tab="deliveries",
        events=events,
        delivery_ids=delivery_ids,
        matched=matched,
        next_url=with_query(p.teams_url + "/events", cursor=next_cursor) if next_cursor else None,
        first_url=p.teams_url + "/events" if cursor else None,
    )


@dataclass(frozen=True)
class EventSecurity:
    """The event's issue security level as routing saw it, for the event's page."""

    level: str | None  # the level's name; None: unrestricted, or not known (source "unknown")
    # payload | changelog | remembered | unknown; None: stored before levels were read
    source: str | None
    moved_out_of: str | None  # the changelog moved the issue out of this level
    withhold_unknown: bool  # the workspace withholds comments whose level is not known


def event_security(session: Session, record: JiraEventRecord) -> EventSecurity | None:
    """None when the event has no envelope (it was not routed)."""
    if not record.envelope:
        return None
    event = JiraEvent.model_validate(record.envelope)
    change = event.security_change()
    withhold = session.scalar(
        select(Workspace.withhold_unknown_security).where(Workspace.id == record.workspace_id)
    )
    return EventSecurity(
        level=event.security.label if event.security is not None else None,
        source=event.security_source,
        moved_out_of=change.from_ if change is not None and not change.to else None,
        withhold_unknown=bool(withhold),
    )


@router.get(EVENTS + "/{event_id}")
def jira_event_routing(
    request: Request, p: AdminView, svc: Svc, event_id: str, cursor: Param = ""
) -> Response:
    """One event and, worked out now, why each subscription did or did not take it."""
    with svc.db.transaction() as session:
        record = get_event(session, p.workspace_id, event_id[:64])
        if record is None:
            raise ApiError(404, "event_not_found", "There is no such Jira event in this workspace.")
        found = explain(
            session,
            record,
            Page(limit=PAGE_SIZE, after_id=decode_cursor(cursor) if cursor else None),
        )
        delivery_ids = event_delivery_ids(session, [record.id]).get(record.id, [])
        security = event_security(session, record)
    here = f"{p.teams_url}/events/{record.id}"
    return page(
        request,
        "teams/event_routing.html",
        p,
        tab="deliveries",
        e=record,
        explanations=found,
        delivery_ids=delivery_ids,
        security=security,
        next_url=with_query(here, cursor=found.next_cursor) if found.next_cursor else None,
        first_url=here if cursor else None,
    )

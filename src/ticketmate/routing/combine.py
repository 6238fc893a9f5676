"""Combining: updates to one issue that reach one channel within a subscription's window go
out as one card.

A delivery of a channel whose subscriptions all combine (`combine_seconds`) is planned with
`combine_until` = now + the shortest of their windows and waits until then (`next_attempt_at`):
it is the *head* of its issue on that channel. A later delivery of the same issue and channel
planned while the head still waits joins it instead of being sent: it is stored `folded`, with
`folded_into` = the head, so every event stays linked to the card that carried it. When the
window closes the worker takes the head and draws the combined card from the head's event and
every event folded into it, oldest first (delivery/queue.py). A window is measured from its
first event; a later update after it closed starts a new one.

Why joining is safe against the worker taking the head at the same moment: the intake looks
for open heads `FOR UPDATE` (PostgreSQL) and the worker marks a head in flight before reading
what was folded into it, so one waits for the other. A head the worker has marked is no longer
`pending`, so the intake starts a new head rather than join one already drawn; a member the
intake committed first is read by the worker's drawing. On SQLite both run in write
transactions, one at a time.

Retries of a combined card send the card drawn for its first attempt; nothing joins a card
that has been tried. Cards of other issues do not wait for a window, as they do not wait for a
retry: order per channel is the order of first attempts, and a combined card goes in its first
event's place among the cards due when its window closes.

`held`: a delivery of a channel that only digest subscriptions take waits for the digest of the
first of them (delivery/digests.py) and is neither due nor finished meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ticketmate.models import IntegrationDelivery
from ticketmate.routing.index import Match

D = IntegrationDelivery

# Events in one combined card at most; the next update of the issue starts another card.
COMBINE_AT_MOST = 50
GROUPING_COLUMNS = (
    "status",
    "next_attempt_at",
    "combine_until",
    "card_kind",
    "digest_of",
    "folded_into",
)


def grouping(
    subscriptions: Sequence[Match], issue_key: str | None, now: datetime
) -> dict[str, Any]:
    """The grouping columns of one planned delivery: held for a digest, waiting to combine,
    or neither (sent at once). Every row has every key: the rows go in one multi-row INSERT."""
    columns: dict[str, Any] = dict.fromkeys(GROUPING_COLUMNS)
    if all(s.digest for s in subscriptions):
        columns.update(
            status="held", next_attempt_at=now, digest_of=subscriptions[0].subscription_id
        )
        return columns
    windows = [s.combine_seconds for s in subscriptions]
    if issue_key and all(windows):
        until = now + timedelta(seconds=min(w for w in windows if w))
        columns.update(
            status="pending", combine_until=until, next_attempt_at=until, card_kind="combined"
        )
    else:
        columns.update(status="pending", next_attempt_at=now)
    return columns


async def join_open_cards(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]], now: datetime
) -> int:
    """Fold each planned delivery that waits to combine into an open head of its issue and
    channel — stored by an earlier transaction or earlier in `rows` (one batch, in order) —
    or leave it the head of its own window. Returns how many joined. (The intake writer's
    path; join_open_cards_sync is the same on a synchronous connection.)"""
    wanting = [r for r in rows if r.get("combine_until") is not None]
    if not wanting:
        return 0
    heads = _first_heads(await conn.execute(_open_heads(wanting, now, conn.dialect.name)))
    sizes = dict((await conn.execute(_sizes(list(heads.values())))).all()) if heads else {}
    return _join(wanting, heads, sizes, now)


def join_open_cards_sync(
    connection: Connection, rows: Sequence[dict[str, Any]], now: datetime
) -> int:
    wanting = [r for r in rows if r.get("combine_until") is not None]
    if not wanting:
        return 0
    heads = _first_heads(connection.execute(_open_heads(wanting, now, connection.dialect.name)))
    sizes = dict(connection.execute(_sizes(list(heads.values()))).all()) if heads else {}
    return _join(wanting, heads, sizes, now)


def _open_heads(wanting: Sequence[dict[str, Any]], now: datetime, dialect: str) -> Any:
    query = (
        select(D.id, D.webhook_id, D.issue_key)
        .where(
            # Repeated literally: the partial index ix_delivery_combining serves it.
            D.combine_until.is_not(None),
            D.status == literal_column("'pending'"),
            D.webhook_id.in_({r["webhook_id"] for r in wanting}),
            D.issue_key.in_({r["issue_key"] for r in wanting}),
            D.combine_until > now,
            D.attempt_count == 0,
        )
        .order_by(D.id)
    )
    # Held until this transaction ends: the worker marks a head in flight only after, and
    # then sees what joined it (see the module's docstring).
    return query.with_for_update() if dialect == "postgresql" else query


def _first_heads(found: Any) -> dict[tuple[Any, Any], str]:
    heads: dict[tuple[Any, Any], str] = {}
    for row in found:
        heads.setdefault((row.webhook_id, row.issue_key), row.id)
    return heads


def _sizes(heads: list[str]) -> Any:
    """Deliveries folded into each open head so far (its own event not counted)."""
    return (
        select(D.folded_into, func.count()).where(D.folded_into.in_(heads)).group_by(D.folded_into)
    )


def _join(
    wanting: Sequence[dict[str, Any]],
    heads: dict[tuple[Any, Any], str],
    folded: dict[Any, int],
    now: datetime,
) -> int:
    sizes = {head: 1 + int(folded.get(head, 0)) for head in heads.values()}
    joined = 0
    for row in wanting:
        key = (row["webhook_id"], row["issue_key"])
        head = heads.get(key)
        if head is None or sizes[head] >= COMBINE_AT_MOST:
            heads[key], sizes[row["id"]] = row["id"], 1
            continue
        row.update(
            status="folded",
            folded_into=head,
            combine_until=None,
            card_kind=None,
            next_attempt_at=now,
        )
        sizes[head] += 1
        joined += 1
    return joined

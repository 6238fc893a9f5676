"""SubscriptionIndex: a workspace's subscriptions compiled for matching, cached per generation.

Routing an event must cost what can match it, not what the workspace holds. The index is
built once from the workspace's subscriptions (filters decoded once, values case-folded once)
and kept in memory:

    event type → project → issue type → priority → status → subscriptions

where each level holds a branch per value named in that filter and an "any" branch for the
subscriptions without it. An event walks only the branches of its own event types and values
(and the "any" ones), so what it visits grows with what can match it, not with the
subscriptions that differ from it on project, issue type, priority or status; what is found
is checked against all its filters with exactly the rules of routing/filters.py
(`mismatch`): values OR within a filter, filters AND, names case-insensitive after trimming,
blank values never match, a filter whose values are all blank matches nothing, an event
without an issue fails every filter. Only enabled subscriptions on enabled webhooks are in
the index — the router's candidates.

Interfaces (kept stable for the intake's batching):

    Match(subscription_id, event_type, webhook_id, channel_name)      frozen dataclass
    SubscriptionIndex.match(event: JiraEvent) -> list[Match]          in subscription-id order
    SubscriptionIndex.total                                           every subscription of
                                                                      the workspace, for
                                                                      not_matched_count
    SubscriptionIndex.generation                                      the workspace generation
                                                                      it was built under
    load_index(session, workspace_id) -> SubscriptionIndex            two queries, sync Session
    SubscriptionIndexCache.get(session, workspace_id, generation)     thread-safe, LRU; builds
                                                                      only when the cached
                                                                      index's generation differs

Correctness across processes rests on the generation (workspaces/generation.py): every change
to subscriptions or webhooks bumps it in its own transaction, and the intake reads it in the
transaction that stores the event, so an index is reused only while nothing has changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketmate.jira.events import JiraEvent
from ticketmate.models import TeamsSubscription, TeamsWebhook, Workspace
from ticketmate.routing.filters import ANY_LEVEL, FILTER_FIELDS, SECURITY_FILTER, status_for
from ticketmate.workspaces.generation_cache import GenerationCache

DEFAULT_CACHED_WORKSPACES = 256

# Filters on one value of the event (None when the event has none) and on a set of values.
_SINGLE_FIELDS = ("issue_types", "statuses", "priorities")
_SET_FIELDS = ("labels", "components")


@dataclass(frozen=True, slots=True)
class Match:
    """A subscription that takes an event, with where its delivery goes."""

    subscription_id: str
    event_type: str
    webhook_id: str
    channel_name: str
    # How its deliveries are grouped (routing/combine.py): a combining window in seconds, or
    # held for its digest; neither: a card per event.
    combine_seconds: int | None = None
    digest: bool = False


@dataclass(frozen=True, slots=True)
class IndexedSubscription:
    """One subscription as load_index reads it: the row, its webhook's name and state."""

    id: str
    event_type: str
    enabled: bool
    filters: Mapping[str, Any] | None
    webhook_id: str
    channel_name: str
    webhook_enabled: bool
    combine_seconds: int | None = None
    digest: bool = False


def _folded(values: Any) -> frozenset[str]:
    # filters.py's _fold, once per subscription instead of once per event.
    return frozenset(v.strip().casefold() for v in values if v.strip())


def _folded_value(value: str | None) -> str | None:
    return None if value is None else value.strip().casefold()


@dataclass(frozen=True, slots=True)
class _Compiled:
    match: Match
    # (filter name, its values case-folded), for every filter that is set, in FILTER_FIELDS
    # order. An empty frozenset (only blank values) matches nothing.
    checks: tuple[tuple[str, frozenset[str]], ...]
    # The security levels it may post, case-folded (ANY_LEVEL: any); empty: none.
    security: frozenset[str]


class _EventFacts:
    """The event's values, case-folded once, as the filters compare them."""

    __slots__ = ("_event", "_level", "_sets", "_singles", "_statuses", "guarded")

    def __init__(self, event: JiraEvent, *, withhold_unknown: bool = False) -> None:
        issue = event.issue
        self._event = event
        # Most events are of unrestricted issues: only a guarded event asks each candidate
        # whether it may post restricted issues (filters.py security_refusal).
        level = event.security
        self._level = _folded_value(level.name) if level is not None else None
        self.guarded = level is not None or (
            withhold_unknown and event.security_source == "unknown"
        )
        self._singles: dict[str, str | None] = {
            "projects": _folded_value(issue.project_key) if issue else None,
            "issue_types": _folded_value(issue.issue_type) if issue else None,
            "priorities": _folded_value(issue.priority) if issue else None,
        }
        self._sets: dict[str, frozenset[str]] = {
            "labels": _folded(issue.labels) if issue else frozenset(),
            "components": _folded(issue.components) if issue else frozenset(),
        }
        self._statuses: dict[str, str | None] = {}

    def status(self, event_type: str) -> str | None:
        # For status_changed the status moved into; otherwise the issue's status.
        if event_type not in self._statuses:
            self._statuses[event_type] = _folded_value(status_for(self._event, event_type))
        return self._statuses[event_type]

    def single(self, name: str) -> str | None:
        return self._singles[name]

    def passes(self, compiled: _Compiled) -> bool:
        for name, wanted in compiled.checks:
            if name in _SET_FIELDS:
                if self._sets[name].isdisjoint(wanted):
                    return False
                continue
            value = (
                self.status(compiled.match.event_type)
                if name == "statuses"
                else self._singles[name]
            )
            if value is None or value not in wanted:
                return False
        if self.guarded:
            return ANY_LEVEL in compiled.security or (
                self._level is not None and self._level in compiled.security
            )
        return True


# The one-value filters the index partitions on, in the order of its levels. At each level a
# subscription with that filter is filed under each of its values, one without it under "any";
# an event has one value per level (or none), so it visits one value branch and one "any"
# branch per level, and a subscription is reached at most once.
_LEVELS = ("projects", "issue_types", "priorities", "statuses")
# A subscription is filed under at most this many paths (the product of its filters' value
# counts); past that it stays at the level reached and is checked there in full.
MAX_PATHS_PER_SUBSCRIPTION = 64


class _Node:
    __slots__ = ("any_value", "by_value", "here")

    def __init__(self) -> None:
        # Subscriptions whose remaining filters are checked in full when an event gets here:
        # at the last level only labels and components are left.
        self.here: list[_Compiled] = []
        self.any_value: _Node | None = None
        self.by_value: dict[str, _Node] = {}


def _file(
    node: _Node,
    compiled: _Compiled,
    filters: Mapping[str, Any],
    level: int = 0,
    paths: int = 1,
) -> None:
    if level == len(_LEVELS):
        node.here.append(compiled)
        return
    name = _LEVELS[level]
    if not filters.get(name):
        if node.any_value is None:
            node.any_value = _Node()
        _file(node.any_value, compiled, filters, level + 1, paths)
        return
    values = _folded(filters[name])
    if not values:
        return  # a filter of blank values only matches nothing: filed nowhere
    if paths * len(values) > MAX_PATHS_PER_SUBSCRIPTION:
        node.here.append(compiled)
        return
    for value in values:
        child = node.by_value.get(value)
        if child is None:
            child = node.by_value[value] = _Node()
        _file(child, compiled, filters, level + 1, paths * len(values))


class SubscriptionIndex:
    """The enabled subscriptions of one workspace on its enabled webhooks, ready to match."""

    def __init__(
        self,
        workspace_id: str,
        generation: int,
        subscriptions: Iterable[IndexedSubscription],
        *,
        withhold_unknown: bool = False,
    ) -> None:
        self.workspace_id = workspace_id
        self.generation = generation
        # The workspace's "withhold comments on issues whose security level is unknown".
        self.withhold_unknown = withhold_unknown
        self.total = 0  # every subscription of the workspace, enabled or not
        self.indexed = 0  # those in the index
        self._by_type: dict[str, _Node] = {}
        for subscription in subscriptions:
            self.total += 1
            if subscription.enabled and subscription.webhook_enabled:
                self._add(subscription)

    def _add(self, subscription: IndexedSubscription) -> None:
        filters = subscription.filters or {}
        # Every set filter, Projects included: a subscription filed short of the last level
        # (past MAX_PATHS_PER_SUBSCRIPTION) is checked in full where it stops.
        checks = tuple(
            (name, _folded(filters[name])) for name in FILTER_FIELDS if filters.get(name)
        )
        compiled = _Compiled(
            Match(
                subscription.id,
                subscription.event_type,
                subscription.webhook_id,
                subscription.channel_name,
                subscription.combine_seconds,
                subscription.digest,
            ),
            checks,
            _folded(filters.get(SECURITY_FILTER) or ()),
        )
        root = self._by_type.get(subscription.event_type)
        if root is None:
            root = self._by_type[subscription.event_type] = _Node()
        self.indexed += 1
        _file(root, compiled, filters)

    def match(self, event: JiraEvent) -> list[Match]:
        """The subscriptions that take `event`, in subscription-id order: what the router's
        candidate query followed by `mismatch` would choose."""
        facts = _EventFacts(event, withhold_unknown=self.withhold_unknown)
        found: list[Match] = []
        for event_type in dict.fromkeys(t.value for t in event.event_types):
            root = self._by_type.get(event_type)
            if root is None:
                continue
            values = (
                facts.single("projects"),
                facts.single("issue_types"),
                facts.single("priorities"),
                facts.status(event_type),
            )
            found.extend(_reach(root, values, facts))
        found.sort(key=lambda m: m.subscription_id)
        return found


def _reach(root: _Node, values: tuple[str | None, ...], facts: _EventFacts) -> list[Match]:
    """The subscriptions under `root` that take an event with these level values."""
    found: list[Match] = []
    nodes = [(root, 0)]
    while nodes:
        node, level = nodes.pop()
        found.extend(c.match for c in node.here if facts.passes(c))
        if level == len(_LEVELS):
            continue
        if node.any_value is not None:
            nodes.append((node.any_value, level + 1))
        value = values[level]
        if value is not None:
            child = node.by_value.get(value)
            if child is not None:
                nodes.append((child, level + 1))
    return found


def load_index(session: Session, workspace_id: str) -> SubscriptionIndex:
    """Build the workspace's index: its generation and security setting, then all its
    subscriptions in one query.

    The generation is read first, so the rows are at least as new as the number the index is
    kept under (on PostgreSQL each statement sees the latest commits): a change committed in
    between makes the next event see a newer generation and build again, never the reverse.
    """
    settings = session.execute(
        select(Workspace.config_generation, Workspace.withhold_unknown_security).where(
            Workspace.id == workspace_id
        )
    ).first()
    generation = int(settings[0] or 0) if settings else 0
    withhold_unknown = bool(settings[1]) if settings else False
    S, W = TeamsSubscription, TeamsWebhook
    rows = session.execute(
        select(
            S.id,
            S.event_type,
            S.enabled,
            S.filters,
            S.webhook_id,
            W.channel_name,
            W.enabled,
            S.combine_seconds,
            S.digest,
        )
        .join(W, W.id == S.webhook_id)
        .where(S.workspace_id == workspace_id)
        .order_by(S.id)
    ).all()
    return SubscriptionIndex(
        workspace_id,
        generation,
        (
            IndexedSubscription(
                id=row[0],
                event_type=row[1],
                enabled=bool(row[2]),
                filters=row[3],
                webhook_id=row[4],
                channel_name=row[5],
                webhook_enabled=bool(row[6]),
                combine_seconds=row[7] or None,
                digest=row[8] is not None,
            )
            for row in rows
        ),
        withhold_unknown=withhold_unknown,
    )


class SubscriptionIndexCache:
    """The indexes of the most recently routed workspaces, each under its generation.

    Kept in a GenerationCache (workspaces/generation_cache.py): thread-safe, the newer
    generation wins when two builds race, at most `max_workspaces` indexes, least recently used
    dropped first.
    """

    def __init__(self, max_workspaces: int = DEFAULT_CACHED_WORKSPACES) -> None:
        self.builds = 0  # how many indexes were built: a reuse builds none
        self._kept: GenerationCache[SubscriptionIndex] = GenerationCache(max_workspaces)

    def get(self, session: Session, workspace_id: str, generation: int) -> SubscriptionIndex:
        """The workspace's index for `generation`, read in the caller's transaction; built
        again only when the cached one was built under another generation."""
        cached = self._kept.lookup(workspace_id, generation)
        if cached is not None:
            return cached
        index = load_index(session, workspace_id)
        self.builds += 1
        self._kept.keep(workspace_id, index.generation, index)
        return index

    def forget(self, workspace_id: str) -> None:
        self._kept.forget(workspace_id)

    def __len__(self) -> int:
        return len(self._kept)

"""The Open in Jira link goes only to the workspace's Jira.

A link's site comes from the payload's `issue.self`. Only a well-formed https (or http) origin
with a valid host name makes a link at all; the first signed event pins the workspace's Jira
base URL (or an administrator sets it), and later events whose site differs get no link and a
note saying why. Cards are checked where Teams receives them: at a real HTTP stand-in.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.jira.support import assert_error, payload, post_signed, post_with_token, stored
from tests.jira.test_concurrency import fire_at_once, live_server, signed  # noqa: F401
from tests.support.factories import MadeUser, MadeWorkspace, bearer, make_user
from tests.support.teams import drain, make_subscription, make_webhook
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.jira.events import EventType, JiraEvent
from ticketmate.jira.transform import (
    MALFORMED_LINK_NOTE,
    NotASite,
    Transformed,
    read_site,
    site_base,
    transform,
)
from ticketmate.models import AuditEntry, Workspace
from ticketmate.state import Services
from ticketmate.teams.cards import build_card
from ticketmate.workspaces.service import learn_jira_base_url

CREATED = "mattermost_mattermost-plugin-jira__issue-created.json"
REAL = "https://some-instance-test.atlassian.net"  # the fixture's own site
OTHER = "https://other-site.atlassian.net"
BASE = "/api/v1/workspaces/acme/jira"

# The payload's issue.self in the security report, and its relatives.
MALFORMED = [
    'https://evil.test"><img src=x onerror=alert(1)>/rest/api/2/issue/10040',
    "https://evil.test'/rest/api/2/issue/10040",
    "https://evil.test/a b/rest/api/2/issue/10040",
    "https://evil.test/<script>/rest/api/2/issue/10040",
    " https://jira.acme.test/rest/api/2/issue/10040",
    "https://jira.acme.test@evil.test/rest/api/2/issue/10040",
    "https://user:password@jira.acme.test/rest/api/2/issue/10040",
    "https://jira.acme.test\\@evil.test/rest/api/2/issue/10040",
    "javascript://jira.acme.test/rest/api/2/issue/%0aalert(1)",
    "ftp://jira.acme.test/rest/api/2/issue/10040",
    "data:text/html,<b>x</b>/rest/api/2/issue/10040",
    "//evil.test/rest/api/2/issue/10040",
    "https:evil.test/rest/api/2/issue/10040",
    "https:///rest/api/2/issue/10040",
    "https://-evil.test/rest/api/2/issue/10040",
    "https://evil_site.test/rest/api/2/issue/10040",
    "https://evil..test/rest/api/2/issue/10040",
    "https://evil.test./rest/api/2/issue/10040",
    "https://2130706433/rest/api/2/issue/10040",
    "https://0x7f.0.0.1/rest/api/2/issue/10040",
    "https://127.0.0.01/rest/api/2/issue/10040",
    "https://jira.acme.test:99999/rest/api/2/issue/10040",
    "https://jira.acme.test:0/rest/api/2/issue/10040",
    "https://jira.acme.test:/rest/api/2/issue/10040",
    "https://jira.acme.test:80:81/rest/api/2/issue/10040",
    "https://[::1%25eth0]/rest/api/2/issue/10040",
    "https://[not-ipv6]/rest/api/2/issue/10040",
    "https://jira.acme.test/%2e%2e/rest/api/2/issue/10040",
    "https://jira.acme.test/../rest/api/2/issue/10040",
    # IDN trickery: full-width and Cyrillic letters that look like the real name, and an xn--
    # label that is no internationalised name at all.
    "https://ｊira.acme.test/rest/api/2/issue/10040",
    "https://jira.acme.tеst/rest/api/2/issue/10040",
    "https://jira.acme.test／evil.test/rest/api/2/issue/10040",
    "https://xn--a.test/rest/api/2/issue/10040",
    "https://" + "a" * 64 + ".test/rest/api/2/issue/10040",
]


# Only the site is ever used, but a URL with these anywhere is not one Jira wrote.
MALFORMED_PAST_THE_SITE = [
    'https://jira.acme.test/rest/api/2/issue/10040"><img src=x>',
    "https://jira.acme.test/rest/api/2/issue/10040?q=<evil>",
    "https://jira.acme.test/rest/api/2/issue/1\u00e9",
]


def with_self(self_url: object, key: str = "TES-41") -> dict[str, Any]:
    body = copy.deepcopy(payload(CREATED))
    body["issue"]["self"] = self_url
    body["issue"]["key"] = key
    return body


def envelope_of(outcome: object) -> JiraEvent:
    assert isinstance(outcome, Transformed), outcome
    return outcome.envelope


def pinned(svc: Services, workspace: MadeWorkspace) -> str | None:
    with svc.db.transaction() as session:
        return session.scalar(select(Workspace.jira_base_url).where(Workspace.id == workspace.id))


def site_audit(svc: Services, workspace: MadeWorkspace) -> list[tuple[str, str, Any]]:
    with svc.db.transaction() as session:
        entries = session.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.workspace_id == workspace.id,
                AuditEntry.action.like("jira.base_url.%"),
            )
            .order_by(AuditEntry.seq)
        )
        return [(e.actor_type, e.action, e.details) for e in entries]


def browse_url(svc: Services, event_id: str) -> str | None:
    record = stored(svc, event_id)
    assert record.status == "routed", record.reason
    assert record.envelope is not None
    url: str | None = record.envelope["issue"]["browse_url"]
    return url


def accepted(response: Any) -> str:
    assert response.status_code == 202, response.text
    event_id: str = response.json()["event_id"]
    return event_id


def open_urls(card: dict[str, Any]) -> list[str]:
    return [a["url"] for a in card.get("actions", []) if a["type"] == "Action.OpenUrl"]


@pytest.fixture
def admin(svc: Services, workspace: MadeWorkspace) -> MadeUser:
    return make_user(svc, "admin@acme.test", {workspace.slug: "admin"})


@pytest.fixture
def channel(svc: Services, workspace: MadeWorkspace, sink: TeamsSink) -> str:
    """A Teams channel (the stand-in) subscribed to issue_created; answers its path."""
    path = "/workflows/eng"
    hook = make_webhook(svc, workspace.id, "#eng", sink.url(path))
    make_subscription(svc, workspace.id, hook, "issue_created")
    return path


@pytest.fixture
def sink() -> Iterator[TeamsSink]:
    with TeamsSink() as running:
        yield running


def cards_at(sink: TeamsSink, path: str, count: int, svc: Services) -> list[dict[str, Any]]:
    drain(svc)
    received = sink.wait_for(count, path)
    assert len(received) == count
    return [r.json()["attachments"][0]["content"] for r in received]


# ---------------------------------------------------------------------------------------------
# Which origins make a link at all


@pytest.mark.parametrize("self_url", MALFORMED + MALFORMED_PAST_THE_SITE)
def test_a_malformed_origin_gives_no_link_and_says_why(self_url: str) -> None:
    assert site_base(self_url) is None
    envelope = envelope_of(transform(with_self(self_url)))
    assert envelope.issue is not None
    assert envelope.issue.browse_url is None
    assert MALFORMED_LINK_NOTE in envelope.notes
    card = build_card(envelope, EventType.ISSUE_CREATED)
    assert "actions" not in card
    assert "evil" not in json.dumps(card)


@pytest.mark.parametrize(
    ("self_url", "site"),
    [
        ("https://JIRA.Acme.test:443/rest/api/2/issue/10040", "https://jira.acme.test"),
        ("http://jira.acme.test:80/rest/api/2/issue/10040", "http://jira.acme.test"),
        ("http://jira.acme.test:8080/jira/rest/api/2/issue/1", "http://jira.acme.test:8080/jira"),
        ("https://jira.acme.test/a/b-c_d.e~f/rest/api/2/1", "https://jira.acme.test/a/b-c_d.e~f"),
        ("http://10.0.0.5:8080/rest/api/2/issue/1", "http://10.0.0.5:8080"),
        ("http://[2001:DB8:0::1]:8080/rest/api/2/issue/1", "http://[2001:db8::1]:8080"),
        ("https://jira/rest/api/2/issue/1", "https://jira"),  # an intranet name
        ("https://xn--mnchen-3ya.test/rest/api/2/issue/1", "https://xn--mnchen-3ya.test"),
        # Whatever follows /rest/ is never part of the link.
        ("https://jira.acme.test/rest/api/2/issue/1?x=1#top", "https://jira.acme.test"),
    ],
)
def test_a_well_formed_origin_is_read_and_normalised(self_url: str, site: str) -> None:
    assert site_base(self_url) == site


def test_the_link_is_made_from_the_site_and_the_key_only() -> None:
    envelope = envelope_of(
        transform(with_self("https://JIRA.acme.test/jira/rest/api/2/issue/1", key="A B/../C"))
    )
    assert envelope.issue is not None
    assert envelope.issue.browse_url == "https://jira.acme.test/jira/browse/A%20B%2F..%2FC"
    assert MALFORMED_LINK_NOTE not in envelope.notes
    card = build_card(envelope, EventType.ISSUE_CREATED)
    assert open_urls(card) == [envelope.issue.browse_url]


@pytest.mark.parametrize(
    "url",
    [
        'https://evil.test"><img src=x>/browse/TES-41',
        "javascript:alert(1)//browse/TES-41",
        "https://user@jira.acme.test/browse/TES-41",
        "https://jira.acme.test/browse/TES-41?x=1",
        "https://jira.acme.test/browse/TES 41",
        "https://jira.acme.test/other/TES-41",
        "https://JIRA.acme.test/browse/TES-41",  # not the form intake writes
    ],
)
def test_a_card_never_gets_a_button_from_a_link_intake_would_not_make(url: str) -> None:
    # Envelopes stored before this check (or written some other way) are still rendered.
    envelope = JiraEvent.model_validate(
        {"event_types": ["issue_created"], "issue": {"key": "TES-41", "browse_url": url}}
    )
    assert "actions" not in build_card(envelope, EventType.ISSUE_CREATED)


@pytest.mark.parametrize(
    ("typed", "site"),
    [
        ("https://your-site.atlassian.net", "https://your-site.atlassian.net"),
        ("  https://Your-Site.atlassian.net/  ", "https://your-site.atlassian.net"),
        ("https://jira.example.com:8443/jira/", "https://jira.example.com:8443/jira"),
        ("http://jira.example.com:80", "http://jira.example.com"),
        ("https://xn--mnchen-3ya.test", "https://xn--mnchen-3ya.test"),
    ],
)
def test_an_administrators_base_url_is_normalised(typed: str, site: str) -> None:
    assert read_site(typed) == site


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "your-site.atlassian.net",
        "https://your-site.atlassian.net/browse/DEMO-1",
        "https://your-site.atlassian.net/rest/api/2",
        "https://your-site.atlassian.net/?x=1",
        "https://your-site.atlassian.net/#top",
        *(url.split("/rest/")[0] for url in MALFORMED if "://" in url and url == url.strip()),
    ],
)
def test_an_administrators_base_url_must_be_a_site(typed: str) -> None:
    with pytest.raises(NotASite):
        read_site(typed)


# ---------------------------------------------------------------------------------------------
# Pinning: learned from the first signed event


def test_the_first_signed_event_pins_the_site_and_a_foreign_link_is_left_out(
    client: TestClient,
    svc: Services,
    workspace: MadeWorkspace,
    admin: MadeUser,
    sink: TeamsSink,
    channel: str,
) -> None:
    assert pinned(svc, workspace) is None
    first = accepted(post_signed(client, workspace, with_self(f"{REAL}/rest/api/2/issue/10040")))
    assert pinned(svc, workspace) == REAL
    assert browse_url(svc, first) == f"{REAL}/browse/TES-41"
    assert site_audit(svc, workspace) == [
        ("system", "jira.base_url.learned", {"jira_base_url": REAL})
    ]

    # Well-formed, signed, but another site: no link, and the event says why.
    second = accepted(post_signed(client, workspace, with_self(f"{OTHER}/rest/api/2/issue/1")))
    assert browse_url(svc, second) is None
    detail = client.get(f"{BASE}/events/{second}", headers=bearer(admin)).json()
    [note] = [n for n in detail["envelope"]["notes"] if OTHER in n]
    assert REAL in note
    assert "no Open in Jira link" in note
    assert note in detail["reason"]
    first_detail = client.get(f"{BASE}/events/{first}", headers=bearer(admin)).json()
    assert first_detail["reason"] is None

    first_card, second_card = cards_at(sink, channel, 2, svc)
    assert open_urls(first_card) == [f"{REAL}/browse/TES-41"]
    assert "actions" not in second_card
    assert OTHER not in json.dumps(second_card)
    # The pin stays; nothing more was learned.
    assert pinned(svc, workspace) == REAL
    assert len(site_audit(svc, workspace)) == 1


def test_a_malformed_first_event_teaches_nothing(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    bad = accepted(post_signed(client, workspace, with_self(MALFORMED[0])))
    assert browse_url(svc, bad) is None
    assert MALFORMED_LINK_NOTE in (stored(svc, bad).reason or "")
    assert pinned(svc, workspace) is None
    accepted(post_signed(client, workspace, with_self(f"{REAL}/rest/api/2/issue/10040")))
    assert pinned(svc, workspace) == REAL


def test_token_events_never_pin_the_site_but_are_held_to_the_pin(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    # The ingest token travels in Automation rules and URLs: it vouches for less than a
    # signature, so it teaches nothing. Until a site is pinned its well-formed links stay.
    early = accepted(post_with_token(client, workspace, with_self(f"{OTHER}/rest/api/2/1")))
    assert browse_url(svc, early) == f"{OTHER}/browse/TES-41"
    assert pinned(svc, workspace) is None
    assert site_audit(svc, workspace) == []

    accepted(post_signed(client, workspace, with_self(f"{REAL}/rest/api/2/issue/10040")))
    assert pinned(svc, workspace) == REAL
    late = accepted(post_with_token(client, workspace, with_self(f"{OTHER}/rest/api/2/1")))
    assert browse_url(svc, late) is None
    assert OTHER in (stored(svc, late).reason or "")
    same = accepted(post_with_token(client, workspace, with_self(f"{REAL}/rest/api/2/1")))
    assert browse_url(svc, same) == f"{REAL}/browse/TES-41"


def test_an_internationalised_host_is_linked_only_once_an_administrator_entered_it(
    client: TestClient, svc: Services, workspace: MadeWorkspace, admin: MadeUser
) -> None:
    idn = "https://xn--mnchen-3ya.test"
    first = accepted(post_signed(client, workspace, with_self(f"{idn}/rest/api/2/issue/1")))
    assert browse_url(svc, first) is None
    assert "internationalised" in (stored(svc, first).reason or "")
    assert pinned(svc, workspace) is None  # never learned from a payload

    response = client.put(f"{BASE}/site", json={"jira_base_url": idn}, headers=bearer(admin))
    assert response.status_code == 200, response.text
    again = accepted(post_signed(client, workspace, with_self(f"{idn}/rest/api/2/issue/1")))
    assert browse_url(svc, again) == f"{idn}/browse/TES-41"
    assert stored(svc, again).reason is None


def test_learning_never_replaces_a_pinned_site(svc: Services, workspace: MadeWorkspace) -> None:
    # What the loser of two concurrent first events does once the winner has committed (its
    # UPDATE waited on the row): it learns nothing and gets the winner's site back.
    with svc.db.transaction() as session:
        assert learn_jira_base_url(session, workspace.id, REAL) == REAL
    with svc.db.transaction() as session:
        assert learn_jira_base_url(session, workspace.id, OTHER) == REAL
    assert pinned(svc, workspace) == REAL
    assert site_audit(svc, workspace) == [
        ("system", "jira.base_url.learned", {"jira_base_url": REAL})
    ]


def test_concurrent_first_events_pin_exactly_one_site(
    live_server: str,  # noqa: F811
    svc: Services,
    workspace: MadeWorkspace,
) -> None:
    requests = [
        signed(workspace, with_self(f"{site}/rest/api/2/issue/1"), f"hook-{i}")
        for i, site in enumerate([REAL, OTHER] * 4)
    ]
    responses = fire_at_once(live_server, requests)
    assert [r.status_code for r in responses] == [202] * len(requests), [r.text for r in responses]
    winner = pinned(svc, workspace)
    assert winner in (REAL, OTHER)
    assert site_audit(svc, workspace) == [
        ("system", "jira.base_url.learned", {"jira_base_url": winner})
    ]
    links = [browse_url(svc, r.json()["event_id"]) for r in responses]
    sites = [REAL, OTHER] * 4
    assert links == [f"{s}/browse/TES-41" if s == winner else None for s in sites]


# ---------------------------------------------------------------------------------------------
# Set by an administrator through the API


def test_an_administrator_sets_changes_and_clears_the_site(
    client: TestClient, svc: Services, workspace: MadeWorkspace, admin: MadeUser
) -> None:
    site = client.get(f"{BASE}/site", headers=bearer(admin))
    assert site.status_code == 200
    assert site.json() == {"jira_base_url": None}

    response = client.put(
        f"{BASE}/site", json={"jira_base_url": "https://Jira.ACME.test/"}, headers=bearer(admin)
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"jira_base_url": "https://jira.acme.test"}
    assert pinned(svc, workspace) == "https://jira.acme.test"

    # Set by hand, the pin is not replaced by what a signed event says.
    event = accepted(post_signed(client, workspace, with_self(f"{REAL}/rest/api/2/issue/1")))
    assert browse_url(svc, event) is None
    assert pinned(svc, workspace) == "https://jira.acme.test"

    client.put(f"{BASE}/site", json={"jira_base_url": REAL}, headers=bearer(admin))
    event = accepted(post_signed(client, workspace, with_self(f"{REAL}/rest/api/2/issue/1")))
    assert browse_url(svc, event) == f"{REAL}/browse/TES-41"

    cleared = client.put(f"{BASE}/site", json={"jira_base_url": None}, headers=bearer(admin))
    assert cleared.json() == {"jira_base_url": None}
    assert client.get(f"{BASE}/site", headers=bearer(admin)).json() == {"jira_base_url": None}
    accepted(post_signed(client, workspace, with_self(f"{OTHER}/rest/api/2/issue/1")))
    assert pinned(svc, workspace) == OTHER  # learned again

    assert [(actor, action) for actor, action, _ in site_audit(svc, workspace)] == [
        ("user", "jira.base_url.set"),
        ("user", "jira.base_url.set"),
        ("user", "jira.base_url.cleared"),
        ("system", "jira.base_url.learned"),
    ]
    details = [d for _, _, d in site_audit(svc, workspace)]
    assert details[0] == {"jira_base_url": "https://jira.acme.test", "previous": None}
    assert details[1] == {"jira_base_url": REAL, "previous": "https://jira.acme.test"}
    assert details[2] == {"jira_base_url": None, "previous": REAL}


@pytest.mark.parametrize(
    "body",
    [
        {"jira_base_url": MALFORMED[0].split("/rest/")[0]},
        {"jira_base_url": "https://admin@jira.acme.test"},
        {"jira_base_url": "ftp://jira.acme.test"},
        {"jira_base_url": "jira.acme.test"},
        {"jira_base_url": "https://ｊira.acme.test"},
        {"jira_base_url": "https://jira.acme.test/browse/DEMO-1"},
        {"jira_base_url": ""},
        {"jira_base_url": "https://jira.acme.test/" + "a" * 3000},
        {"jira_base_url": 42},
        {},
        {"jira_base_url": "https://jira.acme.test", "extra": 1},
    ],
)
def test_a_base_url_that_is_not_a_site_is_422(
    client: TestClient,
    svc: Services,
    workspace: MadeWorkspace,
    admin: MadeUser,
    body: dict[str, object],
) -> None:
    response = client.put(f"{BASE}/site", json=body, headers=bearer(admin))
    error = assert_error(response, 422, "validation_error")["error"]
    assert error["details"]
    assert pinned(svc, workspace) is None
    assert site_audit(svc, workspace) == []


def test_only_administrators_change_the_site(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    member = make_user(svc, "member@acme.test", {workspace.slug: "member"})
    body = {"jira_base_url": REAL}
    assert_error(
        client.put(f"{BASE}/site", json=body, headers=bearer(member)), 403, "admin_required"
    )
    assert_error(client.put(f"{BASE}/site", json=body), 401, "unauthorized")
    assert pinned(svc, workspace) is None

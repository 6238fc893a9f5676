"""Admin > Integrations: the Microsoft Teams card and the Jira card with hidden credentials."""

from __future__ import annotations

from sqlalchemy import select

from tests.support.teams import drain, event, make_subscription, make_webhook, store_and_route
from tests.web.conftest import Browser, People, flash_of, htmx, post_form
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.models import AuditEntry, Workspace
from ticketmate.state import Services
from ticketmate.workspaces.service import jira_credentials

A = "/w/acme/admin/integrations"


def credentials(svc: Services, people: People) -> tuple[str, str]:
    with svc.db.transaction() as session:
        workspace = session.get(Workspace, people.acme.id)
        assert workspace is not None
        found = jira_credentials(svc.keyring, workspace)
        return found.secret, found.ingest_token


def test_teams_card_counts_and_last_outcome(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    page = admin.client.get(A).text
    assert "<h2>Microsoft Teams</h2>" in page
    assert "Post Jira activity to Microsoft Teams channels as Adaptive Cards." in page
    assert "<strong>0</strong> webhooks" in page
    assert "none yet" in page
    assert f'<a href="{A}/teams/webhooks" role="button">Manage</a>' in page

    hook = make_webhook(svc, people.acme.id, "#eng", sink.url("/workflows/eng"))
    make_webhook(svc, people.acme.id, "#ops", sink.url("/workflows/ops"))
    make_subscription(svc, people.acme.id, hook, "issue_created")
    make_subscription(svc, people.acme.id, hook, "status_changed", enabled=False)
    sink.set_default("/workflows/eng", Answer(400, "Summary or Text is required."))
    store_and_route(svc, people.acme.id, event(["issue_created"]))
    drain(svc)
    page = admin.client.get(A).text
    assert "<strong>2</strong> webhooks" in page
    assert "<strong>2</strong> subscriptions (1 enabled)" in page
    assert '<span class="badge badge-dead-letter">Dead letter</span> to “#eng”' in page


def test_jira_card_shows_the_url_but_hides_secret_and_token(
    admin: Browser, svc: Services, people: People
) -> None:
    secret, token = credentials(svc, people)
    page = admin.client.get(A).text
    assert "http://testserver/api/webhooks/jira?workspace=acme" in page
    assert secret not in page
    assert token not in page
    assert page.count(">Reveal</a>") == 2
    assert page.count(">Regenerate</button>") == 2
    assert page.count(">Copy</button>") == 1  # the URL; the secrets' only after Reveal
    for words in ("Jira Cloud", "Jira Data Center", "Jira Automation", "Send web request"):
        assert words in page


def test_reveal_fetches_one_value_uncached(admin: Browser, svc: Services, people: People) -> None:
    secret, token = credentials(svc, people)
    fragment = htmx(admin, "GET", f"{A}/jira/reveal", which="secret")
    assert fragment.status_code == 200
    assert fragment.headers["cache-control"] == "no-store"
    assert f'<code id="jira-secret-value">{secret}</code>' in fragment.text
    assert token not in fragment.text
    assert "<html" not in fragment.text
    assert ">Copy</button>" in fragment.text
    # Without JavaScript the link loads the whole page with that one value shown.
    page = admin.client.get(f"{A}/jira/reveal?which=ingest_token")
    assert page.headers["cache-control"] == "no-store"
    assert token in page.text
    assert secret not in page.text


def test_regenerate_asks_first_without_javascript(
    admin: Browser, svc: Services, people: People
) -> None:
    before = credentials(svc, people)
    confirm = post_form(admin, f"{A}/jira/regenerate", which="secret")
    assert confirm.status_code == 200
    assert "Regenerate the Jira secret?" in confirm.text
    assert 'name="confirmed" value="1"' in confirm.text
    assert credentials(svc, people) == before

    done = post_form(admin, f"{A}/jira/regenerate", which="secret", confirmed="1")
    message = flash_of(admin, done)
    assert "New secret created; the old one no longer works." in message
    secret, token = credentials(svc, people)
    assert secret != before[0]
    assert token == before[1]
    assert secret not in admin.client.get(A).text
    with svc.db.transaction() as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert "jira.secret.regenerated" in actions


def test_regenerate_with_htmx_confirms_in_the_browser_and_shows_the_new_value(
    admin: Browser, svc: Services, people: People
) -> None:
    page = admin.client.get(A).text
    assert 'hx-confirm="Regenerate the ingest token? The current one stops working' in page
    card = htmx(admin, "POST", f"{A}/jira/regenerate", which="ingest_token", confirmed="1")
    assert card.status_code == 200
    assert card.headers["cache-control"] == "no-store"
    _, token = credentials(svc, people)
    assert f'<code id="jira-ingest_token-value">{token}</code>' in card.text
    assert "New ingest token created" in card.text
    assert '<article class="integration" id="jira">' in card.text

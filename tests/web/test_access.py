"""Who reaches the admin pages: sign-in first, 404 for outsiders, the 403 page for members on
every admin URL, CSRF on every change, and pages that are never cached."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.support.factories import bearer
from tests.support.teams import make_subscription, make_webhook
from tests.support.web import sign_in
from tests.web.conftest import Browser, People, htmx, post_form
from ticketmate.state import Services

A = "/w/acme/admin/integrations"
T = f"{A}/teams"
ID = "01J0000000000000000000000X"  # an id that exists nowhere: the access check comes first

GET_PAGES = [
    "/w/acme",
    "/w/acme/admin",
    A,
    f"{A}/jira/reveal?which=secret",
    f"{A}/jira/reveal?which=ingest_token",
    T,
    f"{T}/webhooks",
    f"{T}/webhooks/new",
    f"{T}/webhooks/{ID}/edit",
    f"{T}/webhooks/{ID}/delete",
    f"{T}/subscriptions",
    f"{T}/subscriptions/new",
    f"{T}/subscriptions/{ID}/edit",
    f"{T}/deliveries",
    f"{T}/deliveries/{ID}",
    f"{T}/events",
    f"{T}/events/{ID}",
    "/w/acme/security/audit-log",
    "/w/acme/security/audit-log/verify",
    "/w/acme/admin/anything/else",
]
POST_ACTIONS = [
    f"{A}/jira/regenerate",
    f"{T}/webhooks",
    f"{T}/webhooks/test",
    f"{T}/webhooks/{ID}",
    f"{T}/webhooks/{ID}/test",
    f"{T}/webhooks/{ID}/enabled",
    f"{T}/webhooks/{ID}/delete",
    f"{T}/subscriptions",
    f"{T}/subscriptions/{ID}",
    f"{T}/subscriptions/{ID}/enabled",
    f"{T}/subscriptions/{ID}/delete",
    f"{T}/deliveries/retry",
    f"{T}/deliveries/{ID}/retry",
]
ADMIN_REQUIRED = "You need to be a workspace administrator"


@pytest.fixture
def member(client: TestClient, people: People) -> Browser:
    return Browser(client, sign_in(client, people.member.email, people.member.password), A)


@pytest.mark.parametrize("path", GET_PAGES)
def test_a_member_gets_the_admin_required_page_on_every_admin_url(
    member: Browser, path: str
) -> None:
    page = member.client.get(path, follow_redirects=False)
    assert page.status_code == 403
    assert "text/html" in page.headers["content-type"]
    assert ADMIN_REQUIRED in page.text
    assert "member@acme.test" in page.text  # the layout still says who is signed in
    assert "Sign out" in page.text


@pytest.mark.parametrize("path", POST_ACTIONS)
def test_a_member_cannot_change_anything(member: Browser, path: str) -> None:
    answer = post_form(
        member, path, which="secret", channel_name="x", url="http://x", confirmed="1"
    )
    assert answer.status_code == 403
    assert ADMIN_REQUIRED in answer.text


@pytest.mark.parametrize("path", [*GET_PAGES[:6], f"{T}/deliveries", "/w/acme/security/audit-log"])
def test_outsiders_get_404_with_no_hint_the_workspace_exists(
    client: TestClient, people: People, path: str
) -> None:
    sign_in(client, people.outsider.email, people.outsider.password)
    page = client.get(path, follow_redirects=False)
    assert page.status_code == 404
    assert "Page not found" in page.text
    unknown = client.get(path.replace("/w/acme", "/w/nosuch"), follow_redirects=False)
    assert unknown.status_code == 404
    assert unknown.text.replace("nosuch", "acme") == page.text


@pytest.mark.parametrize("path", [A, f"{T}/deliveries?status=dead_letter", "/w/acme/admin/x"])
def test_signed_out_visitors_go_to_the_sign_in_page_and_come_back(
    client: TestClient, people: People, path: str
) -> None:
    page = client.get(path, follow_redirects=False)
    assert page.status_code == 303
    target = page.headers["location"]
    assert target.startswith("/login?next=/w/acme/")
    form = client.get(target)
    assert f'name="next" value="{path}"' in form.text.replace("&amp;", "&")


def test_a_signed_out_post_goes_to_sign_in(client: TestClient, people: People) -> None:
    answer = client.post(f"{T}/webhooks", data={"channel_name": "x"}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login")


def test_htmx_requests_of_an_expired_session_load_the_sign_in_page(
    client: TestClient, people: People
) -> None:
    answer = client.get(
        f"{A}/jira/reveal?which=secret",
        headers={"HX-Request": "true", "HX-Current-URL": f"http://testserver{A}"},
    )
    assert answer.status_code == 204
    assert answer.headers["HX-Redirect"] == f"/login?next={A}"


def test_api_tokens_do_not_open_pages(client: TestClient, people: People) -> None:
    page = client.get(A, headers=bearer(people.admin), follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")


def test_posts_without_the_csrf_token_are_refused(admin: Browser, svc: Services) -> None:
    for sent in ({}, {"csrf_token": "forged"}):
        answer = admin.client.post(
            f"{T}/webhooks",
            data={"channel_name": "#eng", "url": "http://127.0.0.1:9/workflows/x", **sent},
            follow_redirects=False,
        )
        assert answer.status_code == 403
        assert "CSRF token is missing or wrong" in answer.text
    assert "#eng" not in admin.client.get(f"{T}/webhooks").text


def test_htmx_sends_the_csrf_token_as_a_header(
    admin: Browser, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", "http://127.0.0.1:9/workflows/x")
    refused = admin.client.post(
        f"{T}/webhooks/{hook}/enabled", headers={"HX-Request": "true", "X-CSRF-Token": "forged"}
    )
    assert refused.status_code == 403
    assert 'class="inline-error"' in refused.text  # a fragment, swapped in place
    accepted = htmx(admin, "POST", f"{T}/webhooks/{hook}/enabled")
    assert accepted.status_code == 200
    assert 'role="switch"' in accepted.text


def test_every_form_on_the_pages_carries_the_session_csrf_token(
    admin: Browser, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", "http://127.0.0.1:9/workflows/x")
    make_subscription(svc, people.acme.id, hook, "issue_created")
    for path in (A, f"{T}/webhooks", f"{T}/webhooks/new", f"{T}/subscriptions", f"{T}/deliveries"):
        page = admin.client.get(path).text
        posts = page.count('method="post"')
        assert posts > 0, path
        assert page.count(f'name="csrf_token" value="{admin.csrf}"') == posts, path
        assert f'hx-headers=\'{{"X-CSRF-Token": "{admin.csrf}"}}\'' in page


def test_admin_pages_are_never_cached(admin: Browser) -> None:
    for path in (A, f"{A}/jira/reveal?which=secret", f"{T}/webhooks", "/w/acme/security/audit-log"):
        assert admin.client.get(path).headers["cache-control"] == "no-store", path


def test_an_unknown_admin_address_is_a_404_page_for_admins(admin: Browser) -> None:
    page = admin.client.get("/w/acme/admin/nothing-here")
    assert page.status_code == 404
    assert "Page not found" in page.text


def test_invalid_parameters_are_an_error_page_not_json(admin: Browser) -> None:
    page = admin.client.get(f"{A}/jira/reveal?which=password")
    assert page.status_code == 400
    assert "text/html" in page.headers["content-type"]
    cursor = admin.client.get(f"{T}/deliveries?cursor=!!!")
    assert cursor.status_code == 400
    assert "The cursor is not one this list gave out." in cursor.text


def test_the_layout_names_the_workspace_user_and_sections(admin: Browser) -> None:
    page = admin.client.get(A).text
    assert "Acme Corp" in page
    assert "Admin &gt; Integrations" in page
    assert "Security &gt; Audit Log" in page
    assert "admin@acme.test" in page
    assert ">Sign out</button>" in page
    # The administrator also belongs to Globex: the switcher offers both workspaces.
    assert 'class="dropdown switcher"' in page
    assert 'href="/w/globex/admin/integrations"' in page


def test_one_workspace_means_no_switcher(client: TestClient, people: People) -> None:
    sign_in(client, people.outsider.email, people.outsider.password)
    page = client.get("/w/globex/admin/integrations").text
    assert 'class="workspace">Globex<' in page
    assert "switcher" not in page


def test_home_links_admins_to_their_pages(admin: Browser) -> None:
    home = admin.client.get("/").text
    assert '<a href="/w/acme/admin/integrations">Admin &gt; Integrations</a>' in home
    assert '<a href="/w/acme/security/audit-log">Security &gt; Audit Log</a>' in home
    # In Globex this user is a member: no admin links there.
    assert 'href="/w/globex/admin/integrations"' not in home

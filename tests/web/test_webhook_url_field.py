"""A webhook URL typed into the form stays masked when the form comes back.

Without JavaScript, a Test Connection or a Save that fails returns the whole form with what was
typed, the URL too. The URL is a secret: it may be there only as the value of a password field,
never as text, in another attribute, in an error message or in the test result.
"""

from __future__ import annotations

from html.parser import HTMLParser

from httpx2 import Response

from tests.support.teams import make_webhook
from tests.web.conftest import Browser, People, post_form
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.state import Services

T = "/w/acme/admin/integrations/teams"
# What makes a Workflows URL a secret: its path and its signature. Neither holds "&", so each
# reads the same in the HTML source as in the URL.
PATH = "/workflows/Pr1vatePath0fTheFlow/triggers/manual/paths/invoke"
SIG = "S1gnatureN0tForTheEyes"


def secret_url(sink: TeamsSink, path: str = PATH, sig: str = SIG) -> str:
    return sink.url(f"{path}?api-version=1&sp=%2Ftriggers&sig={sig}")


class Seen(HTMLParser):
    """Where text occurs in a page: password fields' values, and everything else."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.password_values: list[str] = []
        self.elsewhere: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        password = tag == "input" and ("type", "password") in attrs
        for name, value in attrs:
            if password and name == "value":
                self.password_values.append(value or "")
            else:
                self.elsewhere.append(value or "")

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:
        self.elsewhere.append(data)

    def handle_comment(self, data: str) -> None:
        self.elsewhere.append(data)


def assert_masked(page: Response, url: str, *secrets: str) -> None:
    """`url` is in the page once, as the value of a password field, and nowhere else."""
    seen = Seen()
    seen.feed(page.text)
    seen.close()
    assert seen.password_values.count(url) == 1, seen.password_values
    for secret in secrets:
        assert page.text.count(secret) == 1, f"{secret} appears outside the password field"
        assert not [text for text in seen.elsewhere if secret in text]


def test_a_failed_test_of_a_new_url_keeps_it_masked(admin: Browser, sink: TeamsSink) -> None:
    url = secret_url(sink)
    # A channel that refuses the card and quotes the URL back in its answer.
    sink.set_default(PATH, Answer(401, f"Unauthorized: {url} has an invalid signature"))
    page = post_form(admin, f"{T}/webhooks/test", channel_name="#eng", url=url, enabled="on")
    assert page.status_code == 200
    assert "Connection failed." in page.text
    assert len(sink.received(PATH)) == 1
    assert_masked(page, url, PATH, SIG)


def test_a_refused_new_url_keeps_it_masked(admin: Browser) -> None:
    url = f"https://flows.example.test{PATH}?api-version=1&sig={SIG}"
    tested = post_form(admin, f"{T}/webhooks/test", channel_name="#eng", url=url)
    assert "not a Microsoft Teams webhook host" in tested.text
    assert_masked(tested, url, PATH, SIG)
    saved = post_form(admin, f"{T}/webhooks", channel_name="#eng", url=url, enabled="on")
    assert saved.status_code == 422
    assert 'aria-invalid="true" aria-describedby="url-error"' in saved.text
    assert_masked(saved, url, PATH, SIG)


def test_a_failed_save_of_a_good_url_keeps_it_masked(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    make_webhook(svc, people.acme.id, "#eng", sink.url("/workflows/first"))
    url = secret_url(sink)
    taken = post_form(admin, f"{T}/webhooks", channel_name="#ENG", url=url, enabled="on")
    assert taken.status_code == 409
    assert "already exists" in taken.text
    assert_masked(taken, url, PATH, SIG)


def test_a_replacement_url_on_the_edit_form_stays_masked(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    make_webhook(svc, people.acme.id, "#ops", sink.url("/workflows/ops"))
    hook = make_webhook(svc, people.acme.id, "#eng", sink.url("/workflows/old"))
    url = secret_url(sink)
    sink.set_default(PATH, Answer(404, f"No flow at {url}"))
    tested = post_form(
        admin, f"{T}/webhooks/{hook}/test", channel_name="#eng", replace_url=url, enabled="on"
    )
    assert "Connection failed." in tested.text
    assert_masked(tested, url, PATH, SIG)
    # Renamed onto another webhook's channel name: refused, the new URL comes back masked.
    saved = post_form(admin, f"{T}/webhooks/{hook}", channel_name="#ops", replace_url=url)
    assert saved.status_code == 409
    assert_masked(saved, url, PATH, SIG)
    refused = f"https://flows.example.test{PATH}?sig={SIG}"
    invalid = post_form(admin, f"{T}/webhooks/{hook}", channel_name="#eng", replace_url=refused)
    assert invalid.status_code == 422
    assert_masked(invalid, refused, PATH, SIG)


def test_the_url_fields_are_password_fields_with_a_reveal_button(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", sink.url("/workflows/old"))
    for path, name in ((f"{T}/webhooks/new", "url"), (f"{T}/webhooks/{hook}/edit", "replace_url")):
        page = admin.client.get(path).text
        assert f'<input id="{name}" name="{name}" type="password" value=""' in page
        assert 'autocomplete="new-password"' in page
        # Shown by app.js; without JavaScript nothing could reveal the field.
        assert f'data-reveal="{name}" aria-controls="{name}" aria-label="Show the URL" hidden>' in (
            page
        )

"""The Teams stand-in's page (`/`) and `/_received`: what arrived, newest first, with the
answer each got; never a URL's query; reading them records nothing; webhooks posted to those
paths are still answered and recorded as before."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from ticketmate.dev.teams_sink import Answer, TeamsSink


def card_message(text: str) -> bytes:
    card = {"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": text}]}
    message = {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        ],
    }
    return json.dumps(message).encode()


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.status, answer.read().decode()


@pytest.fixture
def sink() -> Iterator[TeamsSink]:
    with TeamsSink() as running:
        yield running


def test_page_lists_cards_newest_first_with_their_answers(sink: TeamsSink) -> None:
    sink.script("/workflows/eng", Answer(429, "slow down", {"Retry-After": "5"}))
    assert post(sink.url("/workflows/eng?sig=TOPSECRET"), card_message("first card")) == 429
    assert post(sink.url("/workflows/eng?sig=TOPSECRET"), card_message("second card")) == 202
    assert post(sink.url("/webhookb2/0123456789abcdef0123/Incoming"), b"not json") == 200

    status, page = get(sink.url("/"))
    assert status == 200
    assert page.count('class="received"') == 3
    assert page.index("not json") < page.index("second card") < page.index("first card")
    assert "answered 429" in page
    assert "answered 202" in page
    assert page.count("data-adaptive-card=") == 2
    # The renderer and the script that draws the cards, from the package itself.
    for script in ("/_static/htmx.min.js", "/_static/adaptivecards.min.js", "/_static/app.js"):
        assert f'src="{script}"' in page
        assert get(sink.url(script))[0] == 200
    assert "TOPSECRET" not in page
    assert "0123456789abcdef0123" not in page  # a connector URL's secrets are in its path

    _, raw = get(sink.url("/_received"))
    received: dict[str, Any] = json.loads(raw)
    assert received["count"] == 3
    assert [item["answered"] for item in received["items"]] == [200, 202, 429]
    assert received["items"][2]["card"]["body"][0]["text"] == "first card"
    assert received["items"][0]["card"] is None
    assert "TOPSECRET" not in raw
    assert "0123456789abcdef0123" not in raw

    # Reading the page, the list and the scripts is not something Teams received.
    assert len(sink.received()) == 3


def test_list_is_sent_again_only_when_something_new_arrived(sink: TeamsSink) -> None:
    post(sink.url("/workflows/eng"), card_message("one"))
    with urllib.request.urlopen(sink.url("/_cards?seen=1"), timeout=5) as answer:
        assert answer.status == 204
    status, fragment = get(sink.url("/_cards?seen=0"))
    assert status == 200
    assert 'hx-get="/_cards?seen=1"' in fragment
    assert "one" in fragment


def test_jira_text_cannot_end_the_cards_json_or_become_markup(sink: TeamsSink) -> None:
    hostile = "</script><script>window.pwned=1</script><b>bold</b>"
    post(sink.url("/workflows/eng"), card_message(hostile))
    _, page = get(sink.url("/"))
    assert "</script><script>window.pwned" not in page
    assert "<b>bold</b>" not in page
    assert "\\u003c/script\\u003e" in page  # still in the card's JSON, for the renderer


def test_webhooks_posted_to_the_page_paths_are_answered_and_recorded(sink: TeamsSink) -> None:
    assert post(sink.url("/"), card_message("to the root")) == 200
    assert post(sink.url("/_received"), b"{}") == 200
    assert [r.path for r in sink.received()] == ["/", "/_received"]


def test_only_the_page_scripts_are_served(sink: TeamsSink) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(sink.url("/_static/..%2F..%2Fconfig.py"), timeout=5)
    refused.value.close()
    assert refused.value.code == 404

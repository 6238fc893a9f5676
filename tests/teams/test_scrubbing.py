"""Scrubbing Teams' answers by what is secret, and by shape, without losing what they say."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import pytest

from tests.security import webhook_urls as U
from tests.teams.leaks import SecretWebhook, assert_no_secret, connector_hook, workflows_hook
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.teams.client import (
    EXCERPT_BYTES,
    READ_BYTES,
    TeamsAnswer,
    classify,
    new_http_session,
    post_message,
)
from ticketmate.teams.scrubbing import REMOVED, WebhookSecrets, scrub

HOST = "https://prod-27.westeurope.logic.azure.com:443"


def secret_url(hook: SecretWebhook) -> str:
    return HOST + hook.target


def scrubbed(text: str, hook: SecretWebhook) -> str:
    return scrub(text, WebhookSecrets(secret_url(hook)))


def json_escaped(text: str) -> str:
    # How .NET's JSON writer quotes a URL: \/ for /, \u0026 for &.
    return json.dumps(text).replace("/", "\\/").replace("&", "\\u0026")


ECHOES = {
    "whole": lambda url: url,
    "upper case": lambda url: url.upper(),
    "without scheme": lambda url: url.split("://", 1)[1],
    "without host": lambda url: url.split(":443", 1)[1],
    "percent-encoded": lambda url: quote(url, safe=""),
    "percent-encoded, slashes kept": lambda url: quote(url),
    "percent-encoded twice": lambda url: quote(quote(url, safe=""), safe=""),
    "JSON-escaped": json_escaped,
    "HTML-escaped": lambda url: url.replace("&", "&amp;"),
    "decoded": lambda url: url.replace("%2F", "/"),
    "broken over lines": lambda url: url.replace("/triggers", "\n/triggers").replace(
        "sig=", "\nsig="
    ),
}


@pytest.mark.parametrize("kind", ["workflows", "connector"])
@pytest.mark.parametrize("form", ECHOES)
def test_the_webhooks_own_secrets_go_in_every_form(kind: str, form: str) -> None:
    hook = workflows_hook() if kind == "workflows" else connector_hook()
    echo = ECHOES[form](secret_url(hook))
    text = scrubbed(f'{{"error":{{"code":"Forbidden","message":"No access to {echo}."}}}}', hook)
    assert_no_secret(form, text, hook)
    assert text.startswith('{"error":{"code":"Forbidden","message":"No access to ')


def test_ids_and_signature_go_even_alone_or_in_part() -> None:
    hook = workflows_hook()
    flow, sig = hook.ids
    text = scrubbed(
        f"The workflow '{flow}' is disabled. Signature {sig} expired; "
        f"request {flow[:12]}… with key …{sig[-10:]} refused.",
        hook,
    )
    assert_no_secret("the answer", text, hook)
    assert text.startswith("The workflow '[removed]' is disabled. Signature [removed] expired")


def test_short_ids_and_signatures_go_whole() -> None:
    # Too short to be found by fragments (a local test URL): found as they are.
    url = "http://127.0.0.1:8765/workflows/7f3e/triggers/manual/paths/invoke?sig=k3Y9"
    text = scrub("Key K3Y9 of flow 7F3E is wrong.", WebhookSecrets(url))
    assert text == f"Key {REMOVED} of flow {REMOVED} is wrong."


def test_a_signature_is_found_decoded_too() -> None:
    url = HOST + "/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=Ab%2BcD3f%2FgH1%3D"
    text = scrub("Bad signature Ab+cD3f/gH1= (or ab%2bcd3f%2fgh1%3d)", WebhookSecrets(url))
    assert "cD3f" not in text
    assert "cd3f" not in text


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"see {U.LOGIC_APPS}", id="another URL"),
        pytest.param(f"see {U.POWER_PLATFORM.split('://')[1]}", id="another URL without scheme"),
        pytest.param(f"see {U.CONNECTOR_V2.split('.com')[1]}", id="a Teams connector path"),
        pytest.param("see /workflows/4f1c2a7be0d94c3a9b0e1f2a3b4c5d6e/triggers", id="a flow path"),
        pytest.param("see workflows%2F4f1c2a7be0d94c3a9b0e1f2a3b4c5d6e%2Ftriggers", id="encoded"),
        pytest.param("see 10.0.0.7:8080/hook/Yk2mZ8Lq0vX4pN7sR1tU5wA9cE3gI6k", id="host:port"),
        pytest.param("bad parameter sig=Yk2mZ8Lq0vX4pN7sR1tU5wA9cE3gI6k", id="sig="),
        pytest.param("bad parameter \\u0026sig=Yk2mZ8Lq0vX4pN7sR1tU5wA9cE3gI6k", id="escaped &"),
        pytest.param("bad parameter %26sig%3DYk2mZ8Lq0vX4pN7sR1tU5wA9cE3gI6k", id="sig%3D"),
        pytest.param('{"sig": "Yk2mZ8Lq0vX4pN7sR1tU5wA9cE3gI6k"}', id="JSON sig"),
    ],
)
def test_anything_shaped_like_a_webhook_url_goes_whoever_it_belongs_to(text: str) -> None:
    # No secrets given: the shapes alone must catch these.
    result = scrub(text)
    for secret in ("Yk2mZ8Lq0vX4pN7s", "4f1c2a7be0d94c3a", "0a1b2c3d4e5f4071", "7c2f9a1e-3b4d"):
        assert secret not in result, result
    assert result.startswith(text[:4])


THROTTLED = (
    "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error "
    "429 with ContextId tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef.0"
)
PLAIN_ANSWERS = [
    THROTTLED,
    '{"error":{"code":"TriggerInputSchemaMismatch","message":"The input body for trigger '
    "'manual' of type 'Request' did not match its schema definition. Error details: "
    "'Required properties are missing from object: type.'.\"}}",
    '{"error":{"code":"MessageSizeExceeded","message":"Message size 28.5 KB exceeds the '
    'max allowed size of 28 KB."}}',
    "Summary or Text is required.",
    "The webhook/flow was turned off. Turn it on in Power Automate (version 1.0).",
]


@pytest.mark.parametrize("text", PLAIN_ANSWERS)
def test_what_teams_says_is_kept(text: str) -> None:
    assert scrubbed(text, workflows_hook()) == text
    assert scrubbed(text, connector_hook()) == text
    assert scrub(text) == text


def test_a_text_cut_mid_secret_loses_the_beginning_of_the_secret() -> None:
    hook = workflows_hook()
    sig = hook.ids[1]
    text = scrub(f"Refused: the key {sig[:4]}", WebhookSecrets(secret_url(hook)), cut_short=True)
    assert text == f"Refused: the key {REMOVED}"


def test_reading_stops_mid_secret_and_nothing_of_it_is_kept(sink: TeamsSink) -> None:
    """The answer is longer than what is read, and the read stops four characters into the
    signature: after the URLs before it are scrubbed, those four are near the excerpt's start."""
    hook = workflows_hook()
    url = hook.url(sink)
    sig = hook.ids[1]
    unit = url + " "
    copies = (READ_BYTES - 4) // len(unit)
    padding = "x" * (READ_BYTES - 4 - copies * len(unit) - 1) + " "
    body = unit * copies + padding + sig + " — and more the client does not read"
    assert body.rindex(sig) == READ_BYTES - 4
    sink.script(hook.path, Answer(400, body))

    async def send() -> TeamsAnswer:
        async with new_http_session() as http:
            return await post_message(http, url, b"{}", timeout_seconds=10)

    answer = asyncio.run(send())

    assert answer.status_code == 400
    assert len(answer.excerpt.encode()) < EXCERPT_BYTES  # the whole scrubbed read is kept
    assert answer.excerpt.endswith(f"x {REMOVED}")
    assert_no_secret("the excerpt", answer.excerpt, hook)
    assert_no_secret("the message", answer.message, hook)


def test_scrubbing_leaves_the_reading_of_an_answer_alone() -> None:
    hook = connector_hook()
    url = secret_url(hook)
    removed = classify(
        200,
        f"Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP "
        f"error 404 for {url.split('://')[1]}".encode(),
        webhook_url=url,
    )
    assert (removed.outcome, removed.removed) == ("dead_letter", True)
    assert_no_secret("the message", removed.message, hook)
    throttled = classify(200, f"{THROTTLED} at {hook.target}".encode(), webhook_url=url)
    assert (throttled.outcome, throttled.error_kind) == ("retry", "teams_error_in_body")
    assert "Teams throttled this webhook" in throttled.message
    assert_no_secret("the excerpt", throttled.excerpt, hook)
    assert classify(200, b"1", webhook_url=url).ok
    assert classify(202, b"", webhook_url=url).ok

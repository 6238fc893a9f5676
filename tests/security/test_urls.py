"""The webhook URL policy: every real URL shape accepted with its kind, mistakes explained."""

from __future__ import annotations

import pytest

from tests.security import webhook_urls as U
from ticketmate.security.urls import (
    ACCEPTED_FORMS,
    MAX_URL_LENGTH,
    WebhookUrlError,
    validate_webhook_url,
)

GOOD = [
    pytest.param(U.LOGIC_APPS, "workflows", id="logic.azure.com with :443"),
    pytest.param(U.LOGIC_APPS.replace(":443", ""), "workflows", id="logic.azure.com"),
    pytest.param(U.POWER_PLATFORM, "workflows", id="powerplatform with :443"),
    pytest.param(U.POWER_PLATFORM.replace(":443", ""), "workflows", id="powerplatform"),
    pytest.param(U.POWER_PLATFORM_CU, "workflows", id="powerplatform /cu/<n>/"),
    pytest.param(U.CONNECTOR_V2, "connector", id="webhookb2 with /V2 suffix"),
    pytest.param(U.CONNECTOR, "connector", id="webhookb2"),
    pytest.param(U.OUTLOOK_CONNECTOR, "connector", id="outlook.office.com/webhook"),
    pytest.param(
        U.LOGIC_APPS.replace("https://prod-27", "HTTPS://PROD-27"), "workflows", id="case"
    ),
]


@pytest.mark.parametrize(("url", "kind"), GOOD)
def test_accepted_urls_keep_every_byte(url: str, kind: str) -> None:
    checked = validate_webhook_url(f"  {url}\n", allow_loopback=False)
    assert checked.kind == kind
    assert checked.url == url  # only the surrounding whitespace went; nothing re-encoded
    assert not checked.loopback


def test_workflows_urls_longer_than_255_characters_are_fine() -> None:
    long_url = U.POWER_PLATFORM_CU + "&extra=" + "a" * 400
    assert len(long_url) > 255
    assert validate_webhook_url(long_url, allow_loopback=False).url == long_url


BAD = [
    pytest.param("", "empty", id="empty"),
    pytest.param("   ", "empty", id="blank"),
    pytest.param(U.LOGIC_APPS.replace("https://", "http://"), "https://", id="http refused"),
    pytest.param(U.CONNECTOR.replace("https://", "http://"), "https://", id="http connector"),
    pytest.param(U.LOGIC_APPS.split("&sig=")[0], "sig=", id="logic apps without sig"),
    pytest.param(U.POWER_PLATFORM.split("?")[0], "sig=", id="powerplatform without query"),
    pytest.param(U.POWER_PLATFORM.split("&sig=")[0] + "&sig=", "sig=", id="empty sig"),
    pytest.param(U.POWER_PLATFORM.replace("&", "&amp;"), "&amp;", id="&amp; pasted"),
    pytest.param(U.LOGIC_APPS.replace(":443", ":8443"), "443", id="other port"),
    pytest.param(U.CONNECTOR.replace("/webhookb2/", "/webhook/"), "path", id="connector path"),
    pytest.param(
        U.POWER_PLATFORM_CU.replace("/cu/3/", "/cu/x/"), "path", id="powerplatform cu not digits"
    ),
    pytest.param(
        U.POWER_PLATFORM.replace("/powerautomate/automations/direct", ""), "path", id="pp path"
    ),
    pytest.param(
        U.CONNECTOR.replace("contoso.webhook.office.com", "contoso.webhook.office.com.evil.test"),
        "host",
        id="lookalike suffix",
    ),
    pytest.param(
        U.CONNECTOR.replace("contoso.webhook.office.com", "evilwebhook.office.com"),
        "host",
        id="lookalike prefix",
    ),
    pytest.param("https://example.com/webhookb2/abc", "host", id="unknown host"),
    pytest.param(
        U.CONNECTOR.replace("https://", "https://user:pw@"), "user name", id="credentials"
    ),
    pytest.param(U.CONNECTOR + "#frag", "#", id="fragment"),
    pytest.param(U.CONNECTOR[:40] + " " + U.CONNECTOR[40:], "spaces", id="inner space"),
    pytest.param(U.CONNECTOR[:40] + "\n" + U.CONNECTOR[40:], "line breaks", id="inner newline"),
    pytest.param(U.CONNECTOR + "é", "characters", id="non-ascii"),
    pytest.param("contoso.webhook.office.com/webhookb2/abc", "full URL", id="no scheme"),
    pytest.param("ftp://contoso.webhook.office.com/webhookb2/a", "https://", id="ftp"),
    pytest.param(U.CONNECTOR + "x" * MAX_URL_LENGTH, "longer than", id="too long"),
]


@pytest.mark.parametrize(("url", "says"), BAD)
def test_refused_urls_say_why(url: str, says: str) -> None:
    with pytest.raises(WebhookUrlError) as caught:
        validate_webhook_url(url, allow_loopback=True)
    assert says in caught.value.message
    secret_part = url.strip()[30:]
    if len(secret_part) > 8:
        assert secret_part not in caught.value.message  # the URL is never quoted back


def test_messages_list_the_accepted_forms() -> None:
    with pytest.raises(WebhookUrlError) as caught:
        validate_webhook_url("https://example.com/hook", allow_loopback=False)
    message = caught.value.message
    assert message.endswith(ACCEPTED_FORMS)
    for form in (
        "environment.api.powerplatform.com",
        "cu/<n>/",
        "logic.azure.com",
        "webhook.office.com/webhookb2",
        "outlook.office.com/webhook",
        "sig=",
    ):
        assert form in message


def test_amp_hint_tells_what_to_do() -> None:
    with pytest.raises(WebhookUrlError) as caught:
        validate_webhook_url(U.LOGIC_APPS.replace("&", "&amp;"), allow_loopback=False)
    assert "replace each “&amp;” with “&”" in caught.value.message


LOOPBACK = [
    pytest.param("http://127.0.0.1:8123/workflows/abc/triggers/x", "workflows", id="workflows"),
    pytest.param("http://127.0.0.1:8123/webhookb2/abc", "connector", id="connector"),
    pytest.param("http://127.0.0.1:8123/anything?x=1", "connector", id="any path, no sig"),
    pytest.param("http://localhost:9000/workflows/x", "workflows", id="localhost"),
    pytest.param("http://[::1]:9000/hook", "connector", id="ipv6"),
    pytest.param("https://127.0.0.2/workflows/a", "workflows", id="127/8 https"),
]


@pytest.mark.parametrize(("url", "kind"), LOOPBACK)
def test_loopback_only_when_allowed(url: str, kind: str) -> None:
    checked = validate_webhook_url(url, allow_loopback=True)
    assert (checked.kind, checked.url, checked.loopback) == (kind, url, True)
    with pytest.raises(WebhookUrlError) as caught:
        validate_webhook_url(url, allow_loopback=False)
    assert "TICKETMATE_ALLOW_LOOPBACK_WEBHOOKS=true" in caught.value.message


def test_loopback_port_must_be_a_number() -> None:
    with pytest.raises(WebhookUrlError, match="port"):
        validate_webhook_url("http://127.0.0.1:99999/workflows/a", allow_loopback=True)


def test_query_is_never_reencoded() -> None:
    odd = U.POWER_PLATFORM + "&x=%7e%2F+a~b"
    assert validate_webhook_url(odd, allow_loopback=False).url == odd

"""Masked URLs: scheme, host, port only when unusual, and the last four characters."""

from __future__ import annotations

import pytest

from tests.security import webhook_urls as U
from ticketmate.security.masking import mask_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (U.LOGIC_APPS, "https://prod-27.westeurope.logic.azure.com/…Xk3Q"),
        (
            U.POWER_PLATFORM,
            "https://default72f988bf86f141af91ab2d7cd011db47.47.environment.api.powerplatform.com"
            "/…BcDe",
        ),
        (U.CONNECTOR_V2, "https://contoso.webhook.office.com/…efgh"),
        (U.OUTLOOK_CONNECTOR, "https://outlook.office.com/…a8b9"),
        ("http://127.0.0.1:8123/workflows/abc/triggers/xyzw", "http://127.0.0.1:8123/…xyzw"),
        ("http://127.0.0.1:80/workflows/abc/triggers/xyzw", "http://127.0.0.1/…xyzw"),
        ("http://[::1]:9000/hook/abcdefghijklmnop", "http://[::1]:9000/…mnop"),
    ],
)
def test_mask_shows_host_and_last_four(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_never_shows_the_signature_or_path() -> None:
    masked = mask_url(U.POWER_PLATFORM_CU)
    assert "sig=" not in masked
    assert "workflows" not in masked
    assert "9f8e7d6c" not in masked


def test_short_or_broken_text_shows_almost_nothing() -> None:
    assert mask_url("abc") == "…"
    assert mask_url("not a url at all, really") == "…ally"
    assert mask_url("http://[::1:80/broken-url-here") == "…here"

"""Real-shaped Teams webhook URLs (made-up ids and signatures), shared by the tests."""

from __future__ import annotations

import secrets

LOGIC_APPS = (
    "https://prod-27.westeurope.logic.azure.com:443/workflows/4f1c2a7be0d94c3a9b0e1f2a3b4c5d6e"
    "/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun"
    "&sv=1.0&sig=Yk2mZ8Lq0vX4pN7sR1tU5wA9cE3gI6kM0oQ2sU4Xk3Q"
)
POWER_PLATFORM = (
    "https://default72f988bf86f141af91ab2d7cd011db47.47.environment.api.powerplatform.com:443"
    "/powerautomate/automations/direct/workflows/0a1b2c3d4e5f40718293a4b5c6d7e8f9"
    "/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0"
    "&sig=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_aBcDe"
)
POWER_PLATFORM_CU = (
    "https://default72f988bf86f141af91ab2d7cd011db47.47.environment.api.powerplatform.com"
    "/powerautomate/automations/direct/cu/3/workflows/9f8e7d6c5b4a40318293a4b5c6d7e8f9"
    "/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0"
    "&sig=ZyXwVuTsRqPoNmLkJiHgFeDcBa9876543210_-zYxWv"
)
CONNECTOR_V2 = (
    "https://contoso.webhook.office.com/webhookb2/7c2f9a1e-3b4d-4e5f-8a6b-1c2d3e4f5a6b"
    "@72f988bf-86f1-41af-91ab-2d7cd011db47/IncomingWebhook/0123456789abcdef0123456789abcdef"
    "/5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9/V2AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefgh"
)
CONNECTOR = (
    "https://contoso.webhook.office.com/webhookb2/7c2f9a1e-3b4d-4e5f-8a6b-1c2d3e4f5a6b"
    "@72f988bf-86f1-41af-91ab-2d7cd011db47/IncomingWebhook/fedcba9876543210fedcba9876543210"
    "/5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
)
OUTLOOK_CONNECTOR = (
    "https://outlook.office.com/webhook/7c2f9a1e-3b4d-4e5f-8a6b-1c2d3e4f5a6b"
    "@72f988bf-86f1-41af-91ab-2d7cd011db47/IncomingWebhook/00112233445566778899aabbccddeeff"
    "/5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
)


def unique_workflows_url() -> tuple[str, str]:
    """A fresh Power Automate URL and its signature, for tests that look for leaks."""
    sig = "SIG" + secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")
    url = (
        "https://default72f988bf86f141af91ab2d7cd011db47.47.environment.api.powerplatform.com:443"
        f"/powerautomate/automations/direct/workflows/{secrets.token_hex(16)}"
        f"/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={sig}"
    )
    return url, sig

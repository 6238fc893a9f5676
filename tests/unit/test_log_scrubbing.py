"""Secrets logged on purpose, through every kind of logger and every way a record carries text,
come out of the handler without their secret parts, in both formats."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import warnings
from collections.abc import Iterator

import pytest

from ticketmate import logging_setup
from ticketmate.log_scrubbing import scrub_text
from ticketmate.logging_setup import configure_logging
from ticketmate.security.tokens import new_api_token, new_ingest_token, new_jira_secret

WORKFLOWS = (
    "https://prod-12.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke"
    "?api-version=2016-06-01&sp=%2F&sv=1.0&sig=SECRETSIG"
)
POWER_PLATFORM = (
    "https://default0f1e2d3c4b5a.69.environment.api.powerplatform.com:443/powerautomate/"
    "automations/direct/workflows/8e5c0a1b2c3d4e5f/triggers/manual/paths/invoke"
    "?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=POWERSIG0042"
)
CONNECTOR = (
    "https://acme.webhook.office.com/webhookb2/1c2d3e4f-aaaa-bbbb-cccc-1234567890ab"
    "@9f8e7d6c-1111-2222-3333-444455556666/IncomingWebhook/0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    "/7a6b5c4d-eeee-ffff-0000-abcdefabcdef"
)
INGEST_TOKEN = new_ingest_token()
API_TOKEN = new_api_token()
JIRA_SECRET = new_jira_secret()

# What is logged, and what of it must not come out.
SECRETS: dict[str, list[str]] = {
    f"POST {WORKFLOWS} failed": ["/workflows/abc", "SECRETSIG", "paths/invoke", "api-version"],
    f"answer from {POWER_PLATFORM}": ["8e5c0a1b2c3d4e5f", "POWERSIG0042", "powerautomate/"],
    f"connector {CONNECTOR} is gone": [
        "1c2d3e4f-aaaa",
        "9f8e7d6c-1111",
        "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "7a6b5c4d-eeee",
    ],
    "a signature on its own: sig=LONESIGNATURE1&x=1": ["LONESIGNATURE1"],
    "headers {'Authorization': 'Bearer tok'}": ["Bearer tok"],
    "Authorization: Bearer b3arer.t0ken-value": ["b3arer.t0ken-value"],
    f"ingest token {INGEST_TOKEN} in /api/webhooks/jira?token={INGEST_TOKEN}": [
        INGEST_TOKEN,
        INGEST_TOKEN.removeprefix("tmi_"),
    ],
    f"api token {API_TOKEN}": [API_TOKEN.removeprefix("tm_")],
    f"the Jira secret is {JIRA_SECRET}.": [JIRA_SECRET],
    "login with password=hunter2&next=/": ["hunter2"],
    'body {"email": "a@example.com", "password": "hunter3"}': ["hunter3"],
    "database postgresql://tm:dbpass42@db:5432/tm": ["dbpass42"],
}
HOSTS = [
    "https://prod-12.westeurope.logic.azure.com",
    "https://default0f1e2d3c4b5a.69.environment.api.powerplatform.com",
    "https://acme.webhook.office.com",
]
FORBIDDEN = [part for parts in SECRETS.values() for part in parts]
LOGGERS = ["ticketmate.delivery.worker", "uvicorn.error", "alembic", "asyncio", "aiohttp.client"]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    uvicorn_access = logging.getLogger("uvicorn.access").disabled
    yield
    logging.captureWarnings(False)
    root.handlers[:], level, sys.excepthook, threading.excepthook = saved
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = uvicorn_access
    logging_setup._json_lines = False


def log_everything() -> None:
    for name in LOGGERS:
        log = logging.getLogger(name)
        for text in SECRETS:
            log.warning(text)
            log.info("while sending: %s (%d)", text, 3)
            log.error("failed", extra={"detail": text, "answer": {"body": [text]}})
            try:
                try:
                    raise ValueError(text)
                except ValueError as inner:
                    raise RuntimeError(f"delivery failed: {text}") from inner
            except RuntimeError:
                log.exception("unexpected error")
        log.info("with a stack", stack_info=True, extra={"password": "hunter4", "url": WORKFLOWS})
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(f"deprecated: {WORKFLOWS}", UserWarning, stacklevel=1)
    try:
        raise OSError(f"connection to {CONNECTOR} lost, password=hunter5")
    except OSError as error:
        sys.excepthook(type(error), error, error.__traceback__)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_part_comes_out(log_format: str, restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("DEBUG", log_format, stream=out)
    log_everything()
    written = out.getvalue()

    leaked = [part for part in [*FORBIDDEN, "hunter4", "hunter5"] if part in written]
    assert not leaked, leaked
    for host in HOSTS:
        assert host in written
    for name in [*LOGGERS, "py.warnings", "ticketmate"]:
        assert f" {name}" in written or f'"logger": "{name}"' in written, name
    # Each logged exception has its cause's traceback too; the uncaught one has none.
    assert written.count("Traceback (most recent call last)") == 2 * len(LOGGERS) * len(SECRETS) + 1
    if log_format == "json":
        lines = [json.loads(line) for line in written.splitlines()]
        assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
        assert sum("exc_info" in line for line in lines) == len(LOGGERS) * len(SECRETS) + 1
        assert sum("stack_info" in line for line in lines) == len(LOGGERS)


def test_ordinary_lines_are_left_as_they_are() -> None:
    for text in [
        "GET /api/v1/workspaces/acme/deliveries 200 1.4ms",
        "POST /api/webhooks/jira 202 0.9ms",
        "jira intake: stored event 01JD2Q8R5W3X7Y9Z1A2B3C4D5E (routed) for workspace acme",
        "delivery 01JD2Q8R5W3X7Y9Z1A2B3C4D5E to webhook 01JD2Q8R5W3X7Y9Z1A2B3C4D5F: throttled",
        "Serving on http://127.0.0.1:8000 (Ctrl+C to stop)",
        "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)",
        "card for https://example.atlassian.net/browse/DEMO-1?focusedCommentId=10001",
        "purged 12 finished deliveries and events past retention",
        "test_a_name_of_exactly_forty_three_characters",
    ]:
        assert scrub_text(text) == text


def test_a_url_without_its_scheme_or_encoded_keeps_only_its_host() -> None:
    bare = "Cannot connect to prod-12.westeurope.logic.azure.com:443/workflows/a1/triggers?sig=S1"
    encoded = "https%3A%2F%2Fprod-1.westeurope.logic.azure.com%2Fworkflows%2Fa1%3Fsig%3DS2"
    escaped = '{"url": "https:\\/\\/acme.webhook.office.com\\/webhookb2\\/x1@y2\\/a"}'
    loopback = "http://127.0.0.1:9000/workflows/eng1/triggers/manual/paths/invoke?sig=S3"
    assert scrub_text(bare) == "Cannot connect to prod-12.westeurope.logic.azure.com:443/[removed]"
    assert scrub_text(encoded) == "https%3A%2F%2Fprod-1.westeurope.logic.azure.com/[removed]"
    assert scrub_text(escaped) == '{"url": "https:\\/\\/acme.webhook.office.com/[removed]"}'
    assert scrub_text(loopback) == "http://127.0.0.1:9000/[removed]"


@pytest.mark.parametrize("before", [" ", "=", "é", "'", '"', "(", ":", "\n"])
def test_a_jira_secret_goes_whatever_stands_before_it(before: str) -> None:
    for first in "-_aZ9":
        secret = first + new_jira_secret()[1:]
        text = scrub_text(f"value{before}{secret} and more")
        assert secret not in text
        assert secret[1:] not in text

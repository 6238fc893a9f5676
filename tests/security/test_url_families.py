"""URL families: which Teams webhook URLs Microsoft still honours, told from the host alone."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.security import webhook_urls as U
from ticketmate.security.masking import mask_url
from ticketmate.security.urls import (
    NEEDS_NEW_URL,
    REPLACE_URL_ADVICE,
    URL_FAMILIES,
    retired_refusal,
    url_family_of,
    url_family_of_host,
    url_warning,
    validate_webhook_url,
)
from ticketmate.teams.client import TeamsAnswer, classify, with_url_family

MIGRATION = (
    Path(__file__).resolve().parents[2]
    / "src/ticketmate/migrations/versions/0007_webhook_url_family.py"
)

FAMILY_OF_HOST = [
    # Workflows on Power Platform: current.
    (
        "default72f988bf86f141af91ab2d7cd011db47.47.environment.api.powerplatform.com",
        "power_platform",
    ),
    ("prod.01.environment.api.powerplatform.com", "power_platform"),
    ("UPPER.12.Environment.API.PowerPlatform.com", "power_platform"),
    # Workflows on Logic Apps: retired on 30 November 2025.
    ("prod-27.westeurope.logic.azure.com", "logic_apps"),
    ("prod-00.uksouth.logic.azure.com", "logic_apps"),
    # Office 365 connectors: retiring.
    ("contoso.webhook.office.com", "connector"),
    ("outlook.office.com", "connector"),
    # Loopback stand-ins.
    ("127.0.0.1", "loopback"),
    ("127.3.4.5", "loopback"),
    ("localhost", "loopback"),
    ("::1", "loopback"),
    ("[::1]", "loopback"),
    # Near misses: none of the families.
    ("logic.azure.com", "unknown"),  # the bare domain, no trigger host
    ("evil-logic.azure.com", "unknown"),
    ("prod-27.westeurope.logic.azure.com.evil.example", "unknown"),
    ("prod-27.westeurope.logic.azure.co", "unknown"),
    ("prod-27.westeurope.logic.azure.com.", "unknown"),  # trailing dot: refused when pasted
    ("prod_27.westeurope.logic.azure.com", "unknown"),  # not a host-name label
    ("environment.api.powerplatform.com", "unknown"),
    ("x.api.powerplatform.com", "unknown"),
    ("x.environment.api.powerplatform.com.evil.example", "unknown"),
    ("webhook.office.com", "unknown"),
    ("contoso.webhook.office.com.evil.example", "unknown"),
    ("contosowebhook.office.com", "unknown"),
    ("outlook.office365.com", "unknown"),
    ("x.outlook.office.com", "unknown"),
    ("outlook.office.com.evil.example", "unknown"),
    ("localhost.evil.example", "unknown"),
    ("0.0.0.0", "unknown"),  # noqa: S104 (a host name to classify, not an address to bind)
    ("10.0.0.1", "unknown"),
    ("", "unknown"),
]


@pytest.mark.parametrize(("host", "family"), FAMILY_OF_HOST)
def test_family_of_every_host(host: str, family: str) -> None:
    assert url_family_of_host(host) == family


@pytest.mark.parametrize(
    ("url", "family"),
    [
        (U.POWER_PLATFORM, "power_platform"),
        (U.POWER_PLATFORM_CU, "power_platform"),
        (U.LOGIC_APPS, "logic_apps"),
        (U.CONNECTOR, "connector"),
        (U.CONNECTOR_V2, "connector"),
        (U.OUTLOOK_CONNECTOR, "connector"),
        ("http://127.0.0.1:8765/workflows/eng", "loopback"),
        ("http://localhost:8765/webhookb2/x", "loopback"),
        ("http://[::1]:8765/workflows/eng", "loopback"),
    ],
)
def test_a_url_and_its_masked_form_have_the_same_family(url: str, family: str) -> None:
    assert url_family_of(url) == family
    # The masked form keeps scheme and host: the family survives masking.
    assert url_family_of(mask_url(url)) == family
    # Every family is still accepted, and the checked URL knows its family.
    assert validate_webhook_url(url, allow_loopback=True).family == family


@pytest.mark.parametrize("text", ["", "…Xk3Q", "https://…/abcd", "not a url", "http://[::1"])
def test_what_has_no_readable_host_is_unknown(text: str) -> None:
    assert url_family_of(text) == "unknown"


def test_retired_and_retiring_families_warn_with_what_to_do() -> None:
    assert set(NEEDS_NEW_URL) == {"logic_apps", "connector"}
    assert URL_FAMILIES["logic_apps"].standing == "retired"
    assert URL_FAMILIES["connector"].standing == "retiring"
    retired = url_warning("logic_apps")
    assert retired is not None
    assert "logic.azure.com" in retired
    assert "30 November 2025" in retired
    retiring = url_warning("connector")
    assert retiring is not None
    assert "Office 365 connectors" in retiring
    for warning in (retired, retiring):
        assert warning.endswith(REPLACE_URL_ADVICE)
    assert REPLACE_URL_ADVICE == (
        "Create a Workflows webhook in the channel and replace the URL here."
    )
    for family in ("power_platform", "loopback", "unknown", "no-such-family"):
        assert url_warning(family) is None


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_a_retired_urls_refusal_names_the_retirement(status: int) -> None:
    answer = classify(status, b'{"error":{"code":"WorkflowNotFound"}}')
    noted = with_url_family(answer, "logic_apps")
    assert noted.message == retired_refusal("logic_apps", status)
    assert f"Teams answered {status}" in noted.message
    assert "logic.azure.com" in noted.message
    assert "30 November 2025" in noted.message
    assert noted.message.endswith(REPLACE_URL_ADVICE)
    # Only the words change: what the delivery does next stays the client's reading.
    assert (noted.outcome, noted.status_code, noted.error_kind, noted.removed) == (
        answer.outcome,
        answer.status_code,
        answer.error_kind,
        answer.removed,
    )


@pytest.mark.parametrize(
    ("answer", "family"),
    [
        (classify(404, b""), "power_platform"),
        (classify(404, b""), "connector"),
        (classify(404, b""), "loopback"),
        (classify(500, b""), "logic_apps"),  # a passing fault, not the retirement
        (classify(429, b""), "logic_apps"),
        (classify(400, b"bad"), "logic_apps"),
        (classify(202, b""), "logic_apps"),
        (TeamsAnswer("retry", None, 8000, "timeout", "Teams did not answer."), "logic_apps"),
    ],
)
def test_other_answers_keep_their_own_words(answer: TeamsAnswer, family: str) -> None:
    assert with_url_family(answer, family) == answer


def _migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("migration_0007", MIGRATION)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("host", "family"), FAMILY_OF_HOST)
def test_the_migrations_copy_classifies_as_the_package_does(host: str, family: str) -> None:
    # Migration 0007 carries its own copy (a revision must not change with the package).
    migration = _migration()
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    masked = f"https://{shown}/…abcd" if host else "…abcd"
    assert migration.family_of_masked(masked) == url_family_of(masked) == family

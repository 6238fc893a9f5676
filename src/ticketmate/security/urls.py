"""Which Teams webhook URLs the product accepts, of which kind and family they are (pure
functions).

Two kinds exist (see the README's webhook section): Workflows (Power Automate) URLs, the
current way, and the legacy Office 365 connector URLs. A URL is stored exactly as given after
stripping surrounding whitespace: its query carries the signature, so it is never re-encoded,
reordered or "cleaned". Error messages never quote the URL, which is a secret.

The family says, from the host alone, whether Microsoft still honours a URL: Workflows on
`*.environment.api.powerplatform.com` (current), Workflows on `*.logic.azure.com` (retired on
30 November 2025), Office 365 connectors on `*.webhook.office.com` and `outlook.office.com`
(retiring during 2026; new ones cannot be made), and loopback stand-ins for demos and tests.
Every family is still accepted (tenants still have them); the retired and retiring ones carry
a warning. The host is enough, so the family can be read from the masked URL (scheme and
host kept) without decrypting anything.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import SplitResult, parse_qsl, urlsplit

UrlKind = Literal["workflows", "connector"]
UrlFamily = Literal["power_platform", "logic_apps", "connector", "loopback", "unknown"]
UrlStanding = Literal["current", "retired", "retiring", "local", "unknown"]

# Workflows URLs are often longer than 255 characters; 2048 leaves room without inviting abuse.
MAX_URL_LENGTH = 2048

ACCEPTED_FORMS = (
    "Teams gives out URLs of these forms: "
    "https://<env>.environment.api.powerplatform.com/powerautomate/automations/direct/"
    "[cu/<n>/]workflows/<id>/triggers/manual/paths/invoke?…&sig=… (Workflows), "
    "https://prod-<nn>.<region>.logic.azure.com/workflows/<id>/triggers/manual/paths/invoke?…"
    "&sig=… (Workflows, older), "
    "https://<tenant>.webhook.office.com/webhookb2/… and https://outlook.office.com/webhook/… "
    "(legacy connectors)."
)

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_POWER_PLATFORM_PATH = re.compile(
    r"^/powerautomate/automations/direct/(?:cu/\d+/)?workflows/[^/]+(?:/.*)?$"
)
_LOGIC_APPS_PATH = re.compile(r"^/workflows/[^/]+(?:/.*)?$")
_CONNECTOR_PATH = re.compile(r"^/webhookb2/[^/]+(?:/.*)?$")
_OUTLOOK_CONNECTOR_PATH = re.compile(r"^/webhook/[^/]+(?:/.*)?$")


class WebhookUrlError(ValueError):
    """The URL is not a Teams webhook URL the product accepts; `message` says what to do."""

    def __init__(self, reason: str, *, list_forms: bool = True) -> None:
        self.reason = reason
        self.message = f"{reason} {ACCEPTED_FORMS}" if list_forms else reason
        super().__init__(self.message)


@dataclass(frozen=True)
class WebhookUrl:
    url: str  # exactly as given, surrounding whitespace removed
    kind: UrlKind
    loopback: bool = False

    @property
    def family(self) -> UrlFamily:
        return url_family_of(self.url)


# -- URL families ------------------------------------------------------------------------------

REPLACE_URL_ADVICE = "Create a Workflows webhook in the channel and replace the URL here."


@dataclass(frozen=True)
class FamilyInfo:
    label: str  # how the admin UI names the family
    standing: UrlStanding
    warning: str | None  # what an administrator should know and do; None: nothing to do


URL_FAMILIES: dict[str, FamilyInfo] = {
    "power_platform": FamilyInfo("Workflows (powerplatform.com)", "current", None),
    "logic_apps": FamilyInfo(
        "Workflows on logic.azure.com (retired)",
        "retired",
        "Microsoft stopped honouring Workflows URLs on logic.azure.com on 30 November 2025: "
        f"cards sent to this URL no longer reach the channel. {REPLACE_URL_ADVICE}",
    ),
    "connector": FamilyInfo(
        "Office 365 connector (retiring)",
        "retiring",
        "Microsoft is retiring Office 365 connectors during 2026 and new ones can no longer be "
        f"made: this URL will stop working. {REPLACE_URL_ADVICE}",
    ),
    "loopback": FamilyInfo("Local stand-in (loopback)", "local", None),
    "unknown": FamilyInfo("Unrecognised host", "unknown", None),
}
# The families whose webhooks need a new URL: they carry a warning, and /metrics counts them.
NEEDS_NEW_URL: tuple[str, ...] = tuple(
    name for name, info in URL_FAMILIES.items() if info.standing in ("retired", "retiring")
)


def url_family_of_host(host: str) -> UrlFamily:
    """The family of a webhook URL, from its host name alone (as urlsplit gives it)."""
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        return "unknown"
    if _is_loopback(host):
        return "loopback"
    if _is_under(host, "environment.api.powerplatform.com"):
        return "power_platform"
    if _is_under(host, "logic.azure.com"):
        return "logic_apps"
    if _is_under(host, "webhook.office.com") or host == "outlook.office.com":
        return "connector"
    return "unknown"


def url_family_of(url: str) -> UrlFamily:
    """The family of a URL, or of a masked URL (`https://host/…Xk3Q`: the host is kept)."""
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return "unknown"
    return url_family_of_host(host or "")


# Answers of a retired family's URL that mean "this URL is dead": the retirement is the
# reason, not a removed flow or a mangled signature.
RETIRED_REFUSALS = frozenset({401, 403, 404, 410})


def retired_refusal(family: str, status_code: int | None) -> str | None:
    """What a refusal from a URL of a retired family means, naming the retirement; None when
    the family is not retired or the answer is not one a retired URL gives."""
    if family != "logic_apps" or status_code not in RETIRED_REFUSALS:
        return None
    return (
        f"Teams answered {status_code}: this webhook's URL is a Workflows URL on "
        "logic.azure.com, and Microsoft stopped honouring those on 30 November 2025 (the URL "
        f"is retired). {REPLACE_URL_ADVICE}"
    )


def url_warning(family: str) -> str | None:
    """What to do about a webhook of this family; None for current, local and unknown ones."""
    info = URL_FAMILIES.get(family)
    return info.warning if info is not None else None


def validate_webhook_url(raw: str, *, allow_loopback: bool) -> WebhookUrl:
    """Check a pasted webhook URL and tell its kind; raises WebhookUrlError with the reason."""
    url = raw.strip()
    _check_characters(url)
    parts = _split(url)
    host = _host_of(parts)
    if _is_loopback(host):
        return _loopback(url, parts, allow_loopback)
    if parts.scheme.lower() != "https":
        raise WebhookUrlError(
            f"Teams webhook URLs start with https://, not {parts.scheme.lower()}://."
        )
    if _port_of(parts) not in (None, 443):
        raise WebhookUrlError("Teams webhook URLs use the standard HTTPS port (443).")
    kind = _kind_of(host, parts.path)
    if kind == "workflows":
        _require_signature(parts.query)
    return WebhookUrl(url, kind)


def _check_characters(url: str) -> None:
    if not url:
        raise WebhookUrlError("The webhook URL is empty; paste the URL Teams gave you.")
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlError(
            f"The URL is longer than {MAX_URL_LENGTH} characters, longer than any Teams URL; "
            "check that only the webhook URL was pasted."
        )
    if "&amp;" in url.lower():
        raise WebhookUrlError(
            "The URL contains “&amp;” where Teams wrote “&” (it was copied from a web page or "
            "an e-mail): replace each “&amp;” with “&”, or copy the URL again from Teams.",
            list_forms=False,
        )
    if any(not 33 <= ord(char) <= 126 for char in url):
        raise WebhookUrlError(
            "The URL contains spaces, line breaks or characters no Teams URL has; "
            "copy it again from Teams."
        )


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise WebhookUrlError("The text is not a valid URL.") from None
    if not parts.scheme or not parts.netloc:
        raise WebhookUrlError("The text is not a full URL (it needs https:// and a host).")
    if "@" in parts.netloc:
        raise WebhookUrlError("The URL carries a user name or password before its host.")
    if parts.fragment or url.endswith("#"):
        raise WebhookUrlError("The URL has a “#…” part, which no Teams webhook URL has.")
    return parts


def _host_of(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if not host:
        raise WebhookUrlError("The URL has no host.")
    return host


def _port_of(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        raise WebhookUrlError("The URL's port is not a number between 0 and 65535.") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback(url: str, parts: SplitResult, allow_loopback: bool) -> WebhookUrl:
    # Local stand-ins for Teams (demos, tests) answer on any path and need no signature.
    if not allow_loopback:
        raise WebhookUrlError(
            "Loopback addresses (http://127.0.0.1:…) are accepted only when "
            "TICKETMATE_ALLOW_LOOPBACK_WEBHOOKS=true.",
            list_forms=False,
        )
    if parts.scheme.lower() not in ("http", "https"):
        raise WebhookUrlError("A loopback webhook URL starts with http:// or https://.")
    _port_of(parts)
    kind: UrlKind = "workflows" if "/workflows/" in parts.path else "connector"
    return WebhookUrl(url, kind, loopback=True)


def _is_under(host: str, domain: str) -> bool:
    if not host.endswith("." + domain):
        return False
    labels = host[: -len(domain) - 1].split(".")
    return all(_LABEL.match(label) for label in labels)


def _kind_of(host: str, path: str) -> UrlKind:
    if _is_under(host, "environment.api.powerplatform.com"):
        return _expect(path, _POWER_PLATFORM_PATH, "workflows", "Power Automate")
    if _is_under(host, "logic.azure.com"):
        return _expect(path, _LOGIC_APPS_PATH, "workflows", "Logic Apps")
    if _is_under(host, "webhook.office.com"):
        return _expect(path, _CONNECTOR_PATH, "connector", "webhook.office.com")
    if host == "outlook.office.com":
        return _expect(path, _OUTLOOK_CONNECTOR_PATH, "connector", "outlook.office.com")
    raise WebhookUrlError(f"The host {host} is not a Microsoft Teams webhook host.")


def _expect(path: str, pattern: re.Pattern[str], kind: UrlKind, what: str) -> UrlKind:
    if not pattern.match(path):
        raise WebhookUrlError(
            f"The path of this {what} URL is not that of a Teams webhook; copy the URL again."
        )
    return kind


def _require_signature(query: str) -> None:
    # Only inspected, never rebuilt: parse_qsl decodes, and the stored URL must not change.
    if not any(name == "sig" and value for name, value in parse_qsl(query, True)):
        raise WebhookUrlError(
            "The URL has no sig=… signature in its query string, and Teams refuses it without "
            "one: copy the whole URL, including everything after the “?”."
        )

"""Which Teams webhook URLs the product accepts, and of which kind they are (pure functions).

Two kinds exist (see the README's webhook section): Workflows (Power Automate) URLs, the
current way, and the legacy Office 365 connector URLs. A URL is stored exactly as given after
stripping surrounding whitespace: its query carries the signature, so it is never re-encoded,
reordered or "cleaned". Error messages never quote the URL, which is a secret.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import SplitResult, parse_qsl, urlsplit

UrlKind = Literal["workflows", "connector"]

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

"""How a secret URL is shown once saved: enough to recognise it, too little to use it."""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"https": 443, "http": 80}
SHOWN_TAIL = 4


def mask_url(url: str) -> str:
    """`https://prod-27.westeurope.logic.azure.com/…Xk3Q`: scheme, host, port when unusual,
    and the URL's last four characters."""
    tail = url[-SHOWN_TAIL:] if len(url) > SHOWN_TAIL * 4 else ""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return f"…{tail}"
    if not parts.scheme or not host:
        return f"…{tail}"
    scheme = parts.scheme.lower()
    shown = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        shown = f"{shown}:{port}"
    return f"{scheme}://{shown}/…{tail}"

"""UTC time helpers: the service stores, compares and shows times in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BeforeValidator


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(value: datetime | None) -> str | None:
    """`2026-11-28T06:41:00Z`, or `2026-11-28T06:41:00.123Z` when there are milliseconds."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _not_a_number(value: object) -> object:
    # Pydantic reads a number (`0`, `"1.5"`) as seconds since 1970; the API speaks RFC 3339
    # only, and a stray number meaning 1970 would silently widen a filter.
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, int | float) and not isinstance(text, bool):
        raise ValueError("must be an RFC 3339 time like 2026-11-28T06:41:00Z, not a number")
    if isinstance(text, str):
        try:
            float(text)
        except ValueError:
            return value
        raise ValueError("must be an RFC 3339 time like 2026-11-28T06:41:00Z, not a number")
    return value


# A time in a request (query or body): RFC 3339 text, as the OpenAPI description says.
Rfc3339Time = Annotated[datetime, BeforeValidator(_not_a_number)]

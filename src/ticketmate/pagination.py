"""Cursor pagination for lists: newest first, ordered by the time-ordered id."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from ticketmate.errors import ApiError

T = TypeVar("T")
MAX_LIMIT = 200


@dataclass(frozen=True)
class Page:
    limit: int
    after_id: str | None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.urlsafe_b64decode(padded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError(400, "invalid_cursor", "The cursor is not one this list gave out.") from None
    if not value or len(value) > 64 or not value.isalnum():
        raise ApiError(400, "invalid_cursor", "The cursor is not one this list gave out.")
    return value


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
) -> Page:
    return Page(limit=limit, after_id=decode_cursor(cursor) if cursor else None)


PageParams = Annotated[Page, Depends(page_params)]


def fetch_page(
    session: Session,
    query: Select[*tuple[Any, ...]],
    id_column: InstrumentedAttribute[str],
    page: Page,
) -> tuple[Sequence[Any], str | None]:
    """Run `query` newest first from the cursor on; returns the rows and the next cursor."""
    if page.after_id is not None:
        query = query.where(id_column < page.after_id)
    rows = session.execute(query.order_by(id_column.desc()).limit(page.limit + 1)).all()
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    next_cursor = encode_cursor(_row_id(rows[-1], id_column)) if more and rows else None
    return rows, next_cursor


def _row_id(row: Any, id_column: InstrumentedAttribute[str]) -> str:
    first = row[0]
    value = getattr(first, id_column.key, first)
    return str(value)


def listing(items: list[T], next_cursor: str | None, render: Callable[[T], Any]) -> dict[str, Any]:
    return {"items": [render(item) for item in items], "next_cursor": next_cursor}

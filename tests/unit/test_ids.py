from __future__ import annotations

from ticketmate.ids import new_id
from ticketmate.timeutil import rfc3339


def test_ids_are_opaque_unique_and_ordered() -> None:
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 26 and i.isalnum() for i in ids)


def test_rfc3339_is_utc_with_z() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    value = datetime(2026, 11, 28, 7, 41, tzinfo=timezone(timedelta(hours=1)))
    assert rfc3339(value) == "2026-11-28T06:41:00Z"
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)) == "2026-01-02T03:04:05.678Z"
    assert rfc3339(None) is None


def test_id_floor_bounds_ids_made_since_a_moment() -> None:
    from datetime import UTC, datetime, timedelta

    from ticketmate.ids import id_floor

    before = datetime.now(UTC) - timedelta(seconds=1)
    made = new_id()
    assert id_floor(before) < made < id_floor(datetime.now(UTC) + timedelta(seconds=1))

"""Digest schedules: reading them, and when the next digest goes, across days and clock
changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ticketmate.teams.digest_schedule import (
    ScheduleError,
    combine_text,
    parse_combine,
    parse_schedule,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_hourly_goes_on_the_next_hour() -> None:
    hourly = parse_schedule("hourly")
    assert hourly.next_after(utc(2026, 12, 4, 10, 17, 3)) == utc(2026, 12, 4, 11)
    assert hourly.next_after(utc(2026, 12, 4, 11)) == utc(2026, 12, 4, 12)  # strictly after
    assert hourly.next_after(utc(2026, 12, 31, 23, 59)) == utc(2027, 1, 1, 0)


def test_daily_goes_at_the_local_time_across_summer_time() -> None:
    berlin = parse_schedule("daily@09:00/Europe/Berlin")
    assert berlin.text == "daily@09:00/Europe/Berlin"
    assert berlin.label == "Daily at 09:00 (Europe/Berlin)"
    assert berlin.next_after(utc(2026, 1, 10, 7, 59)) == utc(2026, 1, 10, 8)  # UTC+1
    assert berlin.next_after(utc(2026, 1, 10, 8)) == utc(2026, 1, 11, 8)
    assert berlin.next_after(utc(2026, 7, 10, 6)) == utc(2026, 7, 10, 7)  # UTC+2
    # The night the clocks go forward (29 March 2026): nine o'clock is at 07:00 UTC that day.
    assert berlin.next_after(utc(2026, 3, 28, 8)) == utc(2026, 3, 29, 7)


def test_a_time_the_clock_skips_or_repeats_goes_once() -> None:
    night = parse_schedule("daily@02:30/Europe/Berlin")
    # 02:30 does not exist on 29 March 2026: it goes at 03:30 summer time (01:30 UTC).
    assert night.next_after(utc(2026, 3, 28, 3)) == utc(2026, 3, 29, 1, 30)
    # 02:30 happens twice on 25 October 2026: it goes at the first (00:30 UTC), once.
    first = night.next_after(utc(2026, 10, 24, 3))
    assert first == utc(2026, 10, 25, 0, 30)
    assert night.next_after(first) == utc(2026, 10, 26, 1, 30)


def test_zones_ahead_and_behind_utc() -> None:
    assert parse_schedule("daily@00:15/Pacific/Auckland").next_after(utc(2026, 12, 4, 10)) == utc(
        2026, 12, 4, 11, 15
    )  # UTC+13 in December
    assert parse_schedule("daily@18:00/America/New_York").next_after(utc(2026, 12, 4, 22)) == utc(
        2026, 12, 4, 23
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("weekly", "hourly"),
        ("daily@24:00/UTC", "not a time of day"),
        ("daily@09:60/UTC", "hourly"),
        ("daily@09:00/Nowhere/Land", "not a time zone"),
        ("daily@09:00/../../etc/passwd", "time zone"),
        ("daily@09:00", "hourly"),
        ("", "hourly"),
    ],
)
def test_unusable_schedules_say_why(text: str, says: str) -> None:
    with pytest.raises(ScheduleError, match=says):
        parse_schedule(text)


def test_combining_windows_read_and_written() -> None:
    assert [parse_combine(t) for t in ("off", "10s", "30S", " 1m ", "5m")] == [
        None,
        10,
        30,
        60,
        300,
    ]
    assert [combine_text(s) for s in (None, 10, 30, 60, 300, 7)] == [
        "off",
        "10s",
        "30s",
        "1m",
        "5m",
        "off",
    ]
    with pytest.raises(ScheduleError, match="one of"):
        parse_combine("2m")

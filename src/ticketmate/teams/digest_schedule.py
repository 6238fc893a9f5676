"""When a subscription's digest goes out: "hourly", or "daily@HH:MM/Area/City".

Hourly digests go on the hour (UTC). A daily digest goes at a wall-clock time in an IANA time
zone, so "09:00 in Europe/Berlin" stays nine in the morning across summer time. A time that a
clock change skips goes out as if the clock had not changed yet (02:30 skipped: 03:30 summer
time); a time it repeats goes once, at its first occurrence. Zones come from the system's
time zone database (zoneinfo).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

HOURLY = "hourly"
_DAILY = re.compile(r"daily@(?P<hour>[0-2]\d):(?P<minute>[0-5]\d)/(?P<zone>[A-Za-z0-9_+\-/]{1,60})")

# The combining windows a subscription may choose, as the form and the CLI name them.
COMBINE_WINDOWS: dict[str, int] = {"10s": 10, "30s": 30, "1m": 60, "5m": 300}


class ScheduleError(ValueError):
    """A digest schedule or combining window that cannot be used; the message says why."""


@dataclass(frozen=True)
class DigestSchedule:
    hourly: bool
    at: time | None = None
    zone: str | None = None

    @property
    def text(self) -> str:
        """The stored form, as the API and the CLI take it."""
        if self.hourly or self.at is None:
            return HOURLY
        return f"daily@{self.at:%H:%M}/{self.zone}"

    @property
    def label(self) -> str:
        """In the UI's words: "Hourly", "Daily at 09:00 (Europe/Berlin)"."""
        if self.hourly or self.at is None:
            return "Hourly, on the hour"
        return f"Daily at {self.at:%H:%M} ({self.zone})"

    def next_after(self, moment: datetime) -> datetime:
        """The first time strictly after `moment` (aware) that this digest goes out, in UTC."""
        moment = moment.astimezone(UTC)
        if self.hourly or self.at is None or self.zone is None:
            return moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        zone = ZoneInfo(self.zone)
        day = moment.astimezone(zone).date() - timedelta(days=1)
        while True:
            local = datetime.combine(day, self.at, tzinfo=zone)
            # A skipped wall time takes the offset from before the change (fold=0), a repeated
            # one its first occurrence: see the module's docstring.
            candidate = local.astimezone(UTC)
            if candidate > moment:
                return candidate
            day += timedelta(days=1)

    def period_label(self, since: datetime) -> str:
        """What a digest covers, from its oldest event, in its zone: "Since 08:12 UTC",
        "Since Tue 03 Dec 09:00 (Europe/Berlin)"."""
        zone = ZoneInfo(self.zone) if self.zone else UTC
        when = since.astimezone(zone)
        name = self.zone or "UTC"
        if self.hourly:
            return f"Since {when:%H:%M} {name}"
        return f"Since {when:%a %d %b %H:%M} ({name})"


def parse_schedule(value: str) -> DigestSchedule:
    """Read "hourly" or "daily@HH:MM/Zone"; ScheduleError says what is wrong."""
    text = value.strip()
    if text.casefold() == HOURLY:
        return DigestSchedule(hourly=True)
    found = _DAILY.fullmatch(text)
    if found is None:
        raise ScheduleError(
            'use "hourly" or "daily@HH:MM/Area/City" (a 24-hour time and an IANA time zone, '
            'e.g. "daily@09:00/Europe/Berlin")'
        )
    hour, minute = int(found["hour"]), int(found["minute"])
    if hour > 23:
        raise ScheduleError(f"{hour:02d}:{minute:02d} is not a time of day; use 00:00 to 23:59")
    zone = found["zone"]
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"{zone!r} is not a time zone this server knows; use an IANA name such as "
            '"Europe/Berlin" or "UTC"'
        ) from None
    return DigestSchedule(hourly=False, at=time(hour, minute), zone=zone)


def parse_combine(value: str) -> int | None:
    """Read a combining window ("off", "10s", "30s", "1m", "5m") into seconds (None: off)."""
    text = value.strip().casefold()
    if text in ("off", "", "0"):
        return None
    if text in COMBINE_WINDOWS:
        return COMBINE_WINDOWS[text]
    raise ScheduleError(f"use one of: off, {', '.join(COMBINE_WINDOWS)}")


def combine_text(seconds: int | None) -> str:
    """Seconds back into the window's name ("off" when not combining)."""
    for name, window in COMBINE_WINDOWS.items():
        if window == seconds:
            return name
    return "off"

"""The Delivery Log's chart: the last 24 hours per hour, delivered / retrying / dead letter.

The numbers come from one query (web/queries.py `chart_rows`); this module puts them into
hourly buckets and works out the geometry of a stacked bar chart that the template draws as
inline SVG — no JavaScript, no library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ticketmate.web.queries import ChartRow

HOURS = 24
SERIES = ("delivered", "retrying", "dead_letter")
SERIES_LABELS = {"delivered": "Delivered", "retrying": "Retrying", "dead_letter": "Dead letter"}

WIDTH = 720
PLOT_HEIGHT = 110
TOP = 8
BAR_GAP = 6


@dataclass(frozen=True)
class Segment:
    series: str
    y: float
    height: float


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    start: datetime
    counts: dict[str, int]
    segments: list[Segment]

    @property
    def title(self) -> str:
        end = self.start + timedelta(hours=1)
        parts = ", ".join(f"{self.counts[s]} {SERIES_LABELS[s].lower()}" for s in SERIES)
        return f"{self.start:%H:%M}–{end:%H:%M} UTC: {parts}"


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    totals: dict[str, int]
    peak: int
    width: int = WIDTH
    plot_height: int = PLOT_HEIGHT
    top: int = TOP
    ticks: list[tuple[float, str]] = field(default_factory=list)

    @property
    def height(self) -> int:
        return self.top + self.plot_height + 22

    @property
    def baseline(self) -> int:
        return self.top + self.plot_height

    @property
    def summary(self) -> str:
        return (
            f"Last 24 hours: {self.totals['delivered']} delivered, "
            f"{self.totals['retrying']} retrying, {self.totals['dead_letter']} dead letters."
        )


def window_start(now: datetime) -> datetime:
    """The start of the first hourly bucket: 23 whole hours before the current hour."""
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return hour - timedelta(hours=HOURS - 1)


def _series_of(row: ChartRow) -> tuple[str, datetime] | None:
    if row.status == "delivered":
        return "delivered", row.delivered_at or row.updated_at
    if row.status == "dead_letter":
        return "dead_letter", row.updated_at
    if row.status == "pending" and row.attempt_count > 0:
        # Waiting for another attempt after a failure: counted in the hour it last failed.
        return "retrying", row.updated_at
    return None


def build_chart(rows: list[ChartRow], now: datetime) -> Chart:
    start = window_start(now)
    counts = [dict.fromkeys(SERIES, 0) for _ in range(HOURS)]
    for row in rows:
        found = _series_of(row)
        if found is None:
            continue
        series, moment = found
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
        index = int((moment - start).total_seconds() // 3600)
        if 0 <= index < HOURS:
            counts[index][series] += 1
    peak = max((sum(c.values()) for c in counts), default=0)
    scale = PLOT_HEIGHT / peak if peak else 0.0
    slot = WIDTH / HOURS
    bars = []
    for index, bucket in enumerate(counts):
        y = float(TOP + PLOT_HEIGHT)
        segments = []
        for series in SERIES:
            height = bucket[series] * scale
            if height:
                y -= height
                segments.append(Segment(series, round(y, 2), round(height, 2)))
        bars.append(
            Bar(
                x=round(index * slot + BAR_GAP / 2, 2),
                width=round(slot - BAR_GAP, 2),
                start=start + timedelta(hours=index),
                counts=bucket,
                segments=segments,
            )
        )
    totals = {series: sum(c[series] for c in counts) for series in SERIES}
    ticks = [(0.0, "−24 h"), (WIDTH / 4, "−18 h"), (WIDTH / 2, "−12 h"), (WIDTH * 3 / 4, "−6 h")]
    ticks.append((float(WIDTH), "now"))
    return Chart(bars=bars, totals=totals, peak=peak, ticks=ticks)

"""The Delivery Log chart's hourly buckets, and the <time> tags every page uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ticketmate.web.charts import HOURS, PLOT_HEIGHT, TOP, build_chart, window_start
from ticketmate.web.queries import ChartRow
from ticketmate.web.templating import time_tag

NOW = datetime(2026, 11, 28, 14, 25, tzinfo=UTC)


def row(status: str, at: datetime, attempts: int = 1) -> ChartRow:
    return ChartRow(status, attempts, at if status == "delivered" else None, at)


def test_the_window_is_24_whole_hours_ending_with_the_current_one() -> None:
    assert window_start(NOW) == datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


def test_rows_land_in_their_hour_and_series() -> None:
    rows = [
        row("delivered", NOW - timedelta(minutes=5)),
        row("delivered", NOW - timedelta(minutes=20)),
        row("pending", NOW - timedelta(minutes=1)),  # retrying: failed once already
        row("pending", NOW, attempts=0),  # queued, never tried: not charted
        row("dead_letter", NOW - timedelta(hours=3, minutes=1)),
        row("delivered", NOW - timedelta(hours=30)),  # before the window
        # Stored naive by SQLite: read as UTC.
        ChartRow("delivered", 1, (NOW - timedelta(hours=1)).replace(tzinfo=None), NOW),
    ]
    chart = build_chart(rows, NOW)
    assert len(chart.bars) == HOURS
    assert chart.totals == {"delivered": 3, "retrying": 1, "dead_letter": 1}
    last, before = chart.bars[-1], chart.bars[-2]
    assert last.counts == {"delivered": 2, "retrying": 1, "dead_letter": 0}
    assert before.counts["delivered"] == 1
    assert chart.bars[-4].counts["dead_letter"] == 1  # 11:24 is in the 11:00 bucket
    assert chart.peak == 3
    assert last.title == "14:00–15:00 UTC: 2 delivered, 1 retrying, 0 dead letter"
    # The tallest bar fills the plot; segments stack from the baseline up.
    heights = [s.height for s in last.segments]
    assert round(sum(heights), 1) == PLOT_HEIGHT
    assert [s.series for s in last.segments] == ["delivered", "retrying"]
    assert last.segments[0].y + last.segments[0].height == TOP + PLOT_HEIGHT
    assert chart.summary == "Last 24 hours: 3 delivered, 1 retrying, 1 dead letters."


def test_an_empty_chart_has_no_bars_drawn() -> None:
    chart = build_chart([], NOW)
    assert chart.peak == 0
    assert all(not bar.segments for bar in chart.bars)


def test_time_tags_carry_utc_for_the_browser_and_the_hover() -> None:
    tag = str(time_tag(datetime(2026, 11, 28, 6, 41, 5, 123000, tzinfo=UTC)))
    assert tag == (
        '<time datetime="2026-11-28T06:41:05.123Z" title="2026-11-28 06:41:05 UTC">'
        "2026-11-28 06:41 UTC</time>"
    )
    assert str(time_tag("2026-11-28T06:41:00Z")).startswith('<time datetime="2026-11-28T06:41:00Z"')
    assert str(time_tag(datetime(2026, 1, 2, 3, 4))).startswith(
        '<time datetime="2026-01-02T03:04:00Z"'
    )
    assert str(time_tag(None)) == "—"
    assert str(time_tag(None, "never")) == "never"

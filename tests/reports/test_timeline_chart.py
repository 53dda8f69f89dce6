"""The "dials and answers over time" chart reads right for campaigns of any length: the bucket
follows the span, and the plotted points cover exactly the dials (no empty plot, no axis of years).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import matplotlib.dates as mdates
import pytest

from campaigns.db.engine import create_engine, session_factory
from campaigns.db.models import AttemptState, CallAttempt, Campaign, Contact, ContactStatus
from campaigns.reports.charts import ChartData, chart_data, timeline_chart, timeline_series
from campaigns.reports.source import open_source
from campaigns.reports.summary import build_summary
from campaigns.service import get_campaign

T0 = datetime(2026, 5, 4, 14, 0, 0, tzinfo=UTC)


async def _campaign(url: str, dials: list[tuple[float, bool]]) -> None:
    """One campaign whose attempts were dialed at T0 + offset (seconds); bool: answered."""
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s, s.begin():
            camp = Campaign(name="c", status="completed", from_number="+14155550100",
                            connection_id="1", started_at=T0)
            s.add(camp)
            await s.flush()
            for i, (offset, answered) in enumerate(dials):
                at = T0 + timedelta(seconds=offset)
                contact = Contact(campaign_id=camp.id, source_row=i + 2,
                                  phone_e164=f"+1415555{i:04d}", phone_raw="x",
                                  status=ContactStatus.DONE, outcome="human" if answered
                                  else "no_answer", attempts=1, timezones=["America/New_York"])
                s.add(contact)
                await s.flush()
                s.add(CallAttempt(contact_id=contact.id, campaign_id=camp.id, attempt_no=1,
                                  phone_e164=contact.phone_e164, command_id=f"c{i}",
                                  client_state="x", state=AttemptState.ENDED, created_at=at,
                                  dial_sent_at=at, dialed_at=at,
                                  answered_at=at + timedelta(seconds=0.5) if answered else None,
                                  ended_at=at + timedelta(seconds=10),
                                  outcome="human" if answered else "no_answer"))
    finally:
        await engine.dispose()


async def _data(url: str) -> ChartData:
    async with open_source(url) as conn:
        c = await get_campaign(conn, "c")
        summary = await build_summary(conn, c, now=T0 + timedelta(days=4))
        return await chart_data(conn, c.id, summary)


def _plotted(data: ChartData) -> tuple[list[datetime], list[float], tuple[datetime, datetime]]:
    fig = timeline_chart(data)
    ax = fig.axes[0]
    dials = ax.lines[0]
    xs = [mdates.num2date(x) for x in dials.get_xdata(orig=False)]
    lo, hi = (mdates.num2date(v) for v in ax.get_xlim())
    return xs, list(dials.get_ydata()), (lo, hi)


@pytest.mark.parametrize(("span", "dials", "width", "buckets"), [
    # 20 s: one dial a second, the first and last answered
    ("20 s", [(float(i), i in (0, 20)) for i in range(21)], 1, 21),
    # 1 h: one dial a minute
    ("1 h", [(60.0 * i, i % 2 == 0) for i in range(61)], 15, 241),
    # 3 days: one dial every 2 h
    ("3 days", [(7200.0 * i, i % 3 == 0) for i in range(37)], 3600, 73),
])
async def test_timeline_bucket_and_points_follow_the_span(
        db_url: str, span: str, dials: list[tuple[float, bool]], width: int,
        buckets: int) -> None:
    await _campaign(db_url, dials)
    data = await _data(db_url)
    assert data.bucket_secs == width, span
    assert len(data.timeline) == buckets
    assert sum(d for _, d, _ in data.timeline) == len(dials)
    assert sum(a for _, _, a in data.timeline) == sum(1 for _, ans in dials if ans)
    # answers land in the bucket of their answer time (0.5 s after the dial)
    first_answer = min(T0 + timedelta(seconds=o + 0.5) for o, ans in dials if ans)
    assert next(t for t, _, a in data.timeline if a) <= first_answer

    series = timeline_series(data.timeline, data.bucket_secs)
    assert series is not None
    assert series.edges[0] == T0
    assert series.edges[-1] == T0 + timedelta(seconds=dials[-1][0]) + timedelta(seconds=width)
    assert series.xlim == (series.edges[0], series.edges[-1])

    xs, ys, (lo, hi) = _plotted(data)
    # the axis is the campaign's span, not years around a lone point
    assert lo == T0 and (hi - lo).total_seconds() == dials[-1][0] + width
    assert xs[0] == T0 and len(xs) == buckets + 1
    assert sum(ys[:-1]) == len(dials)  # the last point only closes the last step


@pytest.mark.fast
def test_a_single_bucket_still_has_a_width() -> None:
    series = timeline_series([(T0, 3, 1)], 1)
    assert series is not None
    assert series.edges == [T0, T0 + timedelta(seconds=1)]
    assert series.dials == [3] and series.answers == [1]
    assert series.time_format == "%H:%M:%S" and series.unit == "second"
    assert timeline_series([], 60) is None


@pytest.mark.fast
def test_tick_format_follows_the_bucket() -> None:
    day = timeline_series([(T0, 1, 0), (T0 + timedelta(days=1), 1, 0)], 86400)
    hours = timeline_series([(T0 + timedelta(hours=h), 1, 0) for h in range(30)], 3600)
    minutes = timeline_series([(T0 + timedelta(minutes=m), 1, 0) for m in range(30)], 60)
    assert day is not None and day.time_format == "%d %b"
    assert hours is not None and hours.time_format == "%d %b %H:%M"
    assert minutes is not None and minutes.time_format == "%H:%M"

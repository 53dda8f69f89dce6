"""The HTML report's charts: their data from SQL aggregates, drawn by matplotlib as SVG.

matplotlib is used through its object API (`Figure`, no pyplot), which renders without touching the
process-wide backend; text stays text (`svg.fonttype: none`), so each SVG is small and
self-contained. Every SVG's ids are prefixed so that several can live in one HTML page.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select

from campaigns import outcomes
from campaigns.db.models import CallAttempt, Contact
from campaigns.reports import sqlexpr
from campaigns.reports.rows import zone
from campaigns.reports.source import Conn, dialect_name
from campaigns.reports.summary import CampaignSummary

#: Time-line bucket widths to choose from (seconds to weeks: a 20 s dry run and a month-long
#: campaign both get a readable line), and the most buckets a time line may have.
BUCKET_WIDTHS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 240
#: Buckets for "answer rate by local hour": fine enough for zones with :30 / :45 offsets.
LOCAL_BUCKET_SECS = 900

#: One colour per outcome, stable across charts.
OUTCOME_COLOURS = {
    outcomes.HUMAN: "#2e7d32", outcomes.MACHINE: "#1565c0", outcomes.FAX: "#6a1b9a",
    outcomes.SILENCE: "#00838f", outcomes.BUSY: "#ef6c00", outcomes.NO_ANSWER: "#f9a825",
    outcomes.REJECTED: "#c62828", outcomes.INVALID_NUMBER: "#4e342e", outcomes.FAILED: "#d81b60",
    outcomes.CANCELED: "#757575", outcomes.DNC: "#212121", outcomes.NO_WINDOW: "#9e9d24",
    "pending": "#bdbdbd",
}


@dataclass
class ChartData:
    outcomes: list[tuple[str, int]] = field(default_factory=list)
    bucket_secs: int = 3600
    #: bucket start (UTC) -> (dials, answers)
    timeline: list[tuple[datetime, int, int]] = field(default_factory=list)
    #: attempt number -> outcome -> placed attempts
    by_attempt: dict[int, dict[str, int]] = field(default_factory=dict)
    #: local hour 0..23 -> (placed, answered)
    by_local_hour: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: placed attempts whose contact had no usable time zone (left out of the local-hour chart)
    no_timezone: int = 0


def bucket_width(first: datetime | None, last: datetime | None) -> int:
    """The narrowest width that keeps the time line within MAX_BUCKETS buckets."""
    span = (last - first).total_seconds() if first and last else 0.0
    for width in BUCKET_WIDTHS:
        if span / width <= MAX_BUCKETS:
            return width
    return BUCKET_WIDTHS[-1]


def _utc(epoch: Any) -> datetime:
    return datetime.fromtimestamp(int(epoch), tz=UTC)


async def chart_data(conn: Conn, campaign_id: int, summary: CampaignSummary) -> ChartData:
    dialect = dialect_name(conn)
    a = CallAttempt
    placed = sqlexpr.is_placed()
    data = ChartData(outcomes=[(o.outcome, o.contacts) for o in summary.outcomes if o.contacts])
    data.bucket_secs = width = bucket_width(summary.first_dial_at, summary.last_dial_at)

    dials = sqlexpr.bucket(dialect, sqlexpr.dial_time(), width).label("b")
    series: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for b, n in await conn.execute(select(dials, func.count()).where(a.campaign_id == campaign_id,
                                                                      placed).group_by(dials)):
        series[int(b)][0] += n
    answers = sqlexpr.bucket(dialect, a.answered_at, width).label("b")
    for b, n in await conn.execute(
        select(answers, func.count())
        .where(a.campaign_id == campaign_id, placed, a.answered_at.is_not(None)).group_by(answers)
    ):
        series[int(b)][1] += n
    if series:  # a continuous axis: empty buckets are zeros, not gaps
        lo, hi = min(series), max(series)
        data.timeline = [(_utc(t), series[t][0], series[t][1]) if t in series else (_utc(t), 0, 0)
                         for t in range(lo, hi + width, width)]

    by_attempt: dict[int, dict[str, int]] = defaultdict(dict)
    for no, outcome, n in await conn.execute(
        select(a.attempt_no, a.outcome, func.count()).where(a.campaign_id == campaign_id, placed)
        .group_by(a.attempt_no, a.outcome)
    ):
        by_attempt[int(no)][outcome or "pending"] = n
    data.by_attempt = dict(sorted(by_attempt.items()))

    tz = Contact.timezones[0].as_string().label("tz")
    slot = sqlexpr.bucket(dialect, sqlexpr.dial_time(), LOCAL_BUCKET_SECS).label("slot")
    hours: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for tz_name, b, n, answered in await conn.execute(
        select(tz, slot, func.count(), sqlexpr.count_if(sqlexpr.is_answered()))
        .join(Contact, Contact.id == a.contact_id)
        .where(and_(a.campaign_id == campaign_id, placed))
        .group_by(tz, slot)
    ):
        zi = zone(tz_name)
        if zi is None:
            data.no_timezone += n
            continue
        hour = _utc(b).astimezone(zi).hour
        hours[hour][0] += n
        hours[hour][1] += int(answered)
    data.by_local_hour = {h: (v[0], v[1]) for h, v in sorted(hours.items())}
    return data


# ---- drawing ----------------------------------------------------------------------------------

_RC: dict[str, Any] = {"svg.fonttype": "none", "svg.hashsalt": "dialer-report", "font.size": 9,
       "axes.spines.top": False, "axes.spines.right": False}


def _svg(fig: Any, prefix: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: inline SVG needs neither
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    text = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', text)
    text = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', text)
    return re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", text)


def _figure(width: float = 7.5, height: float = 3.4) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _empty(ax: Any, message: str = "no data yet") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#757575")
    ax.set_xticks([])
    ax.set_yticks([])


def outcome_chart(data: ChartData) -> Any:
    fig = _figure(height=max(2.0, 0.35 * len(data.outcomes) + 1))
    ax = fig.add_subplot()
    if not data.outcomes:
        _empty(ax)
        return fig
    names = [o for o, _ in data.outcomes][::-1]
    counts = [n for _, n in data.outcomes][::-1]
    total = sum(counts)
    bars = ax.barh(names, counts, color=[OUTCOME_COLOURS.get(o, "#90a4ae") for o in names])
    ax.bar_label(bars, labels=[f"{n:,} ({n / total:.0%})" for n in counts], padding=3)
    ax.set_xlabel("contacts")
    ax.margins(x=0.2)
    return fig


@dataclass(frozen=True)
class TimelineSeries:
    """What the time-line chart plots: `edges` are bucket boundaries (one more than buckets, so
    the last bucket has a visible width even when it is the only one), `dials`/`answers` the
    count per bucket, `xlim` the axis range, `time_format` the tick labels (strftime)."""

    edges: list[datetime]
    dials: list[int]
    answers: list[int]
    xlim: tuple[datetime, datetime]
    unit: str
    time_format: str


def timeline_series(timeline: list[tuple[datetime, int, int]],
                    bucket_secs: int) -> TimelineSeries | None:
    """The plotted series of a time line (None when nothing was dialed). Pure: tested without
    drawing. The axis spans exactly the buckets: matplotlib's own date autoscaling turns a
    single point into an axis of several years."""
    if not timeline:
        return None
    width = timedelta(seconds=bucket_secs)
    starts = [t for t, _, _ in timeline]
    edges = [*starts, starts[-1] + width]
    span = (edges[-1] - edges[0]).total_seconds()
    if bucket_secs < 60:
        fmt = "%H:%M:%S"
    elif bucket_secs < 86400:
        fmt = "%H:%M" if span <= 86400 else "%d %b %H:%M"
    else:
        fmt = "%d %b"
    return TimelineSeries(edges=edges, dials=[d for _, d, _ in timeline],
                          answers=[n for _, _, n in timeline], xlim=(edges[0], edges[-1]),
                          unit=_width_name(bucket_secs), time_format=fmt)


def timeline_chart(data: ChartData) -> Any:
    from matplotlib.dates import DateFormatter
    from matplotlib.ticker import MaxNLocator

    fig = _figure()
    ax = fig.add_subplot()
    series = timeline_series(data.timeline, data.bucket_secs)
    if series is None:
        _empty(ax)
        return fig
    # Steps drawn "post" through every edge: each bucket's count holds for its whole width.
    ax.step(series.edges, [*series.dials, series.dials[-1]], where="post", label="dials")
    ax.step(series.edges, [*series.answers, series.answers[-1]], where="post", label="answers")
    ax.set_xlim(*series.xlim)
    ax.set_ylim(0, max(1, *series.dials, *series.answers) * 1.1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if len(series.edges) <= 3:  # a bucket or two: tick their edges (the locator repeats labels)
        ax.set_xticks(series.edges)
    ax.xaxis.set_major_formatter(DateFormatter(series.time_format, tz=UTC))
    ax.set_ylabel(f"per {series.unit}")
    ax.set_xlabel("UTC")
    ax.legend(loc="upper right")
    fig.autofmt_xdate()
    return fig


def attempt_chart(data: ChartData) -> Any:
    fig = _figure()
    ax = fig.add_subplot()
    if not data.by_attempt:
        _empty(ax)
        return fig
    numbers = list(data.by_attempt)
    seen = {o for counts in data.by_attempt.values() for o in counts}
    order = [o for o in (*outcomes.ALL_OUTCOMES, "pending") if o in seen] + sorted(
        seen - set(outcomes.ALL_OUTCOMES) - {"pending"})
    bottom = [0] * len(numbers)
    labels = [str(n) for n in numbers]
    for o in order:
        values = [data.by_attempt[n].get(o, 0) for n in numbers]
        ax.bar(labels, values, bottom=bottom, label=o, color=OUTCOME_COLOURS.get(o, "#90a4ae"))
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xlabel("attempt number")
    ax.set_ylabel("placed attempts")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return fig


def local_hour_chart(data: ChartData) -> Any:
    fig = _figure()
    ax = fig.add_subplot()
    if not data.by_local_hour:
        _empty(ax)
        return fig
    hours = list(range(24))
    rates = [(data.by_local_hour[h][1] / data.by_local_hour[h][0] * 100)
             if data.by_local_hour.get(h, (0, 0))[0] else 0.0 for h in hours]
    bars = ax.bar([f"{h:02d}" for h in hours], rates, color="#2e7d32")
    ax.bar_label(bars, labels=[f"{data.by_local_hour[h][0]:,}" if h in data.by_local_hour else ""
                               for h in hours], fontsize=7, padding=2)
    ax.set_xlabel("hour of the contact's local day (bar label: placed attempts)")
    ax.set_ylabel("answer rate %")
    ax.set_ylim(0, max(100.0, max(rates) * 1.1))
    return fig


def _width_name(secs: int) -> str:
    names = {1: "second", 5: "5 s", 15: "15 s", 60: "minute", 300: "5 min", 900: "15 min",
             3600: "hour", 4 * 3600: "4 h", 86400: "day", 7 * 86400: "week"}
    return names.get(secs, f"{secs} s")


#: (id, title, drawer) of every chart, in page order.
CHARTS = (
    ("outcomes", "Outcome breakdown (contacts)", outcome_chart),
    ("timeline", "Dials and answers over time", timeline_chart),
    ("by-attempt", "Outcome by attempt number", attempt_chart),
    ("local-hour", "Answer rate by hour of the contact's local day", local_hour_chart),
)


def render_charts(data: ChartData) -> list[tuple[str, str, str]]:
    """(id, title, inline SVG) of every chart."""
    import matplotlib

    rendered: list[tuple[str, str, str]] = []
    with matplotlib.rc_context(_RC):  # type: ignore[arg-type]
        for chart_id, title, draw in CHARTS:
            rendered.append((chart_id, title, _svg(draw(data), f"chart-{chart_id}")))
    return rendered


def answers_svg(answers: dict[str, dict[str, int]]) -> str:
    """One bar chart of the keypad answers: a group of bars per script step."""
    import matplotlib

    bars = [(f"{step}: {answer}", n) for step, counts in answers.items()
            for answer, n in counts.items()]
    with matplotlib.rc_context(_RC):  # type: ignore[arg-type]
        fig = _figure(height=max(2.0, 0.35 * len(bars) + 1))
        ax = fig.add_subplot()
        if not bars:
            _empty(ax)
        else:
            names = [b for b, _ in bars][::-1]
            counts = [n for _, n in bars][::-1]
            drawn = ax.barh(names, counts, color="#5c6bc0")
            ax.bar_label(drawn, labels=[f"{n:,}" for n in counts], padding=3)
            ax.set_xlabel("contacts (last answer at the step)")
            ax.margins(x=0.2)
        return _svg(fig, "chart-answers")

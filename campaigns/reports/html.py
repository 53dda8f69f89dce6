"""The HTML report: one self-contained file (inline CSS and SVG, no script, no external asset)."""

from __future__ import annotations

from datetime import datetime
from html import escape

from campaigns.reports.charts import ChartData, answers_svg, render_charts
from campaigns.reports.summary import CampaignSummary

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1000px;padding:0 1rem;color:#212121}
h1{font-size:1.5rem;margin-bottom:.2rem}.sub{color:#616161;margin-top:0}
table{border-collapse:collapse;margin:1rem 0}th,td{padding:.25rem .75rem;text-align:left;
border-bottom:1px solid #e0e0e0}td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:flex;flex-wrap:wrap;gap:2rem}figure{margin:1.5rem 0}
figure svg{max-width:100%;height:auto}figcaption{font-weight:600;margin-bottom:.5rem}
.note{color:#616161}
"""


def _pct(v: float | None) -> str:
    return f"{v:.1%}" if v is not None else "–"


def _num(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def _dt(v: datetime | None) -> str:
    return v.strftime("%Y-%m-%d %H:%M:%S UTC") if v else "–"


def _duration(secs: float | None) -> str:
    if secs is None:
        return "–"
    secs = int(secs)
    h, rest = divmod(secs, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s"


def key_figures(s: CampaignSummary) -> list[tuple[str, str]]:
    """The summary's headline figures as (label, text): shared by the HTML and the terminal."""
    return [
        ("status", s.status),
        ("contacts", f"{s.contacts:,}"),
        ("contacts remaining", f"{s.contacts_remaining:,}"),
        ("contacts dialed", f"{s.contacts_attempted:,}"),
        ("attempts placed", f"{s.attempts_placed:,}"),
        ("attempts not placed (e.g. 429)", f"{s.attempts_not_placed:,}"),
        ("calls in flight", f"{s.attempts_in_flight:,}"),
        ("answer rate", f"{_pct(s.answer_rate)} ({s.answered:,})"),
        ("human rate", f"{_pct(s.human_rate)} ({s.human:,})"),
        ("machine rate", f"{_pct(s.machine_rate)} ({s.machine:,})"),
        ("voicemails left", f"{s.voicemails_left:,}"),
        ("talk time average", f"{_num(s.talk_seconds_avg)} s"),
        ("talk time median", f"{_num(s.talk_seconds_median)} s"),
        ("talk time total", _duration(s.talk_seconds_total)),
        ("attempts per contact", _num(s.attempts_per_contact, 2)),
        ("dials per hour", _num(s.dials_per_hour)),
        ("recent dials per hour", _num(s.recent_dials_per_hour)),
        ("first dial", _dt(s.first_dial_at)),
        ("last dial", _dt(s.last_dial_at)),
        ("ETA", f"{_duration(s.eta_seconds)} ({_dt(s.eta_at)})" if s.eta_at else "–"),
    ]


def render_html(summary: CampaignSummary, data: ChartData) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td class=n>{escape(v)}</td></tr>"
                   for k, v in key_figures(summary))
    outcome_rows = "".join(
        f"<tr><td>{escape(o.outcome)}</td><td class=n>{o.contacts:,}</td>"
        f"<td class=n>{o.contacts_share:.1%}</td><td class=n>{o.attempts:,}</td>"
        f"<td class=n>{o.attempts_share:.1%}</td></tr>"
        for o in summary.outcomes
    )
    notes = "".join(f"<p class=note>{escape(n)}</p>" for n in summary.notes)
    if data.no_timezone:
        notes += (f"<p class=note>{data.no_timezone:,} placed attempts of contacts without a known "
                  "time zone are not in the local-hour chart.</p>")
    figures = "".join(
        f'<figure id="{escape(cid)}"><figcaption>{escape(title)}</figcaption>{svg}</figure>'
        for cid, title, svg in render_charts(data)
    )
    answers = ""
    if summary.answers:
        answer_rows = "".join(
            f"<tr><td>{escape(step)}</td><td>{escape(answer)}</td><td class=n>{n:,}</td></tr>"
            for step, counts in summary.answers.items() for answer, n in counts.items())
        opted = (f"<p>Opted out by keypress: {summary.opted_out:,} contacts</p>"
                 if summary.opted_out is not None else "")
        answers = ('<section id="answers"><h2>Keypad answers</h2>' + opted +
                   "<table><thead><tr><th>step</th><th>answer</th><th>contacts</th></tr></thead>"
                   f"<tbody>{answer_rows}</tbody></table>"
                   f'<figure id="answers-chart"><figcaption>Answers per step</figcaption>'
                   f"{answers_svg(summary.answers)}</figure></section>")
    title = f"Campaign report: {summary.campaign}" + (" (dry run)" if summary.dry_run else "")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f'<p class=sub>generated {escape(_dt(summary.generated_at))}</p>'
        '<section id="summary"><h2>Summary</h2><div class=grid>'
        f"<table>{rows}</table>"
        "<table><thead><tr><th>outcome</th><th>contacts</th><th>share</th><th>attempts</th>"
        f"<th>share of placed</th></tr></thead><tbody>{outcome_rows}</tbody></table>"
        f"</div>{notes}</section>{answers}"
        f'<section id="charts"><h2>Charts</h2>{figures}</section>'
        "</body></html>\n"
    )

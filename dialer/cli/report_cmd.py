"""`dialer report NAME`: per-contact or per-attempt exports, the summary, the HTML report."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from campaigns.reports import FORMATS, CampaignSummary, summary, write_report
from campaigns.reports.html import key_figures
from dialer.cli.common import app_context, err, out, print_json, run


@click.command("report")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(path_type=Path), metavar="FILE",
              help="Write to FILE (atomically) instead of stdout; its extension picks the format.")
@click.option("--format", "fmt", type=click.Choice(FORMATS, case_sensitive=False),
              help="Output format [default: from FILE's extension, csv on stdout]. xlsx and "
                   "parquet need -o; html is the summary with charts in one file.")
@click.option("--attempts", is_flag=True, help="One row per call attempt instead of per contact.")
@click.option("--responses", is_flag=True,
              help="One row per keypad answer (each prompt's end: step, try, digits, status, "
                   "label, time) instead of per contact.")
@click.option("--summary", "show_summary", is_flag=True,
              help="Print the summary (outcomes, rates, talk time, pace, ETA) instead of rows.")
@click.option("--json", "as_json", is_flag=True, help="With --summary: print it as JSON.")
def report(name: str, output: Path | None, fmt: str | None, attempts: bool, responses: bool,
           show_summary: bool, as_json: bool) -> None:
    """Export campaign NAME's outcomes: every uploaded column of each contact, with its status,
    outcome, attempts, times and call details (see docs/reports.md)."""
    url = app_context().database_url
    if as_json and not show_summary:
        raise click.UsageError("--json goes with --summary (for JSON rows use --format jsonl)")
    if show_summary:
        if output is not None or fmt is not None or attempts or responses:
            raise click.UsageError("--summary prints to the terminal and takes no -o, --format, "
                                   "--attempts or --responses (the html format has the summary "
                                   "with charts)")
        data = run(summary(url, name))
        if as_json:
            print_json(data.to_dict())
        else:
            print_summary(data)
        return
    result = run(write_report(url, name, output, fmt, attempts=attempts, responses=responses))
    where = str(result.path) if result.path is not None else "stdout"
    what = "summary and charts" if result.kind == "html" else f"{result.rows:,} {result.kind}"
    err.print(f"wrote {what} to {where} ({result.format}, {result.seconds:.1f} s)",
              highlight=False)
    if result.unmapped_columns:
        err.print("note: cannot give back the recognised column(s) "
                  f"{', '.join(repr(c) for c in result.unmapped_columns)}: left empty",
                  highlight=False)


def print_summary(s: CampaignSummary) -> None:
    figures = Table(title=f"Campaign {s.campaign}" + (" (dry run)" if s.dry_run else ""),
                    show_header=False)
    figures.add_column("figure")
    figures.add_column("value", justify="right")
    for label, value in key_figures(s):
        figures.add_row(label, value)
    out.print(figures)
    table = Table(title="Outcomes")
    for col in ("outcome", "contacts", "share", "attempts", "share of placed"):
        table.add_column(col, justify="left" if col == "outcome" else "right")
    for o in s.outcomes:
        table.add_row(o.outcome, f"{o.contacts:,}", f"{o.contacts_share:.1%}", f"{o.attempts:,}",
                      f"{o.attempts_share:.1%}")
    out.print(table)
    if s.opted_out is not None:
        out.print(f"opted out by keypress: {s.opted_out:,} contact"
                  f"{'' if s.opted_out == 1 else 's'}", highlight=False)
    for step, counts in s.answers.items():
        answers = Table(title=f"Answers at step {step}")
        answers.add_column("answer")
        answers.add_column("contacts", justify="right")
        answers.add_column("share", justify="right")
        total = sum(counts.values())
        for answer, n in counts.items():
            answers.add_row(answer, f"{n:,}", f"{n / total:.1%}" if total else "-")
        out.print(answers)
    for note in s.notes:
        err.print(note, highlight=False)

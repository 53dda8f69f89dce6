"""`dialer demo` end to end (smaller and faster than the README's run): it completes and writes
the reports."""

from __future__ import annotations

import csv
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    lines = (REPO / "sample_data" / "contacts.csv").read_text(encoding="utf-8").splitlines()
    small = tmp_path / "contacts.csv"
    small.write_text("\n".join(lines[:81]) + "\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "dialer.cli.main", "demo", "--dir", str(tmp_path / "out"),
         "--contacts", str(small), "--speed", "40"],
        capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "campaign finished" in proc.stderr
    assert "answer rate" in proc.stdout
    assert "Answers at step" in proc.stdout and "confirmed" in proc.stdout
    out = tmp_path / "out"
    with (out / "demo-contacts.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["status"] == "done" for r in rows)
    assert {r["outcome"] for r in rows} & {"human", "machine"}
    assert {r["response"] for r in rows} & {"confirmed", "opt_out", "transfer"}
    parser = _Tags()
    parser.feed((out / "demo-report.html").read_text(encoding="utf-8"))
    charts = [a for t, a in parser.tags if t in ("svg", "img")]
    assert len(charts) >= 4
    assert not [a for t, a in parser.tags
                if t in ("script", "link", "img") and (a.get("src") or a.get("href") or "")
                .startswith("http")]

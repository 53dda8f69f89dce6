"""The compliance commands on SQLite and PostgreSQL: blackouts, rules files, the registry, start
refused with a stale registry, status, preview (text and JSON) and the attempts report."""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from campaigns.compliance.ruleset import DEFAULT_RULES
from campaigns.db.engine import create_engine
from dialer.cli.main import main
from tests.compliance.helpers import run_claim


def dialer(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--database-url", url, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sql(url: str, statement: str) -> None:
    async def _go() -> None:
        db = create_engine(url)
        async with db.begin() as conn:
            await conn.execute(text(statement))
        await db.dispose()

    asyncio.run(_go())


CREATE = ("campaign", "create", "x", "--from", "+14155550100", "--connection-id", "1")


def test_blackouts(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert dialer(capsys, db_url, "rules", "blackout", "add", "2026-12-24")[0] == 0
    assert dialer(capsys, db_url, "rules", "blackout", "add", "2026-12-26", "--states",
                  "ms, la", "--note", "storm")[0] == 0
    code, _, err = dialer(capsys, db_url, "rules", "blackout", "add", "2026-12-24")
    assert code != 0 and err.count("\n") == 1 and "already exists" in err
    code, _, err = dialer(capsys, db_url, "rules", "blackout", "add", "24/12/2026")
    assert code != 0 and "is not a date like" in err and "Traceback" not in err
    code, out, _ = dialer(capsys, db_url, "rules", "blackout", "list", "--json")
    assert json.loads(out) == [{"date": "2026-12-24", "states": [], "note": None},
                               {"date": "2026-12-26", "states": ["LA", "MS"], "note": "storm"}]
    assert dialer(capsys, db_url, "rules", "blackout", "remove", "2026-12-24")[0] == 0
    code, _, err = dialer(capsys, db_url, "rules", "blackout", "remove", "2026-12-24")
    assert code != 0 and "no blackout" in err


def test_bad_rules_file_changes_nothing_and_names_the_line(
        db_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    lines = DEFAULT_RULES.read_text().splitlines()
    lines.insert(30, "hours,FL,all,8am-8pm,,,x,src,unverified")
    bad = tmp_path / "rules.csv"
    bad.write_text("\n".join(lines) + "\n")
    code, _, err = dialer(capsys, db_url, "rules", "show", "--rules", str(bad))
    assert code != 0 and f"{bad}, line 31: hours '8am-8pm'" in err
    code, _, err = dialer(capsys, db_url, *CREATE, "--rules-file", str(bad))
    assert code != 0 and "line 31" in err
    code, out, _ = dialer(capsys, db_url, "campaign", "list", "--json")
    assert json.loads(out) == []
    code, out, _ = dialer(capsys, db_url, "rules", "show", "--json")
    assert code == 0 and json.loads(out)["caps"] == {"FL": 3, "OK": 3, "MD": 3}


def test_registry_cli_and_stale_copy(db_url: str, capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    bad = tmp_path / "dnc-212.txt"
    bad.write_text("212,5550001\n212,5550002\n212,55500x3\n")
    code, _, err = dialer(capsys, db_url, "dnc", "registry", "import", str(bad))
    assert code != 0 and "dnc-212.txt, line 3" in err and err.count("\n") == 1
    code, out, _ = dialer(capsys, db_url, "dnc", "registry", "status", "--json")
    assert json.loads(out)["numbers"] == 0 and json.loads(out)["copy_date"] is None

    assert dialer(capsys, db_url, *CREATE, "--registry-scrub")[0] == 0
    code, _, err = dialer(capsys, db_url, "campaign", "start", "x")
    assert code != 0 and "no national DNC registry copy is loaded" in err
    good = tmp_path / "full.txt"
    good.write_text("212,5550001\n212,5550002\n")
    old = (datetime.now(UTC).date() - timedelta(days=40)).isoformat()
    code, out, _ = dialer(capsys, db_url, "dnc", "registry", "import", str(good), "--date", old,
                          "--json")
    assert code == 0 and json.loads(out)["total"] == 2
    code, _, err = dialer(capsys, db_url, "campaign", "start", "x")
    assert code != 0 and "40 days old" in err
    recent = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    assert dialer(capsys, db_url, "dnc", "registry", "import", str(good), "--date",
                  recent)[0] == 0
    assert dialer(capsys, db_url, "campaign", "start", "x")[0] == 0
    code, out, _ = dialer(capsys, db_url, "status", "x", "--json")
    assert json.loads(out)["compliance"]["stopped"] is None
    sql(db_url, f"UPDATE registry_copies SET copy_date = '{old}'")
    code, out, _ = dialer(capsys, db_url, "status", "x")
    assert "NOT DIALED" in out and "40 days old" in out


def _contacts_csv(path: Path) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "state", "zip", "consent"])
        w.writerow(["+12125550001", "FL", "", "written"])  # Florida resident, NY number
        w.writerow(["+14015550002", "", "02903", "none"])  # Rhode Island
        w.writerow(["+18015550003", "UT", "84101", ""])  # Utah
        w.writerow(["+12125550004", "NY", "10001", "2025-03-01"])
    return path


def test_preview_and_attempt_report(db_url: str, capsys: pytest.CaptureFixture[str],
                                    tmp_path: Path) -> None:
    assert dialer(capsys, db_url, *CREATE, "--calling-hours", "08:00-21:00",
                  "--calling-days", "all")[0] == 0
    code, _, err = dialer(capsys, db_url, "contacts", "import", "x",
                          str(_contacts_csv(tmp_path / "c.csv")))
    assert code == 0, err
    # Sunday 2026-07-26 19:00 UTC: 15:00 New York, 13:00 Denver (Pioneer Day was Friday).
    code, out, _ = dialer(capsys, db_url, "campaign", "preview", "x", "--at",
                          "2026-07-26T19:00:00Z", "--json")
    assert code == 0
    data = json.loads(out)
    by_phone = {d["phone"]: d for d in data["decisions"]}
    assert by_phone["+14015550002"]["reason"] == "window"  # Rhode Island: no Sunday calls
    assert by_phone["+14015550002"]["until"] == "2026-07-27T13:00:00+00:00"
    assert by_phone["+12125550001"]["states"] == ["FL", "NY"]
    assert by_phone["+12125550001"]["consent"]["written"] is True
    assert by_phone["+12125550004"]["consent"] == {"value": "2025-03-01", "written": True,
                                                   "required": False}
    assert data["callable"] == 3 and data["deferred"] == {"window": 1}
    # Friday 2026-07-24 (Pioneer Day): the Utah contact waits; the text output says so.
    code, out, _ = dialer(capsys, db_url, "campaign", "preview", "x", "--at",
                          "2026-07-24T19:00:00Z")
    assert code == 0 and "holiday: 1" in out and "callable: 3" in out
    assert "deferred:holiday: +18015550003" in out
    code, _, err = dialer(capsys, db_url, "campaign", "preview", "x", "--at", "tomorrow")
    assert code != 0 and "not an ISO time" in err

    dialer(capsys, db_url, "campaign", "start", "x")
    sql(db_url, "UPDATE contacts SET next_attempt_at = '2026-07-01 00:00:00'")
    asyncio.run(run_claim(db_url, "x", datetime(2026, 7, 26, 19, 0, tzinfo=UTC)))
    report = tmp_path / "attempts.csv"
    code, _, err = dialer(capsys, db_url, "report", "x", "--attempts", "-o", str(report))
    assert code == 0, err
    rows = list(csv.DictReader(report.open()))
    assert len(rows) == 3
    for row in rows:
        record = json.loads(row["decision"])
        assert record["verdict"] == "allowed" and record["at"] == "2026-07-26T19:00:00+00:00"
        assert record["zones"] and record["rules"]
    assert date(2026, 7, 26).weekday() == 6

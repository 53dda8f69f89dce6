"""Scripts and templates from the command line: validated at create, fields checked at start and
at import, refused with the field's name and a count (nothing dialed), on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.foundation.test_campaign_cli import campaigns_json, dialer

TOML = '''
from = "+14155550100"
connection_id = "1"
on_human = "script"
opt_out_digit = "9"
transfer_to = "+14155550199"
[script.start]
say = "Hello {first_name|there}, about your visit on {appointment}. Press 1 to confirm."
keys = { "1" = "label:confirmed", "9" = "opt_out" }
'''


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    toml = tmp_path / "c.toml"
    toml.write_text(TOML)
    good = tmp_path / "good.csv"
    good.write_text("phone,first_name,appointment\n+14155550111,Ann,May 3\n"
                    "+14155550112,,May 4\n")
    gaps = tmp_path / "gaps.csv"
    gaps.write_text("phone,first_name,appointment\n+14155550113,Bo,\n+14155550114,Cy,\n")
    return toml, good, gaps


def test_script_campaign_checks_fields(sqlite_url: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    toml, good, gaps = _files(tmp_path)
    assert dialer(capsys, sqlite_url, "campaign", "create", "visits", "--config", str(toml))[0] == 0
    code, _, _ = dialer(capsys, sqlite_url, "contacts", "import", "visits", str(good))
    assert code == 0
    code, _, err = dialer(capsys, sqlite_url, "contacts", "import", "visits", str(gaps))
    assert code != 0 and "{appointment}" in err and "2 contacts" in err
    assert "nothing was imported" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert dialer(capsys, sqlite_url, "campaign", "start", "visits")[0] == 0


def test_start_refuses_missing_column(sqlite_url: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "plain.csv"
    csv.write_text("phone,first_name\n+14155550111,Ann\n+14155550112,\n")
    assert dialer(capsys, sqlite_url, "campaign", "create", "speak", "--from", "+14155550100",
                  "--connection-id", "1", "--on-human", "speak", "--message-text",
                  "Hi {first_name}, your code is {code}")[0] == 0
    assert dialer(capsys, sqlite_url, "contacts", "import", "speak", str(csv))[0] == 0
    code, _, err = dialer(capsys, sqlite_url, "campaign", "start", "speak")
    assert code != 0
    assert "no column 'code'" in err and "1 contact has no 'first_name'" in err
    assert "nothing was dialed" in err
    assert campaigns_json(capsys, sqlite_url)[0]["status"] == "draft"


def test_bad_script_is_refused_at_create(sqlite_url: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(TOML.replace('"1" = "label:confirmed"', '"1" = "nowhere", "X" = "hangup"'))
    code, _, err = dialer(capsys, sqlite_url, "campaign", "create", "bad", "--config", str(toml))
    assert code != 0 and "unknown step 'nowhere'" in err and "'X' is not keypad digits" in err
    assert campaigns_json(capsys, sqlite_url) == []

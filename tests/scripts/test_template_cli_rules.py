"""The template checks from the command line, on SQLite: language at create, `campaign set` and
`resume` on a campaign that is not a draft, transfer_to values, headers mapped to built-in
fields, the dry run of an import, headers that differ only in punctuation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.foundation.test_campaign_cli import campaigns_json, dialer

SPEAK = ["--from", "+14155550100", "--connection-id", "1", "--on-human", "speak"]


def _settings(capsys: pytest.CaptureFixture[str], url: str) -> dict:
    code, out, _ = dialer(capsys, url, "campaign", "show", "c", "--json")
    assert code == 0
    return dict(json.loads(out)["settings"])


def test_language_refused_at_create_and_set(sqlite_url: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = dialer(capsys, sqlite_url, "campaign", "create", "c", *SPEAK,
                          "--message-text", "Hi", "--language", "english")
    assert code != 0 and "language: 'english' is not one of the allowed values" in err
    assert len(err.strip().splitlines()) == 1 and campaigns_json(capsys, sqlite_url) == []
    assert dialer(capsys, sqlite_url, "campaign", "create", "c", *SPEAK,
                  "--message-text", "Hi")[0] == 0
    code, _, err = dialer(capsys, sqlite_url, "campaign", "set", "c", "--voice", "Joanna")
    assert code != 0 and "voice: must be male, female" in err
    assert dialer(capsys, sqlite_url, "campaign", "set", "c", "--voice", "Polly.Joanna")[0] == 0


def test_set_and_resume_check_fields_on_a_started_campaign(
        sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "a.csv"
    csv.write_text("phone,first_name\n+14155550111,Ann\n+14155550112,Bo\n")
    assert dialer(capsys, sqlite_url, "campaign", "create", "c", *SPEAK,
                  "--message-text", "Hi {first_name}")[0] == 0
    assert dialer(capsys, sqlite_url, "contacts", "import", "c", str(csv))[0] == 0
    assert dialer(capsys, sqlite_url, "campaign", "start", "c")[0] == 0
    code, _, err = dialer(capsys, sqlite_url, "campaign", "set", "c", "--message-text",
                          "Hi {nonexistent_col}")
    assert code != 0 and "no column 'nonexistent_col'" in err
    assert _settings(capsys, sqlite_url)["message_text"] == "Hi {first_name}"  # unchanged
    assert dialer(capsys, sqlite_url, "campaign", "set", "c", "--message-text",
                  "Hello {first_name}")[0] == 0
    assert dialer(capsys, sqlite_url, "campaign", "pause", "c")[0] == 0
    gaps = tmp_path / "gaps.csv"
    gaps.write_text("phone,first_name\n+14155550113,\n+14155550114,\n")
    assert dialer(capsys, sqlite_url, "contacts", "import", "c", str(gaps))[0] == 0
    code, _, err = dialer(capsys, sqlite_url, "campaign", "resume", "c")
    assert code != 0 and "2 contacts have no 'first_name'" in err
    assert campaigns_json(capsys, sqlite_url)[0]["status"] == "paused"
    assert dialer(capsys, sqlite_url, "campaign", "set", "c", "--message-text",
                  "Hello {first_name|there}")[0] == 0
    assert dialer(capsys, sqlite_url, "campaign", "resume", "c")[0] == 0


def test_transfer_to_values_must_be_numbers(sqlite_url: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "a.csv"
    csv.write_text("phone,agent\n+14155550111,hello\n+14155550112,+1 (415) 555-0198\n")
    assert dialer(capsys, sqlite_url, "campaign", "create", "c", "--from", "+14155550100",
                  "--connection-id", "1", "--on-human", "transfer", "--transfer-to",
                  "{agent}")[0] == 0
    assert dialer(capsys, sqlite_url, "contacts", "import", "c", str(csv))[0] == 0
    code, _, err = dialer(capsys, sqlite_url, "campaign", "start", "c")
    assert code != 0 and "transfer_to uses {agent} but it is not a phone number for 1 contact" \
        in err
    code, _, err = dialer(capsys, sqlite_url, "campaign", "set", "c", "--transfer-to",
                          "call {agent} now")
    assert code != 0 and "transfer_to: must be a +E164 number" in err


def test_headers_mapped_to_builtin_fields(sqlite_url: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "a.csv"
    csv.write_text("Phone Number,First Name,State,Zip\n2057925976,Ann,AL,36803\n"
                   "4125389509,Bo,PA,15201\n4155550113,Cy,,94105\n")
    assert dialer(capsys, sqlite_url, "campaign", "create", "c", *SPEAK, "--message-text",
                  "Hi {State}, {Zip}, {Phone Number}")[0] == 0
    assert dialer(capsys, sqlite_url, "contacts", "import", "c", str(csv))[0] == 0
    code, _, err = dialer(capsys, sqlite_url, "campaign", "start", "c")
    assert code != 0 and "1 contact has no 'State'" in err and "Zip" not in err
    assert dialer(capsys, sqlite_url, "campaign", "set", "c", "--message-text",
                  "Hi {State|your state}, {Zip}")[0] == 0
    assert dialer(capsys, sqlite_url, "campaign", "start", "c")[0] == 0


SCRIPT_TOML = '''
from = "+14155550100"
connection_id = "1"
on_human = "script"
[script.start]
say = "Hello {first_name|there}, your zip is {zip}."
'''


def test_dry_run_reports_the_template_refusal(sqlite_url: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(SCRIPT_TOML)
    csv = tmp_path / "a.csv"
    csv.write_text("phone,first_name\n+14155550111,Ann\n+14155550112,Bo\n+14155550113,Cy\n")
    assert dialer(capsys, sqlite_url, "campaign", "create", "c", "--config", str(toml))[0] == 0
    real = dialer(capsys, sqlite_url, "contacts", "import", "c", str(csv))
    dry = dialer(capsys, sqlite_url, "contacts", "import", "c", str(csv), "--dry-run")
    for code, _, err in (real, dry):
        assert code == 1 and "names {zip} but the contact list has no column 'zip'" in err


def test_headers_differing_in_punctuation(sqlite_url: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "a.csv"
    csv.write_text("phone,Note,note_\n+14155550111,a,b\n")
    assert dialer(capsys, sqlite_url, "campaign", "create", "c", *SPEAK, "--message-text",
                  "Hi {Note}")[0] == 0
    code, _, err = dialer(capsys, sqlite_url, "contacts", "import", "c", str(csv))
    assert code == 0 and "warning: the columns 'Note' and 'note_' differ only" in err
    code, _, err = dialer(capsys, sqlite_url, "campaign", "start", "c")
    assert code != 0 and "matches the columns 'Note' and 'note_'" in err

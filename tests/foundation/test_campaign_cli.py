"""The campaign lifecycle from the command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dialer.cli.main import main


def dialer(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--database-url", url, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def campaigns_json(capsys: pytest.CaptureFixture[str], url: str) -> list[dict]:
    code, out, _ = dialer(capsys, url, "campaign", "list", "--json")
    assert code == 0
    return json.loads(out)


def test_lifecycle(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert dialer(capsys, db_url, "campaign", "create", "spring", "--from", "+14155550100",
                  "--connection-id", "123")[0] == 0
    assert dialer(capsys, db_url, "campaign", "start", "spring")[0] == 0
    assert dialer(capsys, db_url, "campaign", "pause", "spring")[0] == 0
    code, out, _ = dialer(capsys, db_url, "campaign", "show", "spring")
    assert code == 0 and "paused" in out and "+14155550100" in out
    code, out, _ = dialer(capsys, db_url, "campaign", "show", "spring", "--json")
    data = json.loads(out)
    assert data["status"] == "paused"
    assert data["settings"]["calling_hours"] == "09:00-20:00"
    assert dialer(capsys, db_url, "campaign", "resume", "spring")[0] == 0
    assert dialer(capsys, db_url, "campaign", "stop", "spring")[0] == 0
    assert campaigns_json(capsys, db_url)[0]["status"] == "cancelled"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["campaign", "show", "nope"], "no campaign named 'nope'"),
        (["campaign", "start", "nope"], "no campaign named 'nope'"),
        (["campaign", "create", "x", "--from", "4155550100", "--connection-id", "1"], "+E164"),
        (["campaign", "create", "x", "--from", "+14155550100", "--connection-id", "1",
          "--answering-machine-detection", "maybe"], "answering_machine_detection"),
        (["campaign", "create", "x", "--from", "+14155550100", "--connection-id", "1",
          "--timeout-secs", "3"], "timeout_secs: 3 is outside the allowed range 5..600"),
        (["campaign", "create", "x", "--from", "+14155550100"], "connection_id"),
        (["campaign", "create", "x", "--from", "+14155550100", "--connection-id", "1",
          "--on-human", "play"], "message_audio_url"),
        (["campaign", "create", "x", "--from", "+14155550100", "--connection-id", "1",
          "--calling-hours", "9-5"], "calling_hours"),
        (["campaign", "create", "x", "--from", "+14155550100", "--connection-id", "1",
          "--fallback-timezone", "Mars/Olympus"], "fallback_timezone"),
        (["campaign", "create", "spring", "--from", "+14155550100", "--connection-id", "1"],
         "already exists"),
        (["campaign", "resume", "spring"], "use `dialer campaign start`"),
        (["campaign", "create", "x", "--bogus", "1"], "No such option"),
    ],
)
def test_bad_input_is_one_clear_line_and_changes_nothing(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    assert dialer(capsys, sqlite_url, "campaign", "create", "spring", "--from", "+14155550100",
                  "--connection-id", "123")[0] == 0
    before = campaigns_json(capsys, sqlite_url)
    code, out, err = dialer(capsys, sqlite_url, *args)
    assert code != 0
    assert fragment in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    assert campaigns_json(capsys, sqlite_url) == before


def test_completed_or_cancelled_cannot_restart(db_url: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    dialer(capsys, db_url, "campaign", "create", "c", "--from", "+14155550100",
           "--connection-id", "1")
    dialer(capsys, db_url, "campaign", "stop", "c")
    code, _, err = dialer(capsys, db_url, "campaign", "start", "c")
    assert code != 0 and "cancelled" in err


def test_toml_file_with_flag_override(sqlite_url: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'from = "+14155550100"\nconnection_id = "abc"\ntimeout_secs = 40\ncps = 5\n'
        'answering_machine_detection = "premium"\non_machine = "voicemail"\n'
        'voicemail_audio_url = "https://example.com/vm.mp3"\n'
        'sip_auth_password = "hunter2"\n'
        '[answering_machine_detection_config]\ntotal_analysis_time_millis = 5000\n'
    )
    code, out, err = dialer(capsys, sqlite_url, "campaign", "create", "t", "--config", str(cfg),
                            "--timeout-secs", "25", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["dial_settings"]["timeout_secs"] == 25
    assert data["dial_settings"]["answering_machine_detection"] == "premium"
    assert data["dial_settings"]["answering_machine_detection_config"] == {
        "total_analysis_time_millis": 5000}
    assert data["settings"]["cps"] == 5
    code, out, _ = dialer(capsys, sqlite_url, "campaign", "show", "t")
    assert "hunter2" not in out
    code, out, _ = dialer(capsys, sqlite_url, "campaign", "show", "t", "--json")
    assert "hunter2" not in out


def test_sample_campaign_file_is_valid(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    sample = Path(__file__).resolve().parents[2] / "sample_data" / "campaign.toml"
    code, _, err = dialer(capsys, sqlite_url, "campaign", "create", "sample", "--config",
                          str(sample))
    assert code == 0, err


def test_forgot_upgrade_gets_told(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    code, _, err = dialer(capsys, url, "campaign", "list")
    assert code != 0 and "dialer db upgrade" in err
    assert dialer(capsys, url, "db", "upgrade")[0] == 0
    assert dialer(capsys, url, "campaign", "list")[0] == 0


def test_unreachable_postgres_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = dialer(capsys, "postgresql://u:secretpw@127.0.0.1:1/db", "campaign", "list")
    assert code != 0 and "secretpw" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_console_script_runs(sqlite_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dialer.cli.main", "--database-url", sqlite_url, "campaign",
         "show", "missing"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: no campaign named 'missing'")
    help_text = subprocess.run([sys.executable, "-m", "dialer.cli.main", "--help"],
                               capture_output=True, text=True, timeout=60).stdout
    assert "DIALER_DATABASE_URL" in help_text

"""The do-not-call list: `dialer dnc ...` and `dnc_numbers_among` for the engine."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from campaigns.db.engine import create_engine, session_factory
from campaigns.dnc import dnc_numbers_among
from tests.importing.conftest import Runner, import_json, query, snapshot, write_csv

SAMPLES = Path(__file__).resolve().parents[2] / "sample_data"


def listed(cli: Runner, url: str) -> list[str]:
    code, out, _ = cli(url, "dnc", "list", "--json")
    assert code == 0
    return [r["phone_e164"] for r in json.loads(out)]


def test_add_list_remove(db_url: str, cli: Runner) -> None:
    code, out, err = cli(db_url, "dnc", "add", "(212) 736-5000", "+1 415 379 1414",
                         "212.736.5000", "--json")
    assert code == 0, err
    assert json.loads(out)["added"] == 2 and "2 added" in err
    assert listed(cli, db_url) == ["+12127365000", "+14153791414"]
    code, out, _ = cli(db_url, "dnc", "list", "--json")
    assert json.loads(out)[0]["raw_input"] == "(212) 736-5000"
    code, _, err = cli(db_url, "dnc", "add", "2127365000")
    assert code == 0 and "0 added" in err and "1 already on it" in err

    before = snapshot(db_url)
    code, _, err = cli(db_url, "dnc", "add", "(312) 782-4000", "12345", "nope")
    assert code != 0 and "'12345'" in err and "nothing was added" in err
    assert snapshot(db_url) == before

    code, _, err = cli(db_url, "dnc", "remove", "+12127365000", "(617) 253-1000")
    assert code == 0 and "1 removed" in err and "1 were not on it" in err
    assert listed(cli, db_url) == ["+14153791414"]
    code, out, _ = cli(db_url, "dnc", "list")
    assert "+14153791414" in out


def test_import_file(db_url: str, cli: Runner, tmp_path: Path) -> None:
    with_header = write_csv(tmp_path / "d.csv", ["Name", "Mobile"],
                            [["a", "(212) 736-5000"], ["b", "bad"], ["c", ""],
                             ["d", "415-379-1414"], ["e", "+1 212 736 5000"]])
    code, out, err = cli(db_url, "dnc", "import", str(with_header), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["added"], data["invalid"], data["rows_read"]) == (2, 1, 5)
    assert data["invalid_examples"] == [{"row": 3, "value": "bad", "reason": "unparseable"}]
    bare = tmp_path / "bare.csv"
    bare.write_text("(312) 782-4000\n617-253-1000\n(212) 736-5000\n")
    code, out, err = cli(db_url, "dnc", "import", str(bare), "--json")
    assert code == 0, err
    assert (json.loads(out)["added"], json.loads(out)["already_listed"]) == (2, 1)
    assert len(listed(cli, db_url)) == 4
    code, _, err = cli(db_url, "dnc", "import", str(tmp_path / "none.csv"))
    assert code != 0 and "does not exist" in err


def test_numbers_among_for_the_engine(db_url: str, cli: Runner) -> None:
    assert cli(db_url, "dnc", "add", "(212) 736-5000", "415-379-1414")[0] == 0

    async def _go() -> set[str]:
        engine = create_engine(db_url)
        try:
            async with session_factory(engine)() as session:
                many = [f"+1212736{i:04d}" for i in range(6000)] + ["+14153791414"]
                return await dnc_numbers_among(session, many)
        finally:
            await engine.dispose()

    assert asyncio.run(_go()) == {"+12127365000", "+14153791414"}


def test_sample_data(db_url: str, campaign: str, cli: Runner) -> None:
    code, out, err = cli(db_url, "dnc", "import", str(SAMPLES / "dnc.csv"), "--json")
    assert code == 0 and json.loads(out)["added"] == 10, err
    summary = import_json(cli, db_url, campaign, str(SAMPLES / "contacts.csv"))
    assert summary["rows_read"] == 384
    assert (summary["accepted"], summary["invalid"], summary["duplicates"],
            summary["dnc_suppressed"]) == (356, 14, 10, 4)
    assert summary["tz_unknown"] == 0
    assert query(db_url, "SELECT count(*) FROM contacts") == [(356,)]

"""The rules file: the shipped one reads, holidays fall on their dates, bad files name the line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from campaigns.compliance.ruleset import (
    DEFAULT_RULES,
    RulesFileError,
    easter,
    holiday_date,
    load_rules,
    parse_rules,
)
from campaigns.compliance.states import candidate_states, state_of_number, state_of_zip

pytestmark = pytest.mark.fast


def test_shipped_rules_read_and_cite_every_row() -> None:
    rules = load_rules()
    assert rules.version and rules.first_year <= 2027 <= rules.last_year
    assert rules.caps == {"FL": 3, "OK": 3, "MD": 3}
    assert rules.hours["RI"][6] is None and rules.hours["RI"][5] == (600, 1020)
    assert rules.hours["PA"] == {6: (810, 1260)}
    for line in DEFAULT_RULES.read_text().splitlines()[1:]:
        if line and not line.startswith("#") and not line.startswith(("kind", "meta")):
            fields = line.split(",")
            assert fields[-1] in ("secondary", "unverified"), line


def test_holiday_rules() -> None:
    assert easter(2026) == date(2026, 4, 5) and easter(2027) == date(2027, 3, 28)
    assert holiday_date("4 thu 11", 2026) == date(2026, 11, 26)
    assert holiday_date("last mon 05", 2026) == date(2026, 5, 25)
    assert holiday_date("3 mon 01", 2027) == date(2027, 1, 18)
    rules = load_rules()
    # Pioneer Day 2026 is a Friday; 2027 a Saturday, observed Friday 23rd (both are no-call).
    assert rules.holidays["UT"][date(2026, 7, 24)] == "Pioneer Day"
    assert {date(2027, 7, 24), date(2027, 7, 23)} <= set(rules.holidays["UT"])
    # Mississippi moves only a Sunday holiday: Christmas 2027 is a Saturday.
    assert date(2027, 12, 24) not in rules.holidays["MS"]
    assert date(2027, 12, 24) in rules.holidays["AL"]
    assert rules.holidays["LA"][date(2026, 2, 17)] == "Mardi Gras"


def _with(line: str, replace: str | None = None) -> str:
    text = DEFAULT_RULES.read_text()
    if replace is not None:
        return text.replace(replace, line)
    return text + line + "\n"


@pytest.mark.parametrize("bad, fragment", [
    ("hours,FL,all,08:00-25:00,,,x,src,unverified", "hours '08:00-25:00'"),
    ("hours,Florida,all,08:00-20:00,,,x,src,unverified", "state 'Florida'"),
    ("cap,FL,,,three,,x,src,unverified", "cap 'three'"),
    ("holiday,UT,,,13-45,,x,src,unverified", "holiday date '13-45'"),
    ("holiday,UT,,,07-24,sat-thu,x,src,unverified", "observed 'sat-thu'"),
    ("hours,FL,funday,08:00-20:00,,,x,src,unverified", "funday"),
    ("hours,FL,all,08:00-20:00,,,x,,unverified", "needs its source"),
    ("rule,FL,all,08:00-20:00,,,x,src,unverified", "kind 'rule'"),
    ("hours,FL,all", "3 fields"),
])
def test_bad_line_is_named(bad: str, fragment: str) -> None:
    text = _with(bad)
    lineno = len(text.splitlines())
    with pytest.raises(RulesFileError) as info:
        parse_rules(text, "my.csv")
    assert f"my.csv, line {lineno}" in str(info.value) and fragment in str(info.value)


def test_missing_meta_and_header() -> None:
    with pytest.raises(RulesFileError, match="meta line"):
        parse_rules(_with("", "meta,,,,2026-2028,,years,,"), "x.csv")
    with pytest.raises(RulesFileError, match="line 1: the header"):
        parse_rules("kind,state\n", "x.csv")


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RulesFileError, match="cannot read rules file"):
        load_rules(tmp_path / "nope.csv")


def test_contact_states() -> None:
    assert state_of_zip("33101") == "FL" and state_of_zip("02903-1234") == "RI"
    assert state_of_zip("2903") == "RI" and state_of_zip("abc") is None
    assert state_of_number("+12125550001") == "NY"
    assert state_of_number("+18015550000") == "UT"
    assert state_of_number("+18005551212") is None and state_of_number("+442071234567") is None
    states, sources = candidate_states("Florida", None, "+12125550001")
    assert states == ("FL", "NY") and sources == {"state": "FL", "area_code": "NY"}
    assert candidate_states(None, None, "+19999999999")[0] == ()

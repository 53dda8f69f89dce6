"""The US states (and territories / Canadian provinces) a contact may be in.

Three sources, each optional: the contact's state column (`region`), its ZIP code (first three
digits, `zip3.csv`), and the number's area code (phonenumbers' geocoder: "New York, NY",
"Florida"). The candidates are the union of every source that answers: when they disagree, the
call must satisfy the rules of each (a Florida contact with a New York number gets Florida's
hours and cap). Derived from the stored contact fields at claim time (nothing is stored at
import: a corrected ZIP table or rules file applies to contacts already imported).
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

from campaigns.timezones import REGIONS, _fold

_ZIP3 = Path(__file__).with_name("zip3.csv")

STATE_COLUMN = "state"
ZIP = "zip"
AREA_CODE = "area_code"


@lru_cache(maxsize=1)
def _names() -> dict[str, str]:
    index: dict[str, str] = {}
    for code, names, _zones in REGIONS:
        index[_fold(code)] = code
        for name in names:
            index[_fold(name)] = code
            index[_fold(name).replace(" ", "")] = code
    return index


@lru_cache(maxsize=4096)
def state_of_region(value: str | None) -> str | None:
    """The 2-letter code of a state/province given by name or code, or None."""
    if not value or not value.strip():
        return None
    folded = _fold(value.replace(".", ""))
    index = _names()
    return index.get(folded) or index.get(folded.replace(" ", ""))


@lru_cache(maxsize=1)
def _zip3_table() -> dict[str, str]:
    table: dict[str, str] = {}
    with _ZIP3.open(encoding="utf-8") as fh:
        lines = (line for line in fh if not line.startswith("#"))
        for row in csv.DictReader(lines):
            for n in range(int(row["first"]), int(row["last"]) + 1):
                table[f"{n:03d}"] = row["state"]
    return table


@lru_cache(maxsize=4096)
def state_of_zip(value: str | None) -> str | None:
    """The state of a US ZIP code (5 or 9 digits, ZIP+4 with a dash), or None."""
    if not value:
        return None
    digits = value.strip().split("-")[0]
    if len(digits) == 4 and digits.isdigit():  # a spreadsheet dropped the leading zero
        digits = "0" + digits
    if len(digits) not in (5, 9) or not digits.isdigit():
        return None
    return _zip3_table().get(digits[:3])


def state_of_number(phone_e164: str) -> str | None:
    """The state or province of a +1 number's area code (phonenumbers' geocoder), or None.

    Every NANP area code lies in one state or province, so a state found for one number holds
    for its whole area code: looked up once per area code (the claim asks for every contact it
    decides; the geocoder takes ~100 us a number). A number the geocoder places nowhere (not
    valid, not geographic) is looked up on its own."""
    if not phone_e164.startswith("+1") or len(phone_e164) != 12:
        return None
    known = _STATE_OF_AREA_CODE.get(phone_e164[:5])
    if known is not None:
        return known
    state = _geocoded_state(phone_e164)
    if state is not None and len(_STATE_OF_AREA_CODE) < 4096:
        _STATE_OF_AREA_CODE[phone_e164[:5]] = state
    return state


_STATE_OF_AREA_CODE: dict[str, str] = {}


@lru_cache(maxsize=4096)
def _geocoded_state(phone_e164: str) -> str | None:
    import phonenumbers
    from phonenumbers import geocoder

    try:
        number = phonenumbers.parse(phone_e164)
    except phonenumbers.NumberParseException:
        return None
    text = geocoder.description_for_number(number, "en")
    if not text:
        return None
    tail = text.rsplit(",", 1)[-1].strip()
    return state_of_region(tail)


def candidate_states(region: str | None, postal_code: str | None,
                     phone_e164: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """(sorted candidate states, {source: state}) of a contact."""
    found: dict[str, str] = {}
    for source, state in ((STATE_COLUMN, state_of_region(region)),
                          (ZIP, state_of_zip(postal_code)),
                          (AREA_CODE, state_of_number(phone_e164))):
        if state:
            found[source] = state
    return tuple(sorted(set(found.values()))), found

"""Column mapping: the phone column and the other known fields, found from common headers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from campaigns.errors import ImportFailed
from campaigns.importing.columns import clean_header, map_columns, original_row


@pytest.mark.parametrize("header, phone", [
    (["name", "Phone"], "Phone"),
    (["name", "PHONE NUMBER"], "PHONE NUMBER"),
    (["name", "phone_number"], "phone_number"),
    (["name", " Mobile Phone "], " Mobile Phone "),
    (["Cell #", "name"], "Cell #"),
    (["Telephone", "x"], "Telephone"),
    (["MSISDN"], "MSISDN"),
    (["number", "email"], "number"),
    (["customer_phone_primary", "email"], "customer_phone_primary"),
    (["Mobile", "Phone"], "Phone"),  # a better-ranked header wins
])
def test_phone_column_detected(header: list[str], phone: str) -> None:
    assert map_columns(header).phone_column == phone


def test_missing_phone_column_lists_the_columns() -> None:
    with pytest.raises(ImportFailed) as exc:
        map_columns(["account", "name", "email"])
    assert "no phone column" in str(exc.value)
    assert "'account', 'name', 'email'" in str(exc.value)
    assert "--phone-column" in str(exc.value)


def test_ambiguous_phone_columns_need_the_option() -> None:
    with pytest.raises(ImportFailed, match="--phone-column"):
        map_columns(["Phone", "phone number"])
    assert map_columns(["Phone", "phone number"], "phone number").phone_column == "phone number"


def test_phone_column_option() -> None:
    assert map_columns(["a", "Contact Tel"], "contact tel").phone_column == "Contact Tel"
    with pytest.raises(ImportFailed) as exc:
        map_columns(["a", "b"], "c")
    assert "'a', 'b'" in str(exc.value)


def test_other_fields_and_custom_columns() -> None:
    m = map_columns(["Account ID", "First Name", "last_name", "E-mail", "Phone", "Time Zone",
                     "State", "ZIP Code", "notes"])
    assert m.describe() == {"phone": "Phone", "first_name": "First Name",
                            "last_name": "last_name", "email": "E-mail",
                            "timezone": "Time Zone", "region": "State", "postal_code": "ZIP Code"}
    # The time zone cell is kept verbatim among the custom fields.
    assert [m.columns[i] for i in m.custom] == ["Account ID", "Time Zone", "notes"]


def test_header_cleaning() -> None:
    assert clean_header(["\ufeffphone", "", "x"]) == ("phone", "column_2", "x")
    with pytest.raises(ImportFailed, match="'x' \\(columns 2 and 3\\)"):
        clean_header(["phone", "x", "x"])


def test_original_row_round_trip() -> None:
    columns = ["id", "First", "Phone", "State", "notes"]
    contact = SimpleNamespace(phone_raw="(415) 555-2671", first_name="Ann", last_name=None,
                              email=None, region=None, postal_code=None,
                              custom_fields={"id": "7", "notes": "=HYPERLINK(\"x\",\"y\")"})
    assert original_row(columns, "Phone", contact) == [
        "7", "Ann", "(415) 555-2671", "", '=HYPERLINK("x","y")']


#: The fast tier (pytest -m fast): no database, no processes.
pytestmark = pytest.mark.fast

"""Candidate time zones: explicit column, state/province, number, fallback."""

from __future__ import annotations

import zoneinfo

import pytest

from campaigns import timezones as tz
from campaigns.importing.phones import PhoneNormalizer, country_zones


def test_every_shipped_zone_exists() -> None:
    known = zoneinfo.available_timezones()
    for code, names, zones in tz.REGIONS:
        assert len(code) == 2 and names
        assert set(zones) <= known, code
    for alias, zones in tz.ALIASES.items():
        assert set(zones) <= known, alias


@pytest.mark.parametrize("value, zones", [
    ("America/New_York", ("America/New_York",)),
    ("  america/los_angeles ", ("America/Los_Angeles",)),
    ("Europe/Paris", ("Europe/Paris",)),
    ("EST", ("America/New_York",)),
    ("Pacific", ("America/Los_Angeles",)),
    ("MST", ("America/Denver", "America/Phoenix")),
    ("Mars/Olympus", ()),
    ("Etc/Unknown", ()),
    ("../etc/passwd", ()),
    ("", ()),
    (None, ()),
])
def test_explicit(value: str | None, zones: tuple[str, ...]) -> None:
    assert tz.zones_for_explicit(value) == zones


@pytest.mark.parametrize("value, zones", [
    ("CA", ("America/Los_Angeles",)),
    ("california", ("America/Los_Angeles",)),
    ("N.Y.", ("America/New_York",)),
    ("New York", ("America/New_York",)),
    ("tx", ("America/Chicago", "America/Denver")),
    ("Florida", ("America/New_York", "America/Chicago")),
    ("Québec", ("America/Toronto", "America/Halifax")),
    ("ON", ("America/Toronto", "America/Winnipeg")),
    ("Newfoundland and Labrador", ("America/St_Johns", "America/Goose_Bay")),
    ("District of Columbia", ("America/New_York",)),
    ("Narnia", ()),
    ("", ()),
])
def test_region(value: str, zones: tuple[str, ...]) -> None:
    assert tz.zones_for_region(value) == zones


def test_number_zones_drop_unknown_and_country_wide_lists() -> None:
    norm = PhoneNormalizer("US")
    boise = norm.normalize("+1 208 201 2345")
    assert tz.zones_for_number(boise.zones, country_zones(1)) == ("America/Denver",)
    idaho = norm.normalize("+1 208 301 2345")
    assert idaho.zones == ("America/Boise", "America/Los_Angeles")
    assert tz.zones_for_number(idaho.zones, country_zones(1)) == idaho.zones
    toll_free = norm.normalize("+1 800 234 5678")
    assert toll_free.zones == country_zones(1)
    assert tz.zones_for_number(toll_free.zones, country_zones(1)) == ()
    assert tz.zones_for_number(("Etc/Unknown",), country_zones(1)) == ()
    paris = norm.normalize("+33 1 42 68 53 00")
    assert tz.zones_for_number(paris.zones, country_zones(33)) == ("Europe/Paris",)


def test_precedence() -> None:
    ny, chi, fb = ("America/New_York",), ("America/Chicago",), "America/Denver"
    assert tz.resolve(ny, chi, chi, fb) == (ny, tz.EXPLICIT)
    assert tz.resolve((), chi, ny, fb) == (chi, tz.REGION)
    assert tz.resolve((), (), ny, fb) == (ny, tz.NUMBER)
    assert tz.resolve((), (), (), fb) == ((fb,), tz.FALLBACK)


#: The fast tier (pytest -m fast): no database, no processes.
pytestmark = pytest.mark.fast

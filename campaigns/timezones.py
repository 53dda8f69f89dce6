"""Candidate time zones of a contact: from an explicit column, a US state / Canadian province, or
the phone number; the campaign's fallback zone when none is known.

Pure functions over plain data. The calling window must hold in *every* candidate zone, so a
region that spans zones maps to all of them.
"""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from collections.abc import Iterable
from functools import lru_cache

EXPLICIT = "explicit"
REGION = "region"
NUMBER = "number"
FALLBACK = "fallback"

#: phonenumbers' answer when it knows nothing.
UNKNOWN_ZONE = "Etc/Unknown"

_NY, _CHI, _DEN, _LA = (
    "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")
_PHX, _ANC, _ADAK, _HNL = "America/Phoenix", "America/Anchorage", "America/Adak", "Pacific/Honolulu"
_BOISE, _DET, _MENOM = "America/Boise", "America/Detroit", "America/Menominee"
_INDY = "America/Indiana/Indianapolis"
_HAL, _TOR, _WPG, _EDM, _VAN = ("America/Halifax", "America/Toronto", "America/Winnipeg",
                                "America/Edmonton", "America/Vancouver")

#: (2-letter code, full names, zones). States that span zones list all of them.
REGIONS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("AL", ("Alabama",), (_CHI,)),
    ("AK", ("Alaska",), (_ANC, _ADAK)),
    ("AZ", ("Arizona",), (_PHX, _DEN)),  # the Navajo Nation keeps daylight saving time
    ("AR", ("Arkansas",), (_CHI,)),
    ("CA", ("California",), (_LA,)),
    ("CO", ("Colorado",), (_DEN,)),
    ("CT", ("Connecticut",), (_NY,)),
    ("DE", ("Delaware",), (_NY,)),
    ("DC", ("District of Columbia", "Washington DC", "Washington D.C."), (_NY,)),
    ("FL", ("Florida",), (_NY, _CHI)),
    ("GA", ("Georgia",), (_NY,)),
    ("HI", ("Hawaii",), (_HNL,)),
    ("ID", ("Idaho",), (_BOISE, _LA)),
    ("IL", ("Illinois",), (_CHI,)),
    ("IN", ("Indiana",), (_INDY, _CHI)),
    ("IA", ("Iowa",), (_CHI,)),
    ("KS", ("Kansas",), (_CHI, _DEN)),
    ("KY", ("Kentucky",), (_NY, _CHI)),
    ("LA", ("Louisiana",), (_CHI,)),
    ("ME", ("Maine",), (_NY,)),
    ("MD", ("Maryland",), (_NY,)),
    ("MA", ("Massachusetts",), (_NY,)),
    ("MI", ("Michigan",), (_DET, _MENOM)),
    ("MN", ("Minnesota",), (_CHI,)),
    ("MS", ("Mississippi",), (_CHI,)),
    ("MO", ("Missouri",), (_CHI,)),
    ("MT", ("Montana",), (_DEN,)),
    ("NE", ("Nebraska",), (_CHI, _DEN)),
    ("NV", ("Nevada",), (_LA, _DEN)),  # West Wendover keeps Mountain time
    ("NH", ("New Hampshire",), (_NY,)),
    ("NJ", ("New Jersey",), (_NY,)),
    ("NM", ("New Mexico",), (_DEN,)),
    ("NY", ("New York",), (_NY,)),
    ("NC", ("North Carolina",), (_NY,)),
    ("ND", ("North Dakota",), (_CHI, _DEN)),
    ("OH", ("Ohio",), (_NY,)),
    ("OK", ("Oklahoma",), (_CHI,)),
    ("OR", ("Oregon",), (_LA, _BOISE)),
    ("PA", ("Pennsylvania",), (_NY,)),
    ("RI", ("Rhode Island",), (_NY,)),
    ("SC", ("South Carolina",), (_NY,)),
    ("SD", ("South Dakota",), (_CHI, _DEN)),
    ("TN", ("Tennessee",), (_NY, _CHI)),
    ("TX", ("Texas",), (_CHI, _DEN)),
    ("UT", ("Utah",), (_DEN,)),
    ("VT", ("Vermont",), (_NY,)),
    ("VA", ("Virginia",), (_NY,)),
    ("WA", ("Washington",), (_LA,)),
    ("WV", ("West Virginia",), (_NY,)),
    ("WI", ("Wisconsin",), (_CHI,)),
    ("WY", ("Wyoming",), (_DEN,)),
    ("PR", ("Puerto Rico",), ("America/Puerto_Rico",)),
    ("VI", ("US Virgin Islands", "U.S. Virgin Islands", "Virgin Islands"), ("America/St_Thomas",)),
    ("GU", ("Guam",), ("Pacific/Guam",)),
    ("AS", ("American Samoa",), ("Pacific/Pago_Pago",)),
    ("MP", ("Northern Mariana Islands",), ("Pacific/Saipan",)),
    # Canada
    ("AB", ("Alberta",), (_EDM,)),
    ("BC", ("British Columbia",), (_VAN, _EDM, "America/Dawson_Creek")),
    ("MB", ("Manitoba",), (_WPG,)),
    ("NB", ("New Brunswick",), ("America/Moncton",)),
    ("NL", ("Newfoundland and Labrador", "Newfoundland", "Newfoundland & Labrador"),
     ("America/St_Johns", "America/Goose_Bay")),
    ("NS", ("Nova Scotia",), (_HAL,)),
    ("NT", ("Northwest Territories",), (_EDM,)),
    ("NU", ("Nunavut",), ("America/Iqaluit", "America/Rankin_Inlet", "America/Cambridge_Bay")),
    ("ON", ("Ontario",), (_TOR, _WPG)),
    ("PE", ("Prince Edward Island", "PEI"), (_HAL,)),
    ("QC", ("Quebec", "Québec", "PQ"), (_TOR, _HAL)),
    ("SK", ("Saskatchewan",), ("America/Regina", _EDM)),
    ("YT", ("Yukon", "Yukon Territory"), ("America/Whitehorse",)),
]

#: Names people write in a time zone column that are not IANA keys (or mean something else).
ALIASES: dict[str, tuple[str, ...]] = {
    "eastern": (_NY,), "et": (_NY,), "est": (_NY,), "edt": (_NY,), "est5edt": (_NY,),
    "us/eastern": (_NY,),
    "central": (_CHI,), "ct": (_CHI,), "cst": (_CHI,), "cdt": (_CHI,), "cst6cdt": (_CHI,),
    "us/central": (_CHI,),
    # Arizona writes MST and means no daylight saving time: keep both readings.
    "mountain": (_DEN,), "mt": (_DEN, _PHX), "mst": (_DEN, _PHX), "mdt": (_DEN,),
    "mst7mdt": (_DEN,), "us/mountain": (_DEN,), "us/arizona": (_PHX,),
    "pacific": (_LA,), "pt": (_LA,), "pst": (_LA,), "pdt": (_LA,), "pst8pdt": (_LA,),
    "us/pacific": (_LA,),
    "alaska": (_ANC,), "akst": (_ANC,), "akdt": (_ANC,), "us/alaska": (_ANC,),
    "hawaii": (_HNL,), "hst": (_HNL,), "us/hawaii": (_HNL,),
    "atlantic": (_HAL,), "ast": (_HAL,), "adt": (_HAL,),
    "newfoundland": ("America/St_Johns",), "nst": ("America/St_Johns",),
}


def _fold(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form of a name."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = text.replace("&", " and ")
    return " ".join(re.sub(r"[^a-z0-9/_+\-]+", " ", text).split())


@lru_cache(maxsize=1)
def _region_index() -> dict[str, tuple[str, ...]]:
    index: dict[str, tuple[str, ...]] = {}
    for code, names, zones in REGIONS:
        index[_fold(code)] = zones
        for name in names:
            index[_fold(name)] = zones
            index[_fold(name).replace(" ", "")] = zones
    return index


@lru_cache(maxsize=1)
def _iana_index() -> dict[str, str]:
    return {key.casefold(): key for key in zoneinfo.available_timezones()}


@lru_cache(maxsize=4096)
def zones_for_explicit(value: str | None) -> tuple[str, ...]:
    """Zones named by a time zone cell: an IANA key (any case) or a common US/Canadian name or
    abbreviation. () when it names none (the next source is tried)."""
    if value is None:
        return ()
    text = value.strip()
    if not text:
        return ()
    # Aliases first: "EST" is also an IANA key, but a fixed offset nobody in New York lives by.
    alias = ALIASES.get(_fold(text))
    if alias:
        return alias
    key = _iana_index().get(text.casefold())
    if key is not None and key != UNKNOWN_ZONE:
        try:
            zoneinfo.ZoneInfo(key)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):  # pragma: no cover
            return ()
        return (key,)
    return ()


@lru_cache(maxsize=4096)
def zones_for_region(value: str | None) -> tuple[str, ...]:
    """Zones of a US state / Canadian province given by its name or 2-letter code; ()."""
    if value is None or not value.strip():
        return ()
    folded = _fold(value.replace(".", ""))
    index = _region_index()
    return index.get(folded) or index.get(folded.replace(" ", ""), ())


def zones_for_number(zones: Iterable[str], country_zones: Iterable[str] = ()) -> tuple[str, ...]:
    """Candidate zones from phonenumbers' answer for a number.

    "Etc/Unknown" is dropped. When the answer is the whole country's list (phonenumbers gives it
    for numbers that are not geographical, or whose area it does not know) and that country spans
    several zones, it says nothing about where the person is: () so that the fallback applies.
    """
    found = tuple(z for z in zones if z != UNKNOWN_ZONE)
    country = tuple(country_zones)
    if len(found) > 1 and found == country:
        return ()
    return found


def resolve(explicit: tuple[str, ...], region: tuple[str, ...], number: tuple[str, ...],
            fallback: str) -> tuple[tuple[str, ...], str]:
    """(zones, source) by precedence: explicit, region, number, then the fallback zone."""
    if explicit:
        return explicit, EXPLICIT
    if region:
        return region, REGION
    if number:
        return number, NUMBER
    return (fallback,), FALLBACK

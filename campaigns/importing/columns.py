"""Which column of an uploaded file is what: the phone, names, email, time zone, region, postal
code.

Pure. Headers are compared case-, space- and punctuation-insensitively ("Phone Number",
"phone_number", "PHONE-NUMBER" are the same). Every column that is not stored in a contact field of
its own is kept in `custom_fields` under its original header; `ContactImport.columns` keeps the
header order, so that `original_row` can give a report every column back as it came in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from campaigns.errors import ImportFailed

#: Phone headers, best first. A file with several candidates uses the best; two equally good ones
#: (say "Phone" and "phone") are ambiguous and need --phone-column.
PHONE_KEYS: tuple[tuple[str, ...], ...] = (
    ("phone", "phonenumber", "phoneno", "phonenum", "phone1", "primaryphone", "contactphone",
     "contactnumber"),
    ("mobile", "mobilephone", "mobilenumber", "mobileno", "cell", "cellphone", "cellnumber",
     "cellular"),
    ("telephone", "telephonenumber", "tel", "telno", "msisdn", "number", "dialnumber",
     "phone2", "homephone", "workphone", "businessphone", "officephone"),
)

#: Other recognised fields: contact attribute -> header keys.
FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "first_name": ("firstname", "first", "fname", "givenname", "forename"),
    "last_name": ("lastname", "last", "lname", "surname", "familyname"),
    "email": ("email", "emailaddress", "mail", "email1", "primaryemail"),
    "timezone": ("timezone", "tz", "tzname", "timezoneid", "ianatimezone", "olsontimezone",
                 "zone"),
    "region": ("state", "region", "province", "stateprovince", "stateorprovince", "statecode",
               "st", "provincecode", "stateregion"),
    "postal_code": ("zip", "zipcode", "postalcode", "postcode", "postal", "zip5", "zippostal",
                    "zippostalcode"),
}

#: Contact attributes stored in their own column, verbatim (the others stay in custom_fields).
STORED_FIELDS = ("first_name", "last_name", "email", "region", "postal_code")


def header_key(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", name.casefold())


@dataclass(frozen=True)
class ColumnMapping:
    """Positions of the recognised columns in the header, and the rest."""

    columns: tuple[str, ...]
    phone: int
    fields: Mapping[str, int] = field(default_factory=dict)

    @property
    def phone_column(self) -> str:
        return self.columns[self.phone]

    @property
    def custom(self) -> tuple[int, ...]:
        """Positions of the columns kept in custom_fields (everything not stored elsewhere)."""
        stored = {self.phone} | {self.fields[f] for f in STORED_FIELDS if f in self.fields}
        return tuple(i for i in range(len(self.columns)) if i not in stored)

    def describe(self) -> dict[str, str]:
        out = {"phone": self.phone_column}
        out.update({k: self.columns[v] for k, v in self.fields.items()})
        return out


def clean_header(cells: Sequence[str]) -> tuple[str, ...]:
    """Header names as stored: blank ones become column_N (1-based); duplicates are an error."""
    names = []
    for i, cell in enumerate(cells):
        name = (cell or "").replace("\ufeff", "")
        if "\x00" in name:
            raise ImportFailed(f"the header row has a NUL character in column {i + 1} "
                               f"({name.replace(chr(0), '')!r}): is the file binary, or in "
                               "another encoding (pass --encoding)?")
        names.append(name if name.strip() else f"column_{i + 1}")
    seen: dict[str, int] = {}
    dups = []
    for i, name in enumerate(names):
        if name in seen:
            dups.append(f"{name!r} (columns {seen[name] + 1} and {i + 1})")
        else:
            seen[name] = i
    if dups:
        raise ImportFailed("the header names a column twice: " + ", ".join(dups)
                           + "; rename one of them and import again")
    return tuple(names)


def _listing(columns: Sequence[str]) -> str:
    shown = ", ".join(repr(c) for c in columns[:30])
    return shown + (f", ... ({len(columns)} columns)" if len(columns) > 30 else "")


def map_columns(columns: Sequence[str], phone_column: str | None = None) -> ColumnMapping:
    """Find the phone column (or use `phone_column`) and the other known fields."""
    columns = tuple(columns)
    keys = [header_key(c) for c in columns]
    if phone_column is not None:
        phone = _find_named(columns, keys, phone_column)
    else:
        phone = _detect_phone(columns, keys)
    fields: dict[str, int] = {}
    for attr, wanted in FIELD_KEYS.items():
        for rank_key in wanted:
            hits = [i for i, k in enumerate(keys) if k == rank_key and i != phone
                    and i not in fields.values()]
            if hits:
                fields[attr] = hits[0]
                break
    return ColumnMapping(columns, phone, fields)


def _find_named(columns: tuple[str, ...], keys: list[str], wanted: str) -> int:
    if wanted in columns:
        return columns.index(wanted)
    folded = [i for i, c in enumerate(columns) if c.strip().casefold() == wanted.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    loose = [i for i, k in enumerate(keys) if k and k == header_key(wanted)]
    if len(loose) == 1:
        return loose[0]
    raise ImportFailed(f"--phone-column {wanted!r} is not a column of the file; columns found: "
                       f"{_listing(columns)}")


def _detect_phone(columns: tuple[str, ...], keys: list[str]) -> int:
    for tier in PHONE_KEYS:
        for key in tier:
            hits = [i for i, k in enumerate(keys) if k == key]
            if len(hits) > 1:
                raise ImportFailed(
                    "several columns look like the phone number: "
                    + ", ".join(repr(columns[i]) for i in hits)
                    + ": choose one with --phone-column")
            if hits:
                # Another column of the same tier is a second candidate: ambiguous.
                others = [i for i, k in enumerate(keys) if k in tier and i != hits[0]]
                if others:
                    names = ", ".join(repr(columns[i]) for i in [hits[0], *others])
                    raise ImportFailed(f"several columns look like the phone number: {names}: "
                                       "choose one with --phone-column")
                return hits[0]
    # Last resort: one header mentioning phone/mobile/cell.
    loose = [i for i, k in enumerate(keys)
             if any(w in k for w in ("phone", "mobile", "cell", "msisdn"))]
    if len(loose) == 1:
        return loose[0]
    if len(loose) > 1:
        raise ImportFailed("several columns look like the phone number: "
                           + ", ".join(repr(columns[i]) for i in loose)
                           + ": choose one with --phone-column")
    raise ImportFailed("no phone column found (looked for headers like phone, phone number, "
                       f"mobile, cell, telephone, msisdn); columns found: {_listing(columns)}; "
                       "name it with --phone-column")


def original_row(columns: Sequence[str], phone_column: str | None, contact: Any) -> list[str]:
    """Every column of the uploaded row, in the file's order, as it came in.

    `columns` and `phone_column` are the ContactImport's; `contact` a Contact (anything with its
    attributes). Mapped columns come from their contact fields (stored verbatim), the others from
    custom_fields.
    """
    mapping = map_columns(columns, phone_column)
    by_pos: dict[int, Any] = {mapping.phone: contact.phone_raw}
    for attr in STORED_FIELDS:
        if attr in mapping.fields:
            by_pos[mapping.fields[attr]] = getattr(contact, attr)
    custom = contact.custom_fields or {}
    out = []
    for i, name in enumerate(mapping.columns):
        value = by_pos[i] if i in by_pos else custom.get(name)
        out.append("" if value is None else str(value))
    return out

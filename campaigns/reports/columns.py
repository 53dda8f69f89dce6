"""Report columns: their names and kinds, and how each uploaded column is given back.

The uploaded row comes back column by column, in the order of the uploaded header
(`ContactImport.columns`, the union over a campaign's imports in import order). Which header fed
which contact field is decided again by the importer's own rule (`campaigns.importing.columns.
map_columns` on the import's header and phone column: deterministic), so:

* the import's phone column -> `phone_raw`, the phone text as it came in;
* a column the importer stores in a contact field (first/last name, email, region, postal code;
  stored verbatim) -> that field;
* every other column -> `custom_fields[header]` (the importer keeps all of them there).

`custom_fields` is consulted first whatever the plan says. If the importer's rule cannot be
replayed on an import (its mapping raises), a header missing from `custom_fields` cannot be given
back: its cells stay empty and the report names it in `ReportResult.unmapped_columns`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum


class Kind(str, Enum):
    """How a writer renders a column (see `writers`)."""

    TEXT = "text"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    #: An aware UTC datetime.
    UTC = "utc"
    #: An aware datetime in the contact's own zone (ISO 8601 with offset in text formats).
    LOCAL = "local"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind


#: Contact fields the importer stores verbatim in their own column (the rest stays in
#: custom_fields); mirrors `campaigns.importing.columns.STORED_FIELDS`.
STORED_FIELDS = ("first_name", "last_name", "email", "region", "postal_code")


def union_headers(imports: Sequence[Sequence[str]]) -> list[str]:
    """Every uploaded header, first import's order first, later imports' new headers after."""
    seen: dict[str, None] = {}
    for columns in imports:
        for header in columns:
            seen.setdefault(str(header), None)
    return list(seen)


# The report's own columns, after the uploaded ones (docs/reports.md describes each).
CONTACT_COLUMNS: tuple[Column, ...] = (
    Column("phone_e164", Kind.TEXT),
    Column("status", Kind.TEXT),
    Column("outcome", Kind.TEXT),
    Column("attempts", Kind.INT),
    Column("first_attempt_at_utc", Kind.UTC),
    Column("first_attempt_at_local", Kind.LOCAL),
    Column("last_attempt_at_utc", Kind.UTC),
    Column("last_attempt_at_local", Kind.LOCAL),
    Column("timezone", Kind.TEXT),
    Column("amd_result", Kind.TEXT),
    Column("greeting_result", Kind.TEXT),
    Column("voicemail_left", Kind.BOOL),
    Column("talk_seconds", Kind.FLOAT),
    Column("hangup_cause", Kind.TEXT),
    Column("hangup_source", Kind.TEXT),
    Column("sip_hangup_cause", Kind.TEXT),
    Column("error_code", Kind.TEXT),
    Column("error_detail", Kind.TEXT),
    Column("next_attempt_at_utc", Kind.UTC),
    Column("next_attempt_at_local", Kind.LOCAL),
    Column("source_row", Kind.INT),
)

ATTEMPT_COLUMNS: tuple[Column, ...] = (
    Column("phone_e164", Kind.TEXT),
    Column("source_row", Kind.INT),
    Column("attempt_no", Kind.INT),
    Column("state", Kind.TEXT),
    Column("command_id", Kind.TEXT),
    Column("call_control_id", Kind.TEXT),
    Column("created_at_utc", Kind.UTC),
    Column("dialed_at_utc", Kind.UTC),
    Column("dialed_at_local", Kind.LOCAL),
    Column("answered_at_utc", Kind.UTC),
    Column("ended_at_utc", Kind.UTC),
    Column("timezone", Kind.TEXT),
    Column("talk_seconds", Kind.FLOAT),
    Column("amd_result", Kind.TEXT),
    Column("greeting_result", Kind.TEXT),
    Column("voicemail_left", Kind.BOOL),
    Column("message_played", Kind.BOOL),
    Column("outcome", Kind.TEXT),
    Column("hangup_cause", Kind.TEXT),
    Column("hangup_source", Kind.TEXT),
    Column("sip_hangup_cause", Kind.TEXT),
    Column("error_code", Kind.TEXT),
    Column("error_detail", Kind.TEXT),
    #: The compliance decision that allowed the call, as JSON (docs/compliance.md).
    Column("decision", Kind.TEXT),
)


#: `report --responses`: one row per prompt's end (and labelled step reached) of a script or a
#: message listening for its opt-out key (`attempt_responses`).
RESPONSE_COLUMNS: tuple[Column, ...] = (
    Column("phone_e164", Kind.TEXT),
    Column("source_row", Kind.INT),
    Column("attempt_no", Kind.INT),
    Column("step", Kind.TEXT),
    Column("try", Kind.INT),
    Column("digits", Kind.TEXT),
    Column("status", Kind.TEXT),
    Column("label", Kind.TEXT),
    Column("answer", Kind.TEXT),
    Column("at_utc", Kind.UTC),
    Column("at_local", Kind.LOCAL),
    Column("timezone", Kind.TEXT),
)


def report_columns(uploaded: Sequence[str], own: Sequence[Column]) -> list[Column]:
    """Uploaded headers (text) then the report's own columns; an own column whose name an uploaded
    header already uses is renamed `dialer_<name>` so that no two columns share a name."""
    taken = set(uploaded)
    out = [Column(h, Kind.TEXT) for h in uploaded]
    for col in own:
        name = col.name
        while name in taken:
            name = f"dialer_{name}"
        taken.add(name)
        out.append(Column(name, col.kind))
    return out

"""Message templates: contact fields in prompts, texts, audio URLs and the transfer number.

Pure. A template names a field in braces, `{first_name}`, optionally with a default used when the
contact's value is empty, `{first_name|there}`; `{{` and `}}` are literal braces. Field names are
compared like import headers (case, spaces and punctuation ignored), so `{Appointment Date}`,
`{appointment_date}` and `{appointmentdate}` name the same uploaded column.

How a value is inserted depends on where it goes (`Target`):
- speech (`message_text`, `voicemail_text`, prompts): the result is SSML. Values are XML-escaped
  (a `<` or `&` in a name cannot break the document or inject markup) and a phone-number-like
  value is read digit by digit (its digits separated by spaces: every engine reads them one by
  one, "4 1 5 5 5 5" rather than "four hundred fifteen thousand..."). A plain-text template is
  escaped as a whole and wrapped in `<speak>`; a template that is already SSML (`<speak>...`)
  keeps its markup and only the values are escaped.
- url (`message_audio_url`, `voicemail_audio_url`, audio prompts): values are percent-encoded.
- number (`transfer_to`): the value as it is, stripped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote
from xml.sax.saxutils import escape

from campaigns.errors import InvalidSettings

Target = Literal["speech", "url", "number"]

#: `{name}` or `{name|default}`; `{{`/`}}` are literal braces.
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}|]*)(?:\|([^{}]*))?\}")
_PHONE_LIKE = re.compile(r"\+?[\d\s().-]{7,24}")
#: Settings that may hold templates, and how their values are inserted.
TEMPLATE_SETTINGS: dict[str, Target] = {
    "message_text": "speech",
    "voicemail_text": "speech",
    "message_audio_url": "url",
    "voicemail_audio_url": "url",
    "transfer_to": "number",
}
#: Fields every contact has whatever the uploaded file held (`phone` is the dialed number).
BUILTIN_FIELDS = ("phone",)
STORED = ("first_name", "last_name", "email", "region", "postal_code")


def field_key(name: str) -> str:
    """How field names compare: like import headers (see campaigns.importing.columns)."""
    return re.sub(r"[^0-9a-z]+", "", name.casefold())


@dataclass(frozen=True)
class FieldRef:
    name: str  # as written in the template
    default: str | None

    @property
    def key(self) -> str:
        return field_key(self.name)


def parse(template: str) -> list[FieldRef]:
    """The fields a template names, in order. Raises InvalidSettings on a stray brace or an
    empty field name."""
    refs: list[FieldRef] = []
    pos = 0
    for m in _TOKEN.finditer(template):
        _check_literal(template, template[pos:m.start()])
        pos = m.end()
        if m.group(0) in ("{{", "}}"):
            continue
        name = m.group(1).strip()
        if not field_key(name):
            raise InvalidSettings(f"template {template[:60]!r}: {m.group(0)!r} names no field")
        refs.append(FieldRef(name, m.group(2)))
    _check_literal(template, template[pos:])
    return refs


def _check_literal(template: str, text: str) -> None:
    if "{" in text or "}" in text:
        raise InvalidSettings(f"template {template[:60]!r}: unmatched brace (write {{{{ or }}}} "
                              "for a literal one)")


def is_template(text: str) -> bool:
    return bool(parse(text)) if text else False


def phone_like(value: str) -> bool:
    """A value that a voice would misread as a big number: 7+ digits in phone punctuation."""
    return bool(_PHONE_LIKE.fullmatch(value.strip())) and sum(c.isdigit() for c in value) >= 7


def _speech_value(value: str) -> str:
    value = value.strip()
    if phone_like(value):
        return " ".join(c for c in value if c.isdigit())
    return escape(value)


def is_ssml(text: str) -> bool:
    return text.lstrip().startswith("<speak")


def render(template: str, fields: Mapping[str, Any], target: Target = "speech") -> str:
    """The template with the contact's `fields` (keyed by `field_key`) in it.

    A field whose value is empty and has no default renders empty: `check_contacts` refuses such
    campaigns before anything is dialed, so this is only reached for lists changed since."""
    ssml = target == "speech" and is_ssml(template)
    out: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(template):
        out.append(_static(template[pos:m.start()], target, ssml))
        pos = m.end()
        tok = m.group(0)
        if tok in ("{{", "}}"):
            out.append(_static(tok[0], target, ssml))
            continue
        raw = fields.get(field_key(m.group(1)))
        value = "" if raw is None else str(raw)
        if not value.strip():
            value = m.group(2) or ""
            out.append(_static(value, target, ssml) if target == "speech"
                       else _value(value, target))
        else:
            out.append(_value(value, target))
    out.append(_static(template[pos:], target, ssml))
    text = "".join(out)
    if target == "speech" and not ssml:
        return f"<speak>{text}</speak>"
    return text.strip() if target == "number" else text


def _static(text: str, target: Target, ssml: bool) -> str:
    return escape(text) if target == "speech" and not ssml else text


def _value(value: str, target: Target) -> str:
    if target == "speech":
        return _speech_value(value)
    if target == "url":
        return quote(value.strip(), safe="")
    return value.strip()


def contact_fields(phone_e164: str | None, stored: Mapping[str, Any],
                   custom: Mapping[str, Any] | None) -> dict[str, str]:
    """A contact's fields keyed by `field_key`: uploaded columns, the stored ones, the phone."""
    out: dict[str, str] = {}
    for name, value in (custom or {}).items():
        if value is not None:
            out[field_key(str(name))] = str(value)
    for name in STORED:
        value = stored.get(name)
        if value is not None and str(value).strip():
            out[field_key(name)] = str(value)
    if phone_e164:
        out["phone"] = phone_e164
    return out


def templates_of(settings: Mapping[str, Any], prompts: Iterable[tuple[str, str, Target]] = ()
                 ) -> list[tuple[str, str, Target]]:
    """(where, template, target) for every templated value of a campaign: its settings and the
    prompts of its script (given by campaigns.scripts)."""
    out = [(k, str(settings[k]), t) for k, t in TEMPLATE_SETTINGS.items() if settings.get(k)]
    out.extend(prompts)
    return out


@dataclass(frozen=True)
class Requirement:
    """A field the templates need with no default, and where it is used first."""

    key: str
    name: str
    where: str


def requirements(templates: Iterable[tuple[str, str, Target]]) -> tuple[list[Requirement],
                                                                         list[Requirement]]:
    """(every field named, the fields named somewhere without a default), one entry per field."""
    named: dict[str, Requirement] = {}
    strict: dict[str, Requirement] = {}
    for where, template, _target in templates:
        for ref in parse(template):
            named.setdefault(ref.key, Requirement(ref.key, ref.name, where))
            if not ref.default:
                strict.setdefault(ref.key, Requirement(ref.key, ref.name, where))
    return list(named.values()), list(strict.values())


def check_columns(templates: Iterable[tuple[str, str, Target]], columns: Iterable[str]
                  ) -> list[str]:
    """Problems: fields the templates name that the list does not have (`columns`: the uploaded
    headers and the contact attributes they were mapped to)."""
    have = {field_key(c) for c in columns} | set(BUILTIN_FIELDS)
    named, _ = requirements(templates)
    return [f"{r.where} names {{{r.name}}} but the contact list has no column {r.name!r}"
            for r in named if r.key not in have]


def missing_counts(templates: Iterable[tuple[str, str, Target]],
                   contacts: Iterable[Mapping[str, str]]) -> dict[str, int]:
    """How many contacts (their `contact_fields`) lack each field used without a default."""
    _, strict = requirements(templates)
    counts = {r.key: 0 for r in strict}
    for fields in contacts:
        for key in counts:
            if not str(fields.get(key) or "").strip():
                counts[key] += 1
    return {k: n for k, n in counts.items() if n}


def describe_missing(templates: Iterable[tuple[str, str, Target]], counts: Mapping[str, int]
                     ) -> list[str]:
    _, strict = requirements(templates)
    names = {r.key: r for r in strict}
    return [f"{names[k].where} uses {{{names[k].name}}} without a default and {n} contact"
            f"{'s' if n != 1 else ''} {'have' if n != 1 else 'has'} no {names[k].name!r} "
            f"(add a default: {{{names[k].name}|...}})" for k, n in sorted(counts.items())]

"""Message templates: contact fields in prompts, texts, audio URLs and the transfer number.

Pure. A template names a field in braces, `{first_name}`, optionally with a default used when the
contact's value is empty, `{first_name|there}` (`{note|}`: blank when empty); `{{` and `}}` are
literal braces. Field names are compared like import headers (case, spaces and punctuation
ignored; letters and digits of any script kept), so `{Appointment Date}`, `{appointment_date}`
and `{appointmentdate}` name the same uploaded column, and `{Имя}` the column `Имя`. A header the
import mapped to a contact attribute (`State` -> region, `Zip` -> postal_code, `Phone Number` ->
the phone) can be named by that header too.

How a value is inserted depends on where it goes (`Target`):
- speech (`message_text`, `voicemail_text`, prompts): the result is SSML. Values are XML-escaped
  (a `<` or `&` in a name cannot break the document or inject markup) and a phone-number-like
  value is read digit by digit (its digits separated by spaces: every engine reads them one by
  one, "4 1 5 5 5 5" rather than "four hundred fifteen thousand..."); dates and decimal amounts
  are not phone numbers and stay as they are. A plain-text template is escaped as a whole and
  wrapped in `<speak>`; a template that is already SSML (`<speak>...`) keeps its markup and only
  the values are escaped.
- url (`message_audio_url`, `voicemail_audio_url`, audio prompts): a field that starts the
  template is the URL (or its beginning) and is inserted as a URL (only characters a URL cannot
  hold are encoded); the values of other fields are percent-encoded.
- number (`transfer_to`): the value as an E.164 number (`+1 (415) 555-0198` -> `+14155550198`,
  a national number read in the country of the number dialed), else as it is, stripped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape

import phonenumbers

from campaigns.errors import InvalidSettings
from campaigns.importing.columns import FIELD_KEYS, PHONE_KEYS

Target = Literal["speech", "url", "number"]

#: Telnyx's limit on a speak / gather_using_speak payload (REFERENCE.md, OpenAPI `payload`).
SPEAK_LIMIT = 3000
#: `{name}` or `{name|default}`; `{{`/`}}` are literal braces.
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}|]*)(?:\|([^{}]*))?\}")
_PHONE_LIKE = re.compile(r"\+?[\d\s().-]{7,24}")
#: Dates (ISO 2025-06-12, d/m/y or m/d/y with -, / or .) and decimal amounts (1234567.89):
#: digits in phone punctuation that are read as they are.
_DATE = re.compile(r"\d{4}([-/.])\d{1,2}\1\d{1,2}|\d{1,2}([-/.])\d{1,2}\2(?:\d{4}|\d{2})")
_AMOUNT = re.compile(r"-?\d+\.\d{1,3}")
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
    """How field names compare: casefolded, only letters and digits kept (any script; on ASCII
    the same as import headers, campaigns.importing.columns.header_key)."""
    return "".join(c for c in unicodedata.normalize("NFKC", name).casefold() if c.isalnum())


#: Header keys the import maps to a stored contact attribute or the phone (columns.FIELD_KEYS,
#: columns.PHONE_KEYS) -> the key of that attribute: such a header is usable under its name.
ALIASES: dict[str, str] = {
    **{k: "phone" for tier in PHONE_KEYS for k in tier},
    **{k: field_key(attr) for attr in STORED for k in FIELD_KEYS[attr]},
}


@dataclass(frozen=True)
class FieldRef:
    name: str  # as written in the template
    default: str | None  # None: no default; "": blank when empty

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
    """A value that a voice would misread as a big number: 7+ digits in phone punctuation, and
    not a date or a decimal amount."""
    value = value.strip()
    if not _PHONE_LIKE.fullmatch(value) or sum(c.isdigit() for c in value) < 7:
        return False
    return not (_DATE.fullmatch(value) or _AMOUNT.fullmatch(value))


def _speech_value(value: str) -> str:
    value = value.strip()
    if phone_like(value):
        return " ".join(c for c in value if c.isdigit())
    return escape(value)


def is_ssml(text: str) -> bool:
    return text.lstrip().startswith("<speak")


def _leading(template: str, start: int) -> bool:
    """A url template's token at `start` begins the URL: only blanks before it."""
    return not template[:start].strip()


def render(template: str, fields: Mapping[str, Any], target: Target = "speech") -> str:
    """The template with the contact's `fields` (keyed by `field_key`, see `contact_fields`).

    A field whose value is empty and has no default renders empty: `check_contacts` refuses such
    campaigns before anything is dialed, so this is only reached for lists changed since."""
    ssml = target == "speech" and is_ssml(template)
    out: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(template):
        out.append(_static(template[pos:m.start()], target, ssml))
        leading = target == "url" and _leading(template, m.start())
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
                       else _value(value, target, fields, leading))
        else:
            out.append(_value(value, target, fields, leading))
    out.append(_static(template[pos:], target, ssml))
    text = "".join(out)
    if target == "speech" and not ssml:
        return f"<speak>{text}</speak>"
    return text.strip() if target == "number" else text


def _static(text: str, target: Target, ssml: bool) -> str:
    return escape(text) if target == "speech" and not ssml else text


def _value(value: str, target: Target, fields: Mapping[str, Any], leading: bool) -> str:
    if target == "speech":
        return _speech_value(value)
    if target == "url":
        if leading and is_url(value):
            return url_value(value)
        return quote(value.strip(), safe="")
    return as_e164(value, _region_of(fields.get("phone"))) or value.strip()


#: Characters a URL may hold as they are (RFC 3986 reserved and unreserved, and `%`).
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"


def is_url(value: str) -> bool:
    """An absolute http(s) URL with a host."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def url_value(value: str) -> str:
    """A field value that is (the start of) a URL, as inserted: only characters a URL cannot
    hold (spaces, non-ASCII) are encoded."""
    return quote(value.strip(), safe=_URL_SAFE)


def _region_of(phone: Any) -> str:
    if phone:
        try:
            region = phonenumbers.region_code_for_number(phonenumbers.parse(str(phone), None))
        except phonenumbers.NumberParseException:
            region = None
        if region and region != "001":
            return str(region)
    return "US"


def as_e164(value: str, region: str = "US") -> str | None:
    """`value` as a valid E.164 number (national numbers read in `region`), or None."""
    value = value.strip()
    if not value or len(value) > 64:
        return None
    try:
        num = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if num.extension or not phonenumbers.is_valid_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def sent_length(text: str) -> int:
    """Characters sent to Telnyx for a spoken `text` (message, voicemail or prompt) whose fields
    are all empty (defaults used): a templated text is sent rendered, XML-escaped and wrapped in
    `<speak>`; a text without a field (no `{`) as it is. Compare with `SPEAK_LIMIT`."""
    if "{" not in text:
        return len(text)
    return len(render(text, {}, "speech"))


def length_problem(where: str, length: int, what: str = "as sent") -> str | None:
    """The problem of a spoken text of `length` characters, or None within Telnyx's limit."""
    if length <= SPEAK_LIMIT:
        return None
    return (f"{where} is {length:,} characters {what} ({length - SPEAK_LIMIT:,} over Telnyx's "
            f"limit of {SPEAK_LIMIT:,}; a templated text counts XML escaping and <speak>)")


def url_template_problem(template: str) -> str | None:
    """A URL template whose fixed part has blanks: refused (a URL holds no spaces)."""
    template = template.strip()
    pos = 0
    static: list[str] = []
    for m in _TOKEN.finditer(template):
        static.append(template[pos:m.start()])
        pos = m.end()
    static.append(template[pos:])
    if any(c.isspace() for part in static for c in part):
        return "a URL cannot hold spaces outside its fields (write them as %20)"
    return None


def contact_fields(phone_e164: str | None, stored: Mapping[str, Any],
                   custom: Mapping[str, Any] | None) -> dict[str, str]:
    """A contact's fields keyed by `field_key`: uploaded columns, the stored ones, the phone, and
    the stored ones and the phone under the headers the import maps to them (`ALIASES`) unless an
    uploaded column has that name."""
    out: dict[str, str] = {}
    for name, value in (custom or {}).items():
        out[field_key(str(name))] = "" if value is None else str(value)
    for name in STORED:
        value = stored.get(name)
        if value is not None and str(value).strip():
            out[field_key(name)] = str(value)
    if phone_e164:
        out["phone"] = phone_e164
    for alias, key in ALIASES.items():
        if alias not in out and key in out:
            out[alias] = out[key]
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
    """(every field named, the fields named somewhere without a default), one entry per field.
    `{x|}` has a default: blank."""
    named: dict[str, Requirement] = {}
    strict: dict[str, Requirement] = {}
    for where, template, _target in templates:
        for ref in parse(template):
            named.setdefault(ref.key, Requirement(ref.key, ref.name, where))
            if ref.default is None:
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
    scan = ContactScan(list(templates))
    for fields in contacts:
        scan.add(fields)
    return {k: n for k, n in scan.missing.items() if n}


def describe_missing(templates: Iterable[tuple[str, str, Target]], counts: Mapping[str, int]
                     ) -> list[str]:
    _, strict = requirements(templates)
    names = {r.key: r for r in strict}
    return [f"{names[k].where} uses {{{names[k].name}}} without a default and {n} contact"
            f"{'s' if n != 1 else ''} {'have' if n != 1 else 'has'} no {names[k].name!r} "
            f"(add a default: {{{names[k].name}|...}})" for k, n in sorted(counts.items())]


@dataclass
class ContactScan:
    """What the campaign check learns from the contacts, one at a time (`add`): missing values,
    values that are not phone numbers / URLs where one is needed, and the longest spoken value of
    each field."""

    templates: list[tuple[str, str, Target]]
    missing: dict[str, int] = field(default_factory=dict)
    #: (where, field name, what) -> contacts whose value is not a `what` ("phone number", "URL")
    bad: dict[tuple[str, str, str], int] = field(default_factory=dict)
    #: field key -> (longest rendered speech value, any contact empty)
    longest: dict[str, tuple[int, bool]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _, strict = requirements(self.templates)
        self._strict = [r.key for r in strict]
        self._speech = sorted({ref.key for _w, tpl, target in self.templates
                               if target == "speech" for ref in parse(tpl)})
        self._kinds: list[tuple[str, str, str, str]] = []  # (where, name, key, what)
        for where, tpl, target in self.templates:
            for m in _TOKEN.finditer(tpl):
                if m.group(0) in ("{{", "}}"):
                    continue
                name = m.group(1).strip()
                if target == "number":
                    self._kinds.append((where, name, field_key(name), "phone number"))
                elif target == "url" and _leading(tpl, m.start()):
                    self._kinds.append((where, name, field_key(name), "http(s) URL"))

    def add(self, fields: Mapping[str, str]) -> None:
        for key in self._strict:
            if not str(fields.get(key) or "").strip():
                self.missing[key] = self.missing.get(key, 0) + 1
        for key in self._speech:
            value = str(fields.get(key) or "")
            n, empty = self.longest.get(key, (0, False))
            if value.strip():
                self.longest[key] = (max(n, len(_speech_value(value))), empty)
            else:
                self.longest[key] = (n, True)
        for where, name, key, what in self._kinds:
            value = str(fields.get(key) or "")
            if not value.strip():
                continue
            ok = (as_e164(value, _region_of(fields.get("phone"))) is not None
                  if what == "phone number" else is_url(value))
            if not ok:
                k = (where, name, what)
                self.bad[k] = self.bad.get(k, 0) + 1

    def problems(self) -> list[str]:
        out = describe_missing(self.templates, {k: n for k, n in self.missing.items() if n})
        for (where, name, what), n in sorted(self.bad.items()):
            out.append(f"{where} uses {{{name}}} but it is not a {what} for {n} "
                       f"contact{'s' if n != 1 else ''}")
        for where, tpl, target in self.templates:
            if target == "speech" and "{" in tpl:
                problem = length_problem(where, longest_sent(tpl, self.longest),
                                         "with the longest values of the contacts")
                if problem:
                    out.append(problem)
        return out


def longest_sent(template: str, longest: Mapping[str, tuple[int, bool]]) -> int:
    """An upper bound of the characters sent for a spoken template, given the longest rendered
    value of each field and whether some contact has it empty (`ContactScan.longest`)."""
    ssml = is_ssml(template)
    total = 0 if ssml else len("<speak></speak>")
    pos = 0
    for m in _TOKEN.finditer(template):
        total += len(_static(template[pos:m.start()], "speech", ssml))
        pos = m.end()
        if m.group(0) in ("{{", "}}"):
            total += len(_static(m.group(0)[0], "speech", ssml))
            continue
        n, empty = longest.get(field_key(m.group(1)), (0, True))
        default = len(_static(m.group(2) or "", "speech", ssml))
        total += max(n, default if empty or not n else 0)
    total += len(_static(template[pos:], "speech", ssml))
    return total

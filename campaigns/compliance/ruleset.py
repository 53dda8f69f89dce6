"""The compliance rule set: a dated, versioned CSV file (one rule and one source per line) read
into an immutable `RuleSet`.

The file shipped with the package is `rules.csv` next to this module; an operator replaces it
as a whole with `--rules FILE` or a campaign's `rules_file` key. A malformed file raises
`RulesFileError` naming the line, and nothing uses a half-read file.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

from campaigns.errors import CampaignsError
from campaigns.windows import DAY_NAMES, WindowError, parse_days

DEFAULT_RULES = Path(__file__).with_name("rules.csv")
HEADER = ("kind", "state", "days", "hours", "value", "observed", "name", "source", "checked")
_HOURS_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_NTH_RE = re.compile(r"^(\d|last) (mon|tue|wed|thu|fri|sat|sun) (\d{2})$")
_EASTER_RE = re.compile(r"^easter([+-]\d{1,3})$")
_STATE_RE = re.compile(r"^[A-Z]{2}$")
_OBSERVED = {"sat-fri": (5, -1), "sun-mon": (6, 1)}

#: minutes after local midnight: [start, end)
Span = tuple[int, int]


class RulesFileError(CampaignsError):
    """A rules file that cannot be used (the message names the file and line)."""


@dataclass(frozen=True)
class Blackout:
    """An operator's no-call date, for every state (states empty) or the listed ones."""

    day: date
    states: frozenset[str] = frozenset()

    def applies(self, candidate_states: Iterable[str]) -> bool:
        return not self.states or bool(self.states & set(candidate_states))


@dataclass(frozen=True)
class RuleSet:
    version: str
    dated: date
    first_year: int
    last_year: int
    source: str  # the file it came from
    federal: dict[int, Span | None]  # weekday -> span (None: no calls)
    #: state -> weekday -> span or None (no calls); weekdays not listed: no state restriction.
    hours: Mapping[str, Mapping[int, Span | None]]
    caps: Mapping[str, int]
    #: state -> {date: holiday name}, for every covered year (the date and its observed date).
    holidays: Mapping[str, Mapping[date, str]]
    blackouts: tuple[Blackout, ...] = field(default=())

    def with_blackouts(self, blackouts: Iterable[Blackout]) -> RuleSet:
        return replace(self, blackouts=tuple(blackouts))

    def covers(self, day: date) -> bool:
        return self.first_year <= day.year <= self.last_year

    def label(self) -> str:
        return f"{self.version} ({self.dated.isoformat()})"


def _span(text: str, where: str) -> Span | None:
    if text == "none":
        return None
    m = _HOURS_RE.match(text)
    if not m:
        raise RulesFileError(f"{where}: hours {text!r} are not HH:MM-HH:MM or none")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 1440 or end <= start:
        raise RulesFileError(f"{where}: hours {text!r} are not a time range within one day")
    return (start, end)


def _days(text: str, where: str) -> frozenset[int]:
    try:
        return parse_days(text)
    except WindowError as exc:
        raise RulesFileError(f"{where}: {exc}") from None


def easter(year: int) -> date:
    """Western (Gregorian) Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month = (h + l_ - 7 * m + 114) // 31
    day = (h + l_ - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def holiday_date(rule: str, year: int) -> date:
    """The date of a holiday rule (MM-DD, 'N WEEKDAY MM', 'last WEEKDAY MM', easter+/-N)."""
    m = _EASTER_RE.match(rule)
    if m:
        return easter(year) + timedelta(days=int(m.group(1)))
    m = _NTH_RE.match(rule)
    if m:
        nth, weekday, month = m.group(1), DAY_NAMES.index(m.group(2)), int(m.group(3))
        if nth == "last":
            nxt = date(year + (month == 12), month % 12 + 1, 1)
            last = nxt - timedelta(days=1)
            return last - timedelta(days=(last.weekday() - weekday) % 7)
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (int(nth) - 1))
    month_s, _, day_s = rule.partition("-")
    return date(year, int(month_s), int(day_s))


def _observed(text: str, where: str) -> list[tuple[int, int]]:
    moves = []
    for part in text.split():
        if part == "none":
            continue
        if part not in _OBSERVED:
            raise RulesFileError(f"{where}: observed {part!r} is not sat-fri, sun-mon or none")
        moves.append(_OBSERVED[part])
    return moves


def _holiday_days(rule: str, observed: list[tuple[int, int]], years: range,
                  where: str) -> list[date]:
    out = []
    for year in years:
        try:
            day = holiday_date(rule, year)
        except (ValueError, IndexError):
            raise RulesFileError(f"{where}: holiday date {rule!r} is not MM-DD, "
                                 "'N WEEKDAY MM', 'last WEEKDAY MM' or easter+/-N") from None
        out.append(day)
        for weekday, shift in observed:
            if day.weekday() == weekday:
                out.append(day + timedelta(days=shift))
    return out


def parse_rules(text: str, source: str) -> RuleSet:
    """A RuleSet from the text of a rules file; RulesFileError names the first bad line."""
    meta: dict[str, str] = {}
    federal: dict[int, Span | None] | None = None
    hours: dict[str, dict[int, Span | None]] = {}
    caps: dict[str, int] = {}
    holiday_rows: list[tuple[str, str, list[tuple[int, int]], str, str]] = []
    header_seen = False
    for lineno, line in enumerate(text.splitlines(), start=1):
        where = f"{source}, line {lineno}"
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        row = [c.strip() for c in next(csv.reader([line]))]
        if not header_seen:
            if tuple(c.lower() for c in row) != HEADER:
                raise RulesFileError(f"{where}: the header must be {','.join(HEADER)}")
            header_seen = True
            continue
        if len(row) != len(HEADER):
            raise RulesFileError(f"{where}: {len(row)} fields, {len(HEADER)} expected")
        kind, state, days, hours_s, value, observed, name, src, _checked = row
        if kind != "meta" and not src:
            raise RulesFileError(f"{where}: every rule needs its source")
        if kind in ("hours", "cap", "holiday") and not _STATE_RE.match(state):
            raise RulesFileError(f"{where}: state {state!r} is not a 2-letter code like FL")
        if kind == "meta":
            if name not in ("version", "date", "years"):
                raise RulesFileError(f"{where}: meta name {name!r} is not version, date, years")
            meta[name] = value
        elif kind == "federal":
            span = _span(hours_s, where)
            federal = {d: span for d in _days(days, where)}
        elif kind == "hours":
            span = _span(hours_s, where)
            per_day = hours.setdefault(state, {})
            for d in _days(days, where):
                per_day[d] = _intersect(per_day[d], span) if d in per_day else span
        elif kind == "cap":
            if not value.isdigit() or int(value) < 1:
                raise RulesFileError(f"{where}: cap {value!r} is not a positive whole number")
            caps[state] = min(int(value), caps.get(state, int(value)))
        elif kind == "holiday":
            holiday_rows.append((state, value, _observed(observed, where), name, where))
        else:
            raise RulesFileError(f"{where}: kind {kind!r} is not meta, federal, hours, cap, "
                                 "holiday")
    if not header_seen:
        raise RulesFileError(f"{source}: no header line ({','.join(HEADER)})")
    missing = [k for k in ("version", "date", "years") if not meta.get(k)]
    if missing:
        raise RulesFileError(f"{source}: meta line(s) missing: {', '.join(missing)}")
    try:
        dated = date.fromisoformat(meta["date"])
        first_s, _, last_s = meta["years"].partition("-")
        first, last = int(first_s), int(last_s or first_s)
        if not 1900 < first <= last < 2200:
            raise ValueError
    except ValueError:
        raise RulesFileError(f"{source}: meta date must be YYYY-MM-DD and years FIRST-LAST "
                             f"(got {meta['date']!r}, {meta['years']!r})") from None
    if federal is None:
        raise RulesFileError(f"{source}: no federal line (the floor, e.g. all,08:00-21:00)")
    holidays: dict[str, dict[date, str]] = {}
    for state, rule, obs, name, where in holiday_rows:
        for day in _holiday_days(rule, obs, range(first, last + 1), where):
            holidays.setdefault(state, {})[day] = name
    return RuleSet(meta["version"], dated, first, last, source, federal, hours, caps, holidays)


def _intersect(a: Span | None, b: Span | None) -> Span | None:
    if a is None or b is None:
        return None
    start, end = max(a[0], b[0]), min(a[1], b[1])
    return (start, end) if start < end else None


def load_rules(path: str | Path | None = None) -> RuleSet:
    """The rule set of `path` (the shipped file when None); cached per file, modification time
    and size (a file edited while the engine runs is read again)."""
    p = Path(path) if path else DEFAULT_RULES
    try:
        st = p.stat()
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        reason = getattr(exc, "strerror", None) or str(exc)
        raise RulesFileError(f"cannot read rules file {str(p)!r}: {reason}") from None
    return _load_cached(str(p), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=16)
def _load_cached(path: str, mtime: int, size: int) -> RuleSet:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesFileError(f"cannot read rules file {path!r}: {exc}") from None
    return parse_rules(text, path)

"""Phone number normalisation: exactly phonenumbers' answer, at a fraction of its cost.

The reference is per number: `phonenumbers.parse(raw, region)`, then `is_valid_number`, E.164
formatting (the extension kept apart) and `timezone.time_zones_for_number`. It costs tens of
microseconds a number, too slow for millions of rows. `PhoneNormalizer` returns the same answer
through caches whose keys are *proven* to determine it (docs/import.md has the argument in full):

1. Text to digits. A cell that is only spaces, an optional leading `+`, ASCII digits and the
   separators ``( ) . -`` (at least 3 digits, at most 250 characters) parses exactly like the key
   ``"+"? + digits``: phonenumbers strips the leading non-number characters and trailing
   punctuation, the separators are punctuation it ignores, no extension or second-number pattern
   can match such text (checked at start-up on the compiled patterns with `regexdfa`), and after
   the `+` check only the digits are ever looked at.
2. Digits to answer. On a digit key, parse / is_valid_number / number_type observe the digits
   only through regular expressions of the metadata (full matches of number patterns, prefix
   matches of national prefixes, leading digits, the international prefix) applied to suffixes
   that start at a few offsets, through the country code digits, and through lengths. For a key
   class (plus sign, length, first 4 digits) `class_depth` computes, with automata built from the
   metadata patterns themselves, a depth k such that every one of those tests gives the same result
   for all keys that share their first k digits. Equal tests mean equal control flow, so the
   country code, the offset where the national number starts, the validity and the number type are
   equal too; the national number is the rest of the digits. One real phonenumbers call per
   (class, first k digits) serves them all.
3. Time zones. For a geographical number phonenumbers looks up the longest prefix of the E.164
   digits in its time zone table, so the answer is fixed by as many digits as the longest table key
   that extends the first digits; other numbers get the country's list.

Everything that does not fit (letters, extensions, unusual punctuation, national prefix transform
rules, international dialling prefixes, unknown country codes) goes to phonenumbers itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import PhoneMetadata, PhoneNumberFormat
from phonenumbers import phonenumberutil as pnu
from phonenumbers import timezone as pntz
from phonenumbers.tzdata import TIMEZONE_DATA

from campaigns.importing.regexdfa import DIGITS, MIXED, Dfa, Unsupported

MISSING_PHONE = "missing_phone"
UNPARSEABLE = "unparseable"
INVALID_NUMBER = "invalid_number"

#: Reason codes in arrays: 0 is accepted.
OK, R_MISSING, R_UNPARSEABLE, R_INVALID = 0, 1, 2, 3
REASONS = {R_MISSING: MISSING_PHONE, R_UNPARSEABLE: UNPARSEABLE, R_INVALID: INVALID_NUMBER}

#: Cells of this shape parse exactly like their digits (with the leading + kept): lemma 1.
SIMPLE_SHAPE = r"^ *\+?[0-9 ().\-]*$"
_SIMPLE_ALPHABET = "0123456789 ().-+"
_MAX_INPUT = 250  # phonenumbers' _MAX_INPUT_STRING_LENGTH
CLASS_PREFIX = 4

_DESCS = ("general_desc", "fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost",
          "personal_number", "voip", "pager", "uan", "voicemail")
_PARSE_ERRORS = {
    0: "INVALID_COUNTRY_CODE", 1: "NOT_A_NUMBER", 2: "TOO_SHORT_AFTER_IDD", 3: "TOO_SHORT_NSN",
    4: "TOO_LONG",
}


@dataclass(frozen=True, slots=True)
class PhoneResult:
    """One number's verdict. `reason` is None when accepted."""

    e164: str | None
    extension: str | None
    reason: str | None
    detail: str | None
    #: phonenumbers' time zones for the number, as it returns them (may be ("Etc/Unknown",)).
    zones: tuple[str, ...]
    country_code: int | None = None


def reference(raw: str | None, region: str) -> PhoneResult:
    """The per-number phonenumbers answer that `PhoneNormalizer` reproduces."""
    if raw is None or not raw.strip():
        return PhoneResult(None, None, MISSING_PHONE, None, ())
    try:
        num = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        return PhoneResult(None, None, UNPARSEABLE, _PARSE_ERRORS.get(exc.error_type, "ERROR"), ())
    if not phonenumbers.is_valid_number(num):
        return PhoneResult(None, None, INVALID_NUMBER, None, ())
    e164 = phonenumbers.format_number(num, PhoneNumberFormat.E164)
    return PhoneResult(e164, num.extension or None, None, None,
                       tuple(pntz.time_zones_for_number(num)), num.country_code)


# --- lemma 1: which cells are equivalent to their digit key --------------------------------------

@lru_cache(maxsize=1)
def simple_shape_is_safe() -> bool:
    """Check, on phonenumbers' compiled patterns, the facts lemma 1 relies on: no extension and no
    "second number" pattern can match text made of the simple-shape alphabet."""
    try:
        for name in ("_EXTN_PATTERN", "_SECOND_NUMBER_START_PATTERN"):
            rx = getattr(pnu, name)
            if Dfa(rx.pattern, _SIMPLE_ALPHABET, rx.flags).can_match_somewhere():
                return False
    except (AttributeError, Unsupported):
        return False
    return pnu._MAX_INPUT_STRING_LENGTH == _MAX_INPUT and pnu._MIN_LENGTH_FOR_NSN == 2


# --- lemma 2: how many leading digits decide the answer -----------------------------------------

@cache
def _dfa(pattern: str) -> Dfa:
    return Dfa(pattern)


_FULL, _PREFIX = 0, 1


@dataclass(frozen=True)
class _Probe:
    kind: int
    pattern: str
    offset: int


class _Walker:
    """Decision depth over one set of probes for keys of one length.

    A state is (position, live probes with their automaton states); a probe is live while its
    result can still change with more digits.
    """

    def __init__(self, probes: Sequence[_Probe], n: int) -> None:
        self.n = n
        self.probes = [(p.kind, _dfa(p.pattern), p.offset) for p in probes]
        #: Probes that read at least one digit, by the offset where they start.
        self.starting: dict[int, list[int]] = {}
        for idx, (kind, dfa, off) in enumerate(self.probes):
            if off >= n:
                continue  # tests the empty string: the same for every key
            if kind == _FULL and dfa.verdict(dfa.start, n - off) != MIXED:
                continue
            self.starting.setdefault(off, []).append(idx)
        self.last_start = max(self.starting, default=-1)
        self._need: dict[tuple[int, frozenset[tuple[int, frozenset[int]]]], int] = {}
        self._steps: dict[tuple[int, frozenset[tuple[int, frozenset[int]]], str],
                          frozenset[tuple[int, frozenset[int]]]] = {}

    def _undecided(self, idx: int, state: frozenset[int], pos: int) -> bool:
        kind, dfa, _off = self.probes[idx]
        if kind == _FULL:
            return dfa.verdict(state, self.n - pos) == MIXED
        return bool(state) and pos < self.n

    def step(self, pos: int, live: frozenset[tuple[int, frozenset[int]]],
             digit: str) -> frozenset[tuple[int, frozenset[int]]]:
        key = (pos, live, digit)
        got = self._steps.get(key)
        if got is None:
            got = self._steps[key] = self._step(pos, live, digit)
        return got

    def _step(self, pos: int, live: frozenset[tuple[int, frozenset[int]]],
              digit: str) -> frozenset[tuple[int, frozenset[int]]]:
        out = set()
        for idx, state in live:
            nxt = self.probes[idx][1].step(state, digit)
            if self._undecided(idx, nxt, pos + 1):
                out.add((idx, nxt))
        for idx in self.starting.get(pos, ()):
            dfa = self.probes[idx][1]
            nxt = dfa.step(dfa.start, digit)
            if self._undecided(idx, nxt, pos + 1):
                out.add((idx, nxt))
        return frozenset(out)

    def done(self, pos: int, live: frozenset[Any]) -> bool:
        return not live and pos > self.last_start

    def need(self, pos: int, live: frozenset[tuple[int, frozenset[int]]]) -> int:
        if self.done(pos, live):
            return pos
        key = (pos, live)
        got = self._need.get(key)
        if got is None:
            got = max(self.need(pos + 1, self.step(pos, live, d)) for d in DIGITS)
            self._need[key] = got
        return got

    def depth(self, prefix: str) -> int:
        live: frozenset[tuple[int, frozenset[int]]] = frozenset()
        for pos, digit in enumerate(prefix):
            if self.done(pos, live):
                return pos
            live = self.step(pos, live, digit)
        return self.need(len(prefix), live)


class _Slow(Exception):
    """This key class is left to phonenumbers."""


def _prefix_ends(pattern: str | None, digits: str, offset: int, n: int) -> set[int]:
    """Every length a prefix match of `pattern` at `offset` can have for any key starting with
    `digits` (of total length n); raises _Slow when the prefix does not settle it."""
    if not pattern:
        return set()
    dfa = _dfa(pattern)
    ends = set()
    state = dfa.start
    rest = digits[offset:]
    for t in range(len(rest) + 1):
        at_end = offset + t == n
        if dfa.accept in state or (at_end and dfa.accepting(state)):
            ends.add(t)
        if t == len(rest) or not state:
            break
        state = dfa.step(state, rest[t])
    if state and offset + len(rest) < n:
        raise _Slow
    return ends


class DepthProver:
    """Lemma 2 for one default region."""

    def __init__(self, region: str) -> None:
        self.region = region
        md = PhoneMetadata.metadata_for_region(region)
        if md is None or md.country_code is None:
            raise ValueError(f"unknown region {region!r}")
        self.md: Any = md
        self.cc: int = md.country_code
        self._walkers: dict[tuple[Any, ...], _Walker] = {}
        self._depths: dict[tuple[bool, int, str], int | None] = {}

    @staticmethod
    def _main_metadata(cc: int) -> Any:
        return PhoneMetadata.metadata_for_region_or_calling_code(
            cc, pnu.region_code_for_country_code(cc))

    @staticmethod
    @cache
    def _number_patterns(cc: int) -> tuple[frozenset[str], frozenset[str]]:
        full, prefix = set(), set()
        for rc in pnu.COUNTRY_CODE_TO_REGION_CODE.get(cc, ()):
            md = PhoneMetadata.metadata_for_region_or_calling_code(cc, rc)
            if md is None:
                continue
            for name in _DESCS:
                desc = getattr(md, name)
                if desc is not None and desc.national_number_pattern:
                    full.add(desc.national_number_pattern)
            if md.leading_digits:
                prefix.add(md.leading_digits)
        return frozenset(full), frozenset(prefix)

    def depth(self, plus: bool, n: int, prefix: str) -> int | None:
        """Digits that decide the answer for every key of this class, or None (phonenumbers)."""
        key = (plus, n, prefix)
        if key not in self._depths:
            try:
                self._depths[key] = self._depth(plus, n, prefix)
            except (_Slow, Unsupported):
                self._depths[key] = None
        return self._depths[key]

    def _depth(self, plus: bool, n: int, p: str) -> int:
        if n < 3 or len(p) < min(n, 3):
            raise _Slow
        probes: set[_Probe] = set()
        if plus:
            cc, cl = 0, 0
            if p[0] != "0":
                for ii in range(1, min(n, 3) + 1):
                    if int(p[:ii]) in pnu.COUNTRY_CODE_TO_REGION_CODE:
                        cc, cl = int(p[:ii]), ii
                        break
            if not cc:
                raise _Slow  # phonenumbers retries without the plus: not modelled
            reads = cl
            mds: list[Any] = [self.md if pnu.region_code_for_country_code(cc) == self.region
                              else self._main_metadata(cc)]
            starts = {cl}
        else:
            idd = self.md.international_prefix
            reads = 0
            if idd:
                # The number must not start with the international prefix, for any key of the class.
                dfa = _dfa(idd)
                state = dfa.start
                for t, digit in enumerate(p):
                    if dfa.accept in state or (t == n and dfa.accepting(state)):
                        raise _Slow
                    if not state:
                        break
                    state = dfa.step(state, digit)
                    reads = t + 1
                if state:
                    raise _Slow
                probes.add(_Probe(_PREFIX, idd, 0))
            cc = self.cc
            ccs = str(cc)
            reads = max(reads, min(len(ccs), n))
            if len(p) < min(len(ccs), n):
                raise _Slow
            mds = [self.md, self._main_metadata(cc)]
            starts = {0}
            if p.startswith(ccs):
                c = len(ccs)
                starts |= {c} | {c + e for e in _prefix_ends(self.md.national_prefix_for_parsing,
                                                             p, c, n)}
                probes.add(_Probe(_PREFIX, self.md.national_prefix_for_parsing or "", c))
        for md in mds:
            if md is None or md.national_prefix_transform_rule:
                raise _Slow
        offsets = set(starts)
        for start in starts:
            for md in mds:
                offsets |= {start + e for e in _prefix_ends(md.national_prefix_for_parsing, p,
                                                             start, n)}
        route = (cc, tuple(id(md) for md in mds), frozenset(offsets), frozenset(probes), n)
        walker = self._walkers.get(route)
        if walker is None:
            full, prefix = (set(x) for x in self._number_patterns(cc))
            for md in mds:
                if md.general_desc is not None and md.general_desc.national_number_pattern:
                    full.add(md.general_desc.national_number_pattern)
                if md.national_prefix_for_parsing:
                    prefix.add(md.national_prefix_for_parsing)
            for off in offsets:
                probes |= {_Probe(_FULL, pat, off) for pat in full}
                probes |= {_Probe(_PREFIX, pat, off) for pat in prefix}
            probes.discard(_Probe(_PREFIX, "", 0))
            ordered = tuple(sorted(probes, key=lambda q: (q.kind, q.offset, q.pattern)))
            walker = self._walkers[route] = _Walker(ordered, n)
        # Never below the class prefix, so that keys of different classes never share an entry.
        return max(reads, walker.depth(p), min(n, CLASS_PREFIX))


# --- time zones ----------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _tz_longest_under() -> dict[str, int]:
    """For every prefix of a time zone table key: the longest key that starts with it."""
    longest: dict[str, int] = {}
    for key in TIMEZONE_DATA:
        for i in range(1, len(key) + 1):
            head = key[:i]
            if longest.get(head, 0) < len(key):
                longest[head] = len(key)
    return longest


def _tz_keys_under(prefix: str) -> int:
    """Longest time zone table key that starts with `prefix` (or len(prefix))."""
    return max(_tz_longest_under().get(prefix, 0), len(prefix))


# --- the normaliser ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Entry:
    detail: str | None  # parse error, or None
    cc: str
    nsn_len: int
    valid: bool
    geo: bool


class _EntryArrays:
    """The `_Entry` answers as rows of an int64 array (status, country code, national number
    length, geographical, detail code), found by an integer key for (plus, length, the first k
    digits, k): looked up for a whole batch at once with numpy. Status -1: not settled."""

    STATUS, CC, NSN, GEO, DETAIL = range(5)
    _EMPTY = (-1, 0, 0, 0, 0)

    def __init__(self) -> None:
        self.keys = np.zeros(0, np.int64)
        self.values = np.zeros((0, 5), np.int64)

    @staticmethod
    def key(plus: np.ndarray, n: np.ndarray, k: np.ndarray, digits: np.ndarray) -> np.ndarray:
        """Keys of (plus, n, k, first k of the n digits); -1 (not cached) beyond 15 digits."""
        head = digits // _POW10[n - k]
        key = ((head * 16 + k) * 16 + n) * 2 + plus  # < 10**15 * 512: fits in int64
        return np.where(n <= 15, key, -1)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values, found): a fresh (len(keys), 5) array, unsettled where not found."""
        values = np.tile(np.array(self._EMPTY, np.int64), (len(keys), 1))
        found = np.zeros(len(keys), bool)
        if len(self.keys) and len(keys):
            pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            found = (self.keys[pos] == keys) & (keys >= 0)
            values[found] = self.values[pos[found]]
        return values, found

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        keep = keys >= 0
        if not keep.any():
            return
        all_keys = np.concatenate([self.keys, keys[keep]])
        order = np.argsort(all_keys, kind="stable")
        self.keys = all_keys[order]
        self.values = np.concatenate([self.values, values[keep]])[order]


class ZoneTable:
    """Interns zone tuples as small integers, so that arrays can carry them."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, ...], int] = {}
        self.zones: list[tuple[str, ...]] = []

    def id(self, zones: tuple[str, ...]) -> int:
        got = self.ids.get(zones)
        if got is None:
            got = self.ids[zones] = len(self.zones)
            self.zones.append(zones)
        return got


@dataclass
class NormalizedArray:
    """Per input value: reason code (0 accepted), E.164 (text and as an integer), extension, zone
    id (into the normaliser's ZoneTable) and country code."""

    reason: np.ndarray  # int8
    detail: pa.Array  # string: phonenumbers' parse error for unparseable values, else null
    e164: pa.Array  # string, null unless accepted
    e164_int: np.ndarray  # int64: the E.164 digits, 0 unless accepted
    extension: pa.Array  # string, null unless there is one
    zone_id: np.ndarray  # int32, -1 unless accepted
    country_code: np.ndarray  # int32, 0 unless accepted


_POW10 = np.array([10 ** i for i in range(19)], dtype=np.int64)
_SEPARATORS = " ()-.+"
_REASON_CODE = {MISSING_PHONE: R_MISSING, UNPARSEABLE: R_UNPARSEABLE, INVALID_NUMBER: R_INVALID}


class PhoneNormalizer:
    """`reference()` for many numbers at once, with proven caches (see the module docstring)."""

    SLOW_CACHE_MAX = 200_000

    def __init__(self, region: str, zones: ZoneTable | None = None, *, fast: bool = True,
                 fast_min: int = 4000) -> None:
        """`fast_min`: below this many candidate values in a call (and before the caches are
        warm) phonenumbers is simply called per value: the proofs' set-up costs more than that."""
        region = region.upper()
        if PhoneMetadata.metadata_for_region(region) is None:
            raise ValueError(f"unknown region {region!r}")
        self.region = region
        self.zones = zones or ZoneTable()
        self.fast = fast and simple_shape_is_safe()
        self.prover = DepthProver(region)
        self._entries: dict[tuple[bool, int, str], _Entry | None] = {}
        self._entry_arrays = _EntryArrays()
        self._geo_zones: dict[str, int] = {}
        self._tz_depths: dict[str, int] = {}
        self._country_zones: dict[int, int] = {}
        self._slow: dict[str, PhoneResult] = {}
        self._details: dict[str | None, int] = {None: 0}
        self.detail_names: list[str | None] = [None]
        self.stats = {"fast_values": 0, "slow_values": 0, "oracle_calls": 0}
        self.fast_min = fast_min

    # one number
    def normalize(self, raw: str | None) -> PhoneResult:
        out = self.normalize_array(pa.array([raw], pa.string()))
        reason = int(out.reason[0])
        zid = int(out.zone_id[0])
        return PhoneResult(
            out.e164[0].as_py(), out.extension[0].as_py(), REASONS.get(reason),
            out.detail[0].as_py(), self.zones.zones[zid] if zid >= 0 else (),
            int(out.country_code[0]) or None)

    def _reference(self, raw: str) -> PhoneResult:
        got = self._slow.get(raw)
        if got is None:
            if len(self._slow) >= self.SLOW_CACHE_MAX:
                self._slow.clear()
            got = self._slow[raw] = reference(raw, self.region)
        return got

    def _detail_code(self, detail: str | None) -> int:
        code = self._details.get(detail)
        if code is None:
            code = self._details[detail] = len(self.detail_names)
            self.detail_names.append(detail)
        return code

    def _entry(self, plus: bool, digits: str, k: int) -> _Entry | None:
        """The phonenumbers answer for one representative key; None when outside lemma 2."""
        key = (plus, len(digits), digits[:k])
        if key in self._entries:
            return self._entries[key]
        self.stats["oracle_calls"] += 1
        entry: _Entry | None
        try:
            num = phonenumbers.parse(("+" if plus else "") + digits, self.region)
        except phonenumbers.NumberParseException as exc:
            entry = _Entry(_PARSE_ERRORS.get(exc.error_type, "ERROR"), "", 0, False, False)
        else:
            nsn = pnu.national_significant_number(num)
            if not digits.endswith(nsn) or num.extension:
                entry = None  # defensive: lemma 2 says this cannot happen
            else:
                ntype, valid = _type_and_validity(num, nsn)
                cc = int(num.country_code or 0)
                entry = _Entry(None, str(cc), len(nsn), valid,
                               pnu.is_number_type_geographical(ntype, cc))
        self._entries[key] = entry
        return entry

    def normalize_array(self, raw: pa.Array | pa.ChunkedArray) -> NormalizedArray:
        """Normalise every value of a string array (nulls count as missing)."""
        if isinstance(raw, pa.ChunkedArray):
            raw = raw.combine_chunks()
        raw = pc.coalesce(raw.cast(pa.string()), pa.scalar("", pa.string()))
        size = len(raw)
        reason = np.zeros(size, np.int8)
        detail = np.zeros(size, np.int32)
        e164 = np.zeros(size, np.int64)
        zone = np.full(size, -1, np.int32)
        ccodes = np.zeros(size, np.int32)
        extensions: dict[int, str] = {}

        missing = pc.equal(pc.utf8_trim_whitespace(raw), "").to_numpy(zero_copy_only=False)
        reason[missing] = R_MISSING
        slow = ~missing
        if self.fast and size:
            shape = pc.and_(pc.match_substring_regex(raw, SIMPLE_SHAPE),
                            pc.less_equal(pc.utf8_length(raw), _MAX_INPUT))
            cand = np.nonzero(shape.to_numpy(zero_copy_only=False) & ~missing)[0]
            if len(cand) and (len(cand) >= self.fast_min or self.stats["fast_values"]):
                sub = raw.take(pa.array(cand))
                digits = sub
                for ch in _SEPARATORS:
                    digits = pc.replace_substring(digits, ch, "")
                ndig = pc.utf8_length(digits).to_numpy(zero_copy_only=False).astype(np.int64)
                good = (ndig >= 3) & (ndig <= 17)
                rows = cand[good]
                if len(rows):
                    keep = pa.array(np.nonzero(good)[0])
                    plus = pc.starts_with(pc.utf8_ltrim(sub.take(keep), " "), "+")
                    dint = pc.cast(digits.take(keep), pa.int64()).to_numpy(zero_copy_only=False)
                    done = self._fast(rows, plus.to_numpy(zero_copy_only=False), dint,
                                      ndig[good], reason, detail, e164, zone, ccodes)
                    slow[rows[done]] = False
                    self.stats["fast_values"] += int(done.sum())
        values = raw.to_pylist() if slow.any() else []
        for i in np.nonzero(slow)[0].tolist():
            res = self._reference(values[i])
            self.stats["slow_values"] += 1
            if res.reason is None:
                assert res.e164 is not None
                e164[i] = int(res.e164[1:])
                zone[i] = self.zones.id(res.zones)
                ccodes[i] = res.country_code or 0
                if res.extension:
                    extensions[i] = res.extension
            else:
                reason[i] = _REASON_CODE[res.reason]
                detail[i] = self._detail_code(res.detail)

        accepted = reason == OK
        text = pc.utf8_replace_slice(pc.cast(pa.array(e164), pa.string()), 0, 0, "+")
        e164_text = pc.if_else(pa.array(accepted), text, pa.scalar(None, pa.string()))
        names = pa.array(self.detail_names, pa.string())
        detail_text = names.take(pa.array(detail))
        if extensions:
            ext = pa.array([extensions.get(i) for i in range(size)], pa.string())
        else:
            ext = pa.nulls(size, pa.string())
        return NormalizedArray(reason, detail_text, e164_text, e164, ext, zone, ccodes)

    def _fast(self, rows: np.ndarray, plus: np.ndarray, dint: np.ndarray, n: np.ndarray,
              reason: np.ndarray, detail: np.ndarray, e164: np.ndarray, zone: np.ndarray,
              ccodes: np.ndarray) -> np.ndarray:
        """Lemmas 2 and 3 over arrays of digit keys (as integers with their lengths); Python only
        sees distinct classes, keys and zone heads. Returns which rows it settled."""
        plus_i = plus.astype(np.int64)
        head = np.minimum(n, CLASS_PREFIX)
        p4 = dint // _POW10[n - head]
        cls_key = (p4 * 32 + n) * 2 + plus_i
        ucls, cls_inv = np.unique(cls_key, return_inverse=True)
        ks = np.empty(len(ucls), np.int64)
        for j, key in enumerate(ucls.tolist()):
            pl, rest = key & 1, key >> 1
            nn, pref = rest & 31, rest >> 5
            ks[j] = self.prover.depth(bool(pl), nn, str(pref).zfill(min(nn, CLASS_PREFIX))) or 0
        k = ks[cls_inv]
        proven = k > 0
        kk = np.where(proven, k, n)
        tail_digits = np.maximum(kk - head, 0)
        tail = (dint // _POW10[n - kk]) % _POW10[tail_digits]
        ekey = cls_inv.astype(np.int64) * _POW10[13] + tail
        uent, first, ent_inv = np.unique(ekey, return_index=True, return_inverse=True)
        # Entries met in earlier batches come from the array cache; Python sees only new ones.
        fk = first[proven[first]]
        gkey = np.full(len(uent), -1, np.int64)
        gkey[proven[first]] = _EntryArrays.key(plus_i[fk], n[fk], k[fk], dint[fk])
        cols, known = self._entry_arrays.lookup(gkey)
        new = np.nonzero(proven[first] & ~known)[0]
        for j in new.tolist():
            r = int(first[j])
            nn = int(n[r])
            digits = str(int(dint[r])).zfill(nn)
            kr = int(k[r])
            key = (bool(plus[r]), nn, digits[:kr])
            entry = (self._entries[key] if key in self._entries
                     else self._entry(bool(plus[r]), digits, kr))
            if entry is None:
                continue
            if entry.detail is not None:
                cols[j, _EntryArrays.STATUS] = R_UNPARSEABLE
                cols[j, _EntryArrays.DETAIL] = self._detail_code(entry.detail)
            else:
                cols[j, _EntryArrays.STATUS] = OK if entry.valid else R_INVALID
                cols[j, _EntryArrays.CC] = int(entry.cc)
                cols[j, _EntryArrays.NSN] = entry.nsn_len
                cols[j, _EntryArrays.GEO] = entry.geo
        self._entry_arrays.add(gkey[new], cols[new])
        status = cols[:, _EntryArrays.STATUS].astype(np.int8)
        e_cc = cols[:, _EntryArrays.CC]
        e_nsn = cols[:, _EntryArrays.NSN]
        e_geo = cols[:, _EntryArrays.GEO].astype(bool)
        e_detail = cols[:, _EntryArrays.DETAIL].astype(np.int32)
        st = status[ent_inv]
        settled = st >= 0
        reason[rows[settled]] = st[settled]
        detail[rows[settled]] = e_detail[ent_inv][settled]
        ok = np.nonzero(st == OK)[0]
        if len(ok):
            cc = e_cc[ent_inv[ok]]
            nsn_len = e_nsn[ent_inv[ok]]
            number = cc * _POW10[nsn_len] + dint[ok] % _POW10[nsn_len]
            e164[rows[ok]] = number
            ccodes[rows[ok]] = cc
            zone[rows[ok]] = self._zones(number, cc, nsn_len, e_geo[ent_inv[ok]])
        return settled

    def _zones(self, number: np.ndarray, cc: np.ndarray, nsn_len: np.ndarray,
               geo: np.ndarray) -> np.ndarray:
        """Zone ids for accepted numbers, given as E.164 digits (lemma 3)."""
        out = np.full(len(number), -1, np.int32)
        cc_len = np.where(cc >= 100, 3, np.where(cc >= 10, 2, 1))
        total = cc_len + nsn_len
        short_len = np.minimum(total, cc_len + 3)
        short = number // _POW10[total - short_len]
        skey = short * 32 + short_len
        us, s_inv = np.unique(skey, return_inverse=True)
        depths = np.array([self._tz_depth_of(str(key >> 5)) for key in us.tolist()], np.int64)
        depth = np.minimum(depths[s_inv], total)
        hkey = (number // _POW10[total - depth]) * 32 + depth
        # Numbers of a non-geographical type get their country's zones.
        hkey = np.where(geo, hkey, -cc)
        uh, first, h_inv = np.unique(hkey, return_index=True, return_inverse=True)
        ids = np.empty(len(uh), np.int32)
        for j, r in enumerate(first.tolist()):
            c = int(cc[r])
            if not geo[r]:
                ids[j] = self._country_zone(c)
                continue
            head = str(int(uh[j]) >> 5)
            zid = self._geo_zones.get(head)
            if zid is None:
                digits = str(int(number[r]))
                num = _numobj(c, digits[len(str(c)):])
                zid = self._geo_zones[head] = self.zones.id(
                    tuple(pntz.time_zones_for_geographical_number(num)))
            ids[j] = zid
        out[:] = ids[h_inv]
        return out

    def _tz_depth_of(self, short: str) -> int:
        got = self._tz_depths.get(short)
        if got is None:
            got = self._tz_depths[short] = max(len(short), _tz_keys_under(short))
        return got

    def _country_zone(self, cc: int) -> int:
        zid = self._country_zones.get(cc)
        if zid is None:
            zid = self._country_zones[cc] = self.zones.id(country_zones(cc))
        return zid


def _type_and_validity(num: phonenumbers.PhoneNumber, nsn: str) -> tuple[int, bool]:
    """`(number_type(num), is_valid_number(num))` as phonenumbers computes them, sharing the
    region lookup and the pattern tests the two calls would each repeat (half the cost of a
    cache miss in `PhoneNormalizer._entry`)."""
    region: Any = pnu.region_code_for_number(num)
    cc: Any = num.country_code
    md = PhoneMetadata.metadata_for_region_or_calling_code(cc, region)
    if md is None:
        return pnu.PhoneNumberType.UNKNOWN, False
    ntype = pnu._number_type_helper(nsn, md)
    valid = (region is not None and ntype != pnu.PhoneNumberType.UNKNOWN
             and (region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY
                  or cc == pnu.country_code_for_valid_region(region)))
    return ntype, valid


def _numobj(cc: int, nsn: str) -> phonenumbers.PhoneNumber:
    """The PhoneNumber phonenumbers.parse builds for country code `cc` and national number `nsn`."""
    num = phonenumbers.PhoneNumber(country_code=cc, national_number=int(nsn))
    pnu._set_italian_leading_zeros_for_phone_number(nsn, num)
    return num


@cache
def country_zones(cc: int) -> tuple[str, ...]:
    """phonenumbers' time zones for a whole country calling code."""
    return tuple(pntz._country_level_time_zones_for_number(_numobj(cc, "0")))


def is_valid_region(region: str) -> bool:
    return PhoneMetadata.metadata_for_region(region.upper()) is not None

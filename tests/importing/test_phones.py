"""Normalisation is exactly phonenumbers' per-number answer, and the proofs behind the fast path
hold on the installed phonenumbers metadata."""

from __future__ import annotations

import random
import re

import phonenumbers
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import SUPPORTED_REGIONS

from campaigns.importing.phones import (
    SIMPLE_SHAPE,
    PhoneNormalizer,
    PhoneResult,
    _type_and_validity,
    reference,
    simple_shape_is_safe,
)
from campaigns.importing.regexdfa import DIGITS, Dfa

AREA_CODES = [201, 205, 208, 212, 213, 305, 312, 415, 505, 520, 602, 617, 702, 808, 907, 989,
              268, 264, 787, 876, 416, 604, 514, 800, 888, 900, 500, 123, 555, 999, 100]
FORMATS = ["({a}) {e}-{s}", "{a}-{e}-{s}", "{a}.{e}.{s}", "{a}{e}{s}", "+1{a}{e}{s}",
           "1-{a}-{e}-{s}", "+1 ({a}) {e}-{s}", " 1 {a} {e} {s} ", "+{a}{e}{s}", "1{a}{e}{s}",
           "011 44 20 {e} {s}", "+44 20 {e} {s}", "+33 1 {e} {s}", "{a} {e} {s} x12",
           "+1 {a} {e} {s} ext. 7", "({a}) {e}-{s})", "{a}-{e}-{s}.", "0{a}{e}{s}",
           "++1{a}{e}{s}", "1 1{a}{e}{s}", "{a}/{e}-{s}", "tel: {a}-{e}-{s}"]


def corpus(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        r = rnd.random()
        if r < 0.6:
            a = rnd.choice(AREA_CODES) if rnd.random() < 0.8 else rnd.randint(0, 999)
            out.append(rnd.choice(FORMATS).format(a=f"{a:03d}", e=f"{rnd.randint(0, 999):03d}",
                                                  s=f"{rnd.randint(0, 9999):04d}"))
        elif r < 0.85:
            digits = "".join(rnd.choice(DIGITS) for _ in range(rnd.randint(0, 18)))
            out.append(rnd.choice(["", "+", "1", "011", "0", " ", "("]) + digits)
        else:
            out.append("".join(rnd.choice("0123456789 +-().x#abc/１２３") for _ in
                               range(rnd.randint(0, 16))))
    return out


def results(norm: PhoneNormalizer, values: list[str]) -> list[PhoneResult]:
    out = norm.normalize_array(pa.array(values, pa.string()))
    reasons = {0: None, 1: "missing_phone", 2: "unparseable", 3: "invalid_number"}
    return [PhoneResult(out.e164[i].as_py(), out.extension[i].as_py(),
                        reasons[int(out.reason[i])], out.detail[i].as_py(),
                        norm.zones.zones[out.zone_id[i]] if out.zone_id[i] >= 0 else (),
                        int(out.country_code[i]) or None)
            for i in range(len(values))]


@pytest.mark.parametrize("region, n, seed", [("US", 4000, 1), ("CA", 1500, 2), ("GB", 1500, 3)])
def test_equal_to_phonenumbers_per_number(region: str, n: int, seed: int) -> None:
    values = corpus(n, seed)
    norm = PhoneNormalizer(region, fast_min=0)
    got = results(norm, values)
    for value, mine in zip(values, got):
        assert mine == reference(value, region), value
    assert norm.stats["fast_values"] > n / 3  # the proven path really did the work


def test_type_and_validity_equal_phonenumbers() -> None:
    """The merged lookup of a cache miss gives number_type and is_valid_number exactly, for
    example numbers of every region (valid ones and altered ones) and non-geographic codes."""
    rnd = random.Random(5)
    numbers = []
    for region in sorted(SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE,
                     phonenumbers.PhoneNumberType.TOLL_FREE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            numbers.append(example)
            nsn = str(example.national_number)
            for _ in range(3):
                at = rnd.randrange(len(nsn))
                altered = nsn[:at] + rnd.choice(DIGITS) + nsn[at + 1:]
                cut = altered[:rnd.randint(1, len(altered))] if rnd.random() < 0.3 else altered
                numbers.append(phonenumbers.PhoneNumber(country_code=example.country_code,
                                                        national_number=int(cut)))
    for cc in (800, 808, 870, 878, 881, 882, 883, 888, 979, 999, 0):
        numbers.append(phonenumbers.PhoneNumber(country_code=cc, national_number=12345678))
    for num in numbers:
        nsn = phonenumbers.national_significant_number(num)
        assert _type_and_validity(num, nsn) == (phonenumbers.number_type(num),
                                                phonenumbers.is_valid_number(num)), num


def test_small_inputs_use_phonenumbers_directly() -> None:
    norm = PhoneNormalizer("US")
    values = corpus(200, 9)
    assert results(norm, values) == [reference(v, "US") for v in values]
    assert norm.stats["fast_values"] == 0


def test_extension_and_zones() -> None:
    norm = PhoneNormalizer("US", fast_min=0)
    res = norm.normalize("(208) 555-0100 ext. 42")
    assert res == reference("(208) 555-0100 ext. 42", "US")
    r = norm.normalize("+1 (208) 201-2345")
    assert r.e164 == "+12082012345" and r.zones == ("America/Denver",)
    assert norm.normalize("").reason == "missing_phone"
    assert norm.normalize("not a phone").reason == "unparseable"
    assert norm.normalize("(123) 456-7890").reason == "invalid_number"


def test_lemma_1_preconditions_hold() -> None:
    assert simple_shape_is_safe()


_SHAPE = re.compile(SIMPLE_SHAPE)


def _core(raw: str) -> object:
    try:
        num = phonenumbers.parse(raw, "US")
    except phonenumbers.NumberParseException as exc:
        return ("error", exc.error_type)
    return (num.country_code, num.national_number, num.extension, num.italian_leading_zero,
            num.number_of_leading_zeros)


@settings(max_examples=400, deadline=None, database=None)
@given(st.text(alphabet=" ()-.0123456789", min_size=0, max_size=30), st.booleans(),
       st.integers(0, 3))
def test_lemma_1_simple_cells_parse_like_their_digits(body: str, plus: bool, spaces: int) -> None:
    raw = " " * spaces + ("+" if plus else "") + body
    digits = re.sub(r"\D", "", raw)
    if not _SHAPE.match(raw) or len(digits) < 3:
        return
    assert _core(raw) == _core(("+" if plus else "") + digits)


def test_dfa_agrees_with_re_on_metadata_patterns() -> None:
    rnd = random.Random(5)
    names = ("general_desc", "fixed_line", "mobile", "toll_free", "premium_rate", "voip")
    checked = 0
    for region in sorted(SUPPORTED_REGIONS)[::6]:
        md = PhoneMetadata.metadata_for_region(region)
        assert md is not None
        for name in names:
            desc = getattr(md, name)
            if desc is None or not desc.national_number_pattern:
                continue
            rx = re.compile(desc.national_number_pattern)
            dfa = Dfa(desc.national_number_pattern)
            samples = [desc.example_number] if desc.example_number else []
            samples += ["".join(rnd.choice(DIGITS) for _ in range(rnd.randint(1, 13)))
                        for _ in range(30)]
            for s in samples:
                assert dfa.fullmatch(s) == bool(rx.fullmatch(s)), (region, name, s)
                checked += 1
    assert checked > 1000


def test_depth_is_a_real_bound() -> None:
    """Keys sharing the proven prefix get the representative's answer (spot check, brute force
    over random tails)."""
    norm = PhoneNormalizer("US", fast_min=0)
    rnd = random.Random(11)
    for prefix in ("4155", "2082", "3052", "5052", "8002", "2682", "1415", "1305"):
        n = 10 if not prefix.startswith("1") else 11
        k = norm.prover.depth(False, n, prefix)
        assert k is not None and k <= n
        head = prefix + "".join(rnd.choice(DIGITS) for _ in range(k - len(prefix)))
        answers = set()
        for _ in range(25):
            key = head + "".join(rnd.choice(DIGITS) for _ in range(n - len(head)))
            ref = reference(key, "US")
            answers.add((ref.reason, ref.detail, ref.e164 is not None and ref.e164[-(n - k):]
                         == key[k:] if n > k else True))
        assert len(answers) == 1, (prefix, k, answers)


#: The fast tier (pytest -m fast): no database, no processes.
pytestmark = pytest.mark.fast

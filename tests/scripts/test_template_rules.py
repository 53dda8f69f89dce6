"""Templates and speech settings, the audit's cases: language/voice, transfer_to, built-in fields
under their header, dates and amounts, sent length, `{x|}`, non-Latin names, URL fields."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns import templates as t
from campaigns.errors import InvalidSettings
from campaigns.importing.columns import header_key
from campaigns.settings import split_and_validate
from campaigns.telnyx_schema.speech import SPEAK_LANGUAGES
from campaigns.template_check import column_problems

pytestmark = pytest.mark.fast

BASE = {"from": "+14155550100", "connection_id": "1"}


def _refused(**values: Any) -> str:
    with pytest.raises(InvalidSettings) as exc:
        split_and_validate({**BASE, **values})
    return str(exc.value)


# --- 1. language and voice -------------------------------------------------------------------

def test_language_must_be_one_telnyx_accepts() -> None:
    msg = _refused(language="english")
    assert msg.startswith("language: 'english' is not one of the allowed values") and "en-US" in msg
    assert "\n" not in msg
    for lang in ("en-US", "fr-FR", "arb", "en-GB-WLS"):
        assert split_and_validate({**BASE, "language": lang}).settings["language"] == lang
    assert len(SPEAK_LANGUAGES) == 29


@pytest.mark.parametrize("voice", ["male", "female", "Polly.Joanna", "AWS.Polly.Joanna-Neural",
                                   "Azure.en-US-Ava:DragonHDLatestNeural", "Telnyx.KokoroTTS.af",
                                   "ElevenLabs.eleven_multilingual_v2.21m00Tcm4TlvDq8ikWAM",
                                   "FishAudio.s2.1-pro.abc", "xAI.eve", "Telnyx"])
def test_documented_voices_are_accepted(voice: str) -> None:
    assert split_and_validate({**BASE, "voice": voice}).settings["voice"] == voice


@pytest.mark.parametrize("voice", ["Joanna", "Female", "robot", "Polly.", "Acme.voice",
                                   "Polly.Jo anna", ""])
def test_other_voices_are_refused(voice: str) -> None:
    msg = _refused(voice=voice)
    assert msg.startswith("voice: must be male, female, or a provider's voice")


# --- 3. transfer_to --------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["+14155550199", "{agent}", "{Agent Phone}",
                                   "{agent|+14155550199}"])
def test_transfer_to_accepted(value: str) -> None:
    assert split_and_validate({**BASE, "on_human": "transfer", "transfer_to": value})


@pytest.mark.parametrize("value", ["call {agent} now", "{agent}{other}", "+1{agent}",
                                   "{agent|hello}", "{agent|}", "4155550199", "sip:a@b.test"])
def test_transfer_to_refused(value: str) -> None:
    msg = _refused(on_human="transfer", transfer_to=value)
    assert msg.startswith("transfer_to: must be a +E164 number")


def test_transfer_to_renders_as_e164() -> None:
    us = t.contact_fields("+14155550100", {}, {"agent": "+1 (415) 555-0198"})
    assert t.render("{agent}", us, "number") == "+14155550198"
    gb = t.contact_fields("+442079460000", {}, {"agent": "020 7946 0958"})
    assert t.render("{agent}", gb, "number") == "+442079460958"  # the dialed number's country
    us_national = t.contact_fields("+14155550100", {}, {"agent": "(415) 555-0198"})
    assert t.render("{agent}", us_national, "number") == "+14155550198"
    assert t.render("{agent|+14155550100}", {"agent": ""}, "number") == "+14155550100"


def test_transfer_to_values_that_are_not_numbers_are_counted() -> None:
    scan = t.ContactScan(t.templates_of({"transfer_to": "{agent}"}))
    for value in ("hello", "+1 (415) 555-0198", "12", "(415) 555-0198"):
        scan.add(t.contact_fields("+14155550100", {}, {"agent": value}))
    problems = scan.problems()
    assert problems == ["transfer_to uses {agent} but it is not a phone number for 2 contacts"]


# --- 4. headers mapped to built-in fields ---------------------------------------------------

def test_builtin_fields_under_their_header_name() -> None:
    fields = t.contact_fields("+12057925976", {"region": "AL", "postal_code": "36803",
                                               "first_name": "Ann"}, {"account_id": "A-1"})
    assert t.render("Hi {State}, {Zip}, {First Name}", fields) == "<speak>Hi AL, 36803, Ann</speak>"
    assert t.render("{Phone Number}", fields, "number") == "+12057925976"
    # empty built-in field: the default, and counted as missing without one
    empty = t.contact_fields("+12057925976", {"region": None}, {})
    assert t.render("Hi {State|your state}", empty) == "<speak>Hi your state</speak>"
    assert t.render("Hi {State|your state}", fields) == "<speak>Hi AL</speak>"
    tpls = t.templates_of({"message_text": "Hi {State}"})
    assert t.missing_counts(tpls, [fields, empty, fields]) == {"state": 1}


def test_an_uploaded_column_wins_over_an_alias() -> None:
    # "State" was mapped to region; "Region" stayed an uploaded column: each by its own name
    fields = t.contact_fields("+1", {"region": "AL"}, {"Region": "South", "Mobile": "x"})
    assert fields["state"] == "AL" and fields["region"] == "AL"
    assert fields["mobile"] == "x"  # not the dialed number
    fields = t.contact_fields("+1", {}, {"Number": None})
    assert fields["number"] == ""  # an empty uploaded column is not the phone


def test_columns_check_uses_the_import_mapping() -> None:
    header = ["account_id", "First Name", "Phone Number", "State", "Zip", "notes"]
    tpls = t.templates_of({"message_text": "Hi {State} {Zip} {Phone Number} {first_name} {x}"})
    assert column_problems(tpls, [(header, "Phone Number")]) == [
        "message_text names {x} but the contact list has no column 'x'"]


def test_unusual_phone_header_is_refused_by_name() -> None:
    tpls = t.templates_of({"message_text": "Call {Numero Cliente}"})
    problems = column_problems(tpls, [(["Numero Cliente", "name"], "Numero Cliente")])
    assert problems == ["message_text names {Numero Cliente}, the column read as the contact's "
                        "phone: write {phone}"]
    tz = t.templates_of({"message_text": "{tz} {Time Zone}"})
    assert column_problems(tz, [(["phone", "tz"], None), (["phone", "Time Zone"], None)]) == []


# --- 5. dates and amounts ----------------------------------------------------------------------

@pytest.mark.parametrize("value", ["2025-06-12", "2025/06/12", "12/06/2025", "12-06-2025",
                                   "12.06.2025", "6/12/25", "1234567.89", "1234567.5",
                                   "-1234567.89"])
def test_dates_and_amounts_are_read_as_they_are(value: str) -> None:
    assert not t.phone_like(value)
    assert t.render("{v}", {"v": value}) == f"<speak>{value}</speak>"


@pytest.mark.parametrize("value,digits", [
    ("(415) 555-0198", "4155550198"), ("415-555-0198", "4155550198"),
    ("415.555.0198", "4155550198"), ("+1 415 555 0198", "14155550198"),
    ("020 7946 0958", "02079460958"), ("+44 20 7946 0958", "442079460958"),
    ("01 23 45 67 89", "0123456789"), ("01.23.45.67.89", "0123456789"),
    ("+33 1 23 45 67 89", "33123456789"), ("4155550198", "4155550198"),
])
def test_phone_numbers_still_digit_by_digit(value: str, digits: str) -> None:
    assert t.render("{v}", {"v": value}) == f"<speak>{' '.join(digits)}</speak>"


# --- 6. length as sent -------------------------------------------------------------------------

def test_sent_length_counts_escaping_and_wrapping() -> None:
    text = "&" * 2970 + "{first_name|there}"
    assert t.sent_length(text) == len("<speak></speak>") + 2970 * 5 + len("there")
    assert t.sent_length("plain & simple") == len("plain & simple")  # sent as it is
    msg = _refused(on_human="speak", message_text=text)
    assert "message_text: is 14,870 characters as sent (11,870 over" in msg
    msg = _refused(on_human="speak", message_text="x" * 5000)
    assert "message_text: is 5,000 characters as sent (2,000 over" in msg
    msg = _refused(on_machine="voicemail", voicemail_text="y" * 3001)
    assert "voicemail_text: is 3,001 characters" in msg
    assert split_and_validate({**BASE, "on_human": "speak", "message_text": "x" * 3000})


def test_length_with_the_longest_contact_values() -> None:
    tpls = t.templates_of({"message_text": "a" * 2900 + " {note|}"})
    scan = t.ContactScan(tpls)
    scan.add({"note": "short"})
    assert scan.problems() == []
    scan.add({"note": "<" * 30})  # 30 * "&lt;"
    (problem,) = scan.problems()
    assert problem.startswith("message_text is 3,036 characters with the longest values")
    assert "36 over" in problem
    phone = t.ContactScan(t.templates_of({"message_text": "a" * 2980 + "{cb}"}))
    phone.add({"cb": "4155550198"})  # read digit by digit: 19 characters
    assert "3,014 characters" in phone.problems()[0]


# --- 8. explicit empty default ------------------------------------------------------------------

def test_empty_default_means_blank() -> None:
    tpls = t.templates_of({"message_text": "Note: {Note|}."})
    assert t.requirements(tpls)[1] == []
    assert t.missing_counts(tpls, [{"note": ""}, {}]) == {}
    assert t.render("Note: {Note|}.", {}) == "<speak>Note: .</speak>"
    assert t.parse("{Note|}")[0].default == ""
    assert t.parse("{Note}")[0].default is None


# --- 9. non-Latin names ------------------------------------------------------------------------

def test_non_latin_field_names() -> None:
    fields = t.contact_fields("+1", {}, {"Имя": "Анна", "名前": "花子"})
    assert t.render("Привет {Имя}, {名前}", fields) == "<speak>Привет Анна, 花子</speak>"
    assert t.render("{имя}", fields) == "<speak>Анна</speak>"
    assert t.field_key("Имя") != t.field_key("Фамилия")


@pytest.mark.parametrize("name", ["Appointment Date", "first_name", "E-Mail", "ZIP 5", "a.b_c",
                                  "  x  ", "Phone #2"])
def test_ascii_keys_unchanged(name: str) -> None:
    assert t.field_key(name) == header_key(name)


def test_headers_differing_in_punctuation_are_refused_when_named() -> None:
    tpls = t.templates_of({"message_text": "{Note}"})
    (problem,) = column_problems(tpls, [(["phone", "Note", "note_"], "phone")])
    assert "matches the columns 'Note' and 'note_'" in problem
    assert column_problems(t.templates_of({"message_text": "{phone}"}),
                           [(["phone", "Note", "note_"], "phone")]) == []


# --- 10. URL fields ----------------------------------------------------------------------------

def test_a_field_that_is_the_url_is_inserted_as_a_url() -> None:
    url = "https://cdn.example.com/a b/msg.wav?v=1&x=%20"
    assert t.render("{url}", {"url": url}, "url") == "https://cdn.example.com/a%20b/msg.wav?v=1&x=%20"
    assert (t.render("{base}/clips/{clip}.wav", {"base": "https://x.test/c", "clip": "a b/c"},
                     "url") == "https://x.test/c/clips/a%20b%2Fc.wav")
    assert t.render("https://x.test/{clip}.wav", {"clip": "a/b"}, "url") == "https://x.test/a%2Fb.wav"
    assert t.render("{u|https://x.test/d.wav}", {}, "url") == "https://x.test/d.wav"


def test_url_values_are_checked_and_fixed_part_has_no_spaces() -> None:
    scan = t.ContactScan(t.templates_of({"message_audio_url": "{url}"}))
    for value in ("https://x.test/a.wav", "ftp://x.test/a.wav", "hello", ""):
        scan.add({"url": value})
    assert scan.problems() == [
        "message_audio_url uses {url} without a default and 1 contact has no 'url' (add a "
        "default: {url|...})", "message_audio_url uses {url} but it is not a http(s) URL for 2 "
        "contacts"]
    msg = _refused(on_human="play", message_audio_url="https://x.test/my clips/{f}.wav")
    assert msg.startswith("message_audio_url: a URL cannot hold spaces")
    assert split_and_validate({**BASE, "on_human": "play", "message_audio_url": " {url} "})

"""Templates: fields, defaults, SSML escaping, phone numbers read digit by digit, validation."""

from __future__ import annotations

import pytest

from campaigns import templates as t
from campaigns.errors import InvalidSettings

pytestmark = pytest.mark.fast


def test_fields_and_defaults() -> None:
    fields = t.contact_fields("+14155550100", {"first_name": "Ann"}, {"Appointment Date": "May 3"})
    out = t.render("Hello {first_name|there}, see you {appointment_date}.", fields)
    assert out == "<speak>Hello Ann, see you May 3.</speak>"
    assert t.render("Hello {first_name|there}", {}) == "<speak>Hello there</speak>"
    assert t.render("{{literal}} {First Name}", fields) == "<speak>{literal} Ann</speak>"


def test_values_are_escaped_for_ssml() -> None:
    fields = {"firstname": "<break time='9s'/> & Co"}
    out = t.render("Hi {first_name} & welcome", fields)
    assert "<break" not in out
    assert out == "<speak>Hi &lt;break time='9s'/&gt; &amp; Co &amp; welcome</speak>"
    ssml = t.render("<speak>Hi <emphasis>{first_name}</emphasis></speak>", fields)
    assert ssml == "<speak>Hi <emphasis>&lt;break time='9s'/&gt; &amp; Co</emphasis></speak>"


def test_phone_like_values_read_digit_by_digit() -> None:
    out = t.render("Call {callback}", {"callback": "(415) 555-0100"})
    assert out == "<speak>Call 4 1 5 5 5 5 0 1 0 0</speak>"
    assert t.render("{phone}", {"phone": "+14155550100"}) == "<speak>1 4 1 5 5 5 5 0 1 0 0</speak>"
    assert not t.phone_like("2024")  # a year stays a number
    assert t.render("{n}", {"n": "12 apples"}) == "<speak>12 apples</speak>"


def test_urls_and_numbers() -> None:
    assert (t.render("https://x.test/{clinic}.wav", {"clinic": "a b/../c?"}, "url")
            == "https://x.test/a%20b%2F..%2Fc%3F.wav")
    assert t.render("{agent}", {"agent": " +14155550100 "}, "number") == "+14155550100"


@pytest.mark.parametrize("bad", ["Hello {first_name", "Hello }", "{ }", "{|x}"])
def test_malformed_templates_are_refused(bad: str) -> None:
    with pytest.raises(InvalidSettings):
        t.parse(bad)


def test_validation_names_field_and_count() -> None:
    tpls = t.templates_of({"message_text": "Hi {first_name}, {appointment} {city|here}"})
    problems = t.check_columns(tpls, ["phone", "First Name", "city"])
    assert problems == [("message_text names {appointment} but the contact list has no column "
                         "'appointment'")]
    contacts = [t.contact_fields("+1", {"first_name": "A"}, {"appointment": "x"}),
                t.contact_fields("+1", {"first_name": ""}, {"appointment": "y"}),
                t.contact_fields("+1", {}, {"appointment": ""})]
    counts = t.missing_counts(tpls, contacts)
    assert counts == {"firstname": 2, "appointment": 1}
    lines = t.describe_missing(tpls, counts)
    assert any("{first_name}" in line and "2 contacts" in line for line in lines)

"""Call scripts: parsing and validation at `campaign create`."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.errors import InvalidSettings
from campaigns.scripts import Choice, parse_script
from campaigns.settings import split_and_validate

pytestmark = pytest.mark.fast

DEMO: dict[str, Any] = {
    "start": {"say": "Hello {first_name|there}. Press 1 to confirm, 2 to talk to us.",
              "keys": {"1": "confirm", "2": "transfer", "9": "opt_out"}, "no_input": "repeat",
              "tries": 2},
    "confirm": {"say": "Thank you.", "label": "confirmed"},
}


def test_parse_demo() -> None:
    s = parse_script(DEMO, opt_out_digit="9", transfer_to="+14155550100")
    assert s.names == ["confirm", "start"]
    start = s.steps["start"]
    assert start.keys["1"] == Choice("goto", "confirm")
    assert start.keys["9"] == Choice("opt_out")
    assert start.tries == 2 and start.asks and not s.steps["confirm"].asks
    assert [p[0] for p in s.prompts()] == ["script.start.say", "script.confirm.say"]


def test_labels_and_tables() -> None:
    s = parse_script({"start": {"say": "x", "keys": {"1": "label:yes",
                                                      "2": {"label": "no", "then": "bye"}}},
                      "bye": {"say": "bye"}})
    assert s.steps["start"].keys["1"] == Choice("hangup", label="yes")
    assert s.steps["start"].keys["2"] == Choice("goto", "bye", "no")


@pytest.mark.parametrize("script, message", [
    ({"start": {"say": "x", "keys": {"1": "nowhere"}}}, "unknown step 'nowhere'"),
    ({"start": {"say": "x"}, "orphan": {"say": "y"}}, "orphan: unreachable"),
    ({"start": {"say": "x", "next": "a"}, "a": {"say": "y", "next": "start"}},
     "loop without an exit"),
    ({"start": {"say": "x", "keys": {"1": "a"}, "no_input": "a"},
      "a": {"say": "y", "keys": {"1": "start"}, "no_input": "start"}}, "loop without an exit"),
    ({"start": {"say": "x", "keys": {"A": "hangup"}}}, "'A' is not keypad digits"),
    ({"start": {"say": "x", "keys": {"12": "hangup"}}}, "outside min_digits..max_digits"),
    ({"start": {"say": "x", "keys": {"1": "transfer"}}}, "transfer needs transfer_to"),
    ({"begin": {"say": "x"}}, "needs a step named start"),
    ({"start": {"say": "x", "audio": "https://a/b.wav"}}, "exactly one prompt"),
    ({"start": {"say": "x {oops"}}, "unmatched brace"),
    ({"start": {"say": "x", "colour": 1}}, "unknown key(s) colour"),
    ({"start": {"say": "x", "keys": {"9": "hangup"}}}, "is the opt_out_digit"),
])
def test_invalid_scripts(script: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSettings) as exc:
        parse_script(script, opt_out_digit="9")
    assert message in str(exc.value)


def test_settings_validate_the_script() -> None:
    base = {"from": "+14155550100", "connection_id": "1", "on_human": "script",
            "opt_out_digit": "9", "transfer_to": "+14155550199"}
    split = split_and_validate({**base, "script": DEMO})
    assert split.settings["retry_incomplete"] is False
    with pytest.raises(InvalidSettings, match="on_human=script needs"):
        split_and_validate(base)
    with pytest.raises(InvalidSettings, match="script: script.start: goes to unknown"):
        split_and_validate({**base, "script": {"start": {"say": "x", "keys": {"1": "zz"}}}})
    with pytest.raises(InvalidSettings, match="opt_out_digit: must be one keypad key"):
        split_and_validate({**base, "script": DEMO, "opt_out_digit": "99"})
    assert split_and_validate({**base, "script": DEMO, "transfer_to": "{agent}"})

"""What the engine sends for a decided action (`dialer.engine.actions.send_action`), against a
real HTTP server that records every request and checks each body against the OpenAPI."""

from __future__ import annotations

import json

import pytest

from dialer.engine import flow
from dialer.engine.actions import send_action
from dialer.engine.attempts import PendingAction
from dialer.engine.identity import AttemptRef, encode_client_state
from dialer.telnyx.client import TelnyxClient
from tests.telnyx.test_client import CCID, FakeTelnyx, client, error, fake

__all__ = ["client", "fake"]  # fixtures
pytestmark = pytest.mark.fast
STATE = encode_client_state(AttemptRef(3, 1), "s1.1.1")


def pending(act: flow.Action) -> PendingAction:
    return PendingAction(1, CCID, "cmd-1", act, {"voice": "female", "language": "en-US"})


def sent(fake: FakeTelnyx) -> list[tuple[str, dict[str, object]]]:
    return [(s.raw_path.rsplit("/", 1)[-1], json.loads(s.body)) for s in fake.seen]


async def test_ssml_is_sent_as_ssml_and_plain_text_as_text(fake: FakeTelnyx,
                                                           client: TelnyxClient) -> None:
    await send_action(client, pending(flow.Action("speak", text="<speak>Hi &amp; bye</speak>",
                                                  client_state=STATE)))
    await send_action(client, pending(flow.Action("speak", text="Hi there", client_state=STATE)))
    await send_action(client, pending(flow.Action(
        "gather", text=" <speak>Press 1</speak>", valid_digits="1", client_state=STATE)))
    (_, ssml), (_, plain), (_, gather) = sent(fake)
    assert ssml["payload_type"] == "ssml" and "payload_type" not in plain
    assert gather["payload_type"] == "ssml"
    assert all(body["client_state"] == STATE and body["command_id"] == "cmd-1"
               for _, body in sent(fake))


async def test_a_refused_prompt_hangs_the_call_up(fake: FakeTelnyx, client: TelnyxClient) -> None:
    # Telnyx refuses the prompt for its content (422 10032): the person would hear silence.
    fake.script.append(error(422, "10032", "voice is not valid", "/voice"))
    await send_action(client, pending(flow.Action("gather", text="Press 1", valid_digits="1",
                                                  client_state=STATE)))
    # Refused before sending (over Telnyx's 3,000 characters once rendered): the same.
    await send_action(client, pending(flow.Action("gather", text="x" * 3001, valid_digits="1",
                                                  client_state=STATE)))
    names = [name for name, _ in sent(fake)]
    assert names == ["gather_using_speak", "hangup", "hangup"]
    hangups = [body for name, body in sent(fake) if name == "hangup"]
    assert all(b["client_state"] == STATE for b in hangups)
    assert hangups[0]["command_id"] == hangups[1]["command_id"] != "cmd-1"  # one per action


async def test_a_call_that_ended_first_is_left_alone(fake: FakeTelnyx,
                                                     client: TelnyxClient) -> None:
    fake.script.append(error(422, "90018", "Call has already ended"))
    await send_action(client, pending(flow.Action("speak", text="Hi", client_state=STATE)))
    assert [name for name, _ in sent(fake)] == ["speak"]

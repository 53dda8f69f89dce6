"""One outcome vocabulary for retry rules and reports, and the pure mapping from what Telnyx told
us about a call to that outcome (DESIGN.md, "Outcomes").

`classify` is a function of accumulated facts only, never of the order in which webhooks came, so
duplicates and reordering cannot change an outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

HUMAN = "human"
MACHINE = "machine"
FAX = "fax"
SILENCE = "silence"
BUSY = "busy"
NO_ANSWER = "no_answer"
REJECTED = "rejected"
INVALID_NUMBER = "invalid_number"
FAILED = "failed"
CANCELED = "canceled"
DNC = "dnc"
#: The contact's candidate zones never share an open calling window: it cannot be called legally.
NO_WINDOW = "no_window"
#: On the national DNC registry at dial time (docs/compliance.md).
REGISTRY = "registry"
#: The campaign requires written consent and the contact has none.
NO_CONSENT = "no_consent"

ALL_OUTCOMES = (HUMAN, MACHINE, FAX, SILENCE, BUSY, NO_ANSWER, REJECTED, INVALID_NUMBER, FAILED,
                CANCELED, DNC, NO_WINDOW, REGISTRY, NO_CONSENT)
RETRYABLE_BY_DEFAULT = (BUSY, NO_ANSWER, MACHINE, SILENCE, FAILED, REJECTED)
ANSWERED_OUTCOMES = (HUMAN, MACHINE, FAX, SILENCE)

#: AMD results (every mode in REFERENCE.md) -> outcome.
AMD_OUTCOMES = {
    "human": HUMAN,
    "human_residence": HUMAN,
    "human_business": HUMAN,
    "machine": MACHINE,
    "fax_detected": FAX,
    "silence": SILENCE,
    "not_sure": SILENCE,
}
#: Greeting results that prove a machine answered (premium may send only the greeting event).
MACHINE_GREETINGS = ("beep_detected",)

_CAUSE_OUTCOMES = {
    "user_busy": BUSY,
    "timeout": NO_ANSWER,
    "no_answer": NO_ANSWER,
    "call_rejected": REJECTED,
    "not_found": INVALID_NUMBER,
}
_SIP_OUTCOMES = {"486": BUSY, "600": BUSY, "603": REJECTED, "404": INVALID_NUMBER,
                 "480": NO_ANSWER, "408": NO_ANSWER}
_ANSWERED_CAUSES = ("normal_clearing", "time_limit")


@dataclass(frozen=True)
class CallFacts:
    """What is known about one attempt's call, however the events arrived."""

    answered: bool = False
    amd_result: str | None = None
    greeting_result: str | None = None
    hangup_cause: str | None = None
    sip_hangup_cause: str | None = None
    hangup_source: str | None = None
    canceled: bool = False


def was_answered(answered_event_seen: bool, hangup_cause: str | None,
                 sip_hangup_cause: str | None, amd_result: str | None) -> bool:
    """Answered if we saw call.answered, an AMD result, or a hangup that only follows an answer."""
    return (
        answered_event_seen
        or amd_result is not None
        or sip_hangup_cause == "200"
        or (hangup_cause in _ANSWERED_CAUSES and sip_hangup_cause in (None, "200", "unspecified"))
    )


def classify(facts: CallFacts) -> str:
    """The outcome of one ended call."""
    if facts.amd_result is not None and facts.amd_result in AMD_OUTCOMES:
        return AMD_OUTCOMES[facts.amd_result]
    if facts.greeting_result in MACHINE_GREETINGS:
        return MACHINE
    if facts.answered:
        return HUMAN
    if facts.canceled:
        return CANCELED
    if facts.hangup_cause in _CAUSE_OUTCOMES:
        return _CAUSE_OUTCOMES[facts.hangup_cause]
    if facts.sip_hangup_cause in _SIP_OUTCOMES:
        return _SIP_OUTCOMES[facts.sip_hangup_cause]
    # unspecified, SIP 403 channel limit, originator_cancel before answer, anything unknown.
    return FAILED


def dial_error_outcome(status: int, codes: list[str]) -> str:
    """Outcome of a dial the API refused (422): a bad number is final, anything else failed."""
    if status == 422 and "10016" in codes:
        return INVALID_NUMBER
    return FAILED

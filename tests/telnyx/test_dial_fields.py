"""The Dial field table against the official OpenAPI document, and its validation rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from campaigns.telnyx_schema.dial import (
    CAMPAIGN_DIAL_FIELDS,
    DIAL_FIELDS,
    NESTED_FIELDS,
    SECRET_DIAL_FIELDS,
    validate_campaign_dial_settings,
    validate_dial_request,
)
from campaigns.telnyx_schema.fields import BAD_ENUM, INVALID, MISSING, NOT_E164, OUT_OF_RANGE
from tests.openapi import openapi, schema_errors

MINIMAL = {"to": "+18005550100", "from": "+18005550101", "connection_id": "7267xxxxxxxxxxxxxx"}

# Every field set to a valid value (media_name is left out: it excludes audio_url).
FULL: dict[str, Any] = {
    **MINIMAL,
    "from_display_name": "Acme Clinic - Reminders!",
    "audio_url": "https://example.com/message.wav",
    "preferred_codecs": "G722,PCMU",
    "timeout_secs": 45,
    "time_limit_secs": 600,
    "answering_machine_detection": "detect_words",
    "answering_machine_detection_config": {
        "total_analysis_time_millis": 5000,
        "after_greeting_silence_millis": 800,
        "between_words_silence_millis": 50,
        "greeting_duration_millis": 3500,
        "initial_silence_millis": 3500,
        "maximum_number_of_words": 5,
        "maximum_word_length_millis": 3500,
        "silence_threshold": 256,
        "greeting_total_analysis_time_millis": 5000,
        "greeting_silence_duration_millis": 1500,
    },
    "conference_config": {
        "conference_name": "town-hall", "early_media": False, "beep_enabled": "on_enter",
        "id": "0ccc7b54-4df3-4bca-a65a-3da1ecc777f0", "whisper_call_control_ids": ["v3:abc"],
    },
    "custom_headers": [{"name": "X-Campaign", "value": "42"}],
    "billing_group_id": "f5586561-8ff0-4291-a0ac-84fe544797bd",
    "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
    "command_id": "891510ac-f3e4-11e8-af5b-de00688a4901",
    "link_to": "v3:other",
    "bridge_intent": True,
    "bridge_on_answer": True,
    "park_after_unbridge": "self",
    "media_encryption": "SRTP",
    "sip_auth_username": "user",
    "sip_auth_password": "hunter2",
    "sip_headers": [{"name": "User-to-User", "value": "12345"}],
    "sip_transport_protocol": "TLS",
    "sound_modifications": {"pitch": 0.8, "semitone": -2, "octaves": 0.1, "track": "both"},
    "stream_url": "wss://example.com/stream",
    "stream_track": "both_tracks",
    "stream_codec": "PCMA",
    "stream_bidirectional_mode": "rtp",
    "stream_bidirectional_codec": "G722",
    "stream_bidirectional_target_legs": "both",
    "stream_bidirectional_sampling_rate": 16000,
    "stream_establish_before_call_originate": True,
    "send_silence_when_idle": True,
    "webhook_url": "https://example.com/webhooks/telnyx",
    "webhook_url_method": "POST",
    "record": "record-from-answer",
    "record_channels": "single",
    "record_format": "wav",
    "record_max_length": 1000,
    "record_timeout_secs": 100,
    "record_track": "outbound",
    "record_trim": "trim-silence",
    "record_custom_file_name": "reminder",
    "supervise_call_control_id": "v3:supervised",
    "supervisor_role": "whisper",
    "enable_dialogflow": False,
    "dialogflow_config": {"analyze_sentiment": True, "partial_automated_agent_reply": False},
    "transcription": True,
    "transcription_config": {"transcription_engine": "Google", "transcription_tracks": "both",
                             "client_state": "aGk="},
    "sip_region": "Europe",
    "retry_on_timeout": False,
    "send_digits_on_answer": "wwww200#",
    "privacy": "id",
    "prevent_double_bridge": True,
    "webhook_urls": {"call.hangup": "https://example.com/hangup"},
    "webhook_urls_method": "GET",
    "webhook_retries_policies": {"call.hangup": {"retries_ms": [1000, 2000, 5000]}},
    "deepfake_detection": {"enabled": True, "rtp_timeout": 30, "timeout": 15},
    "stream_auth_token": "token",
    "assistant": {"id": "assistant-123"},
    "conversation_relay_config": {"url": "wss://example.com/relay", "greeting": "Hi"},
}


def _call_request() -> dict[str, Any]:
    schema: dict[str, Any] = openapi()["components"]["schemas"]["CallRequest"]
    return schema


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = openapi()["components"]["schemas"][name]
    return node


def _codes(problems: list[Any]) -> list[tuple[str, str]]:
    return [(p.code, p.pointer) for p in problems]


# --- the table against the OpenAPI document ---------------------------------------------------

def test_every_call_request_property_is_in_the_table() -> None:
    properties = set(_call_request()["properties"])
    assert properties - set(DIAL_FIELDS) == set()
    assert set(DIAL_FIELDS) - properties == set()


@pytest.mark.parametrize("name", sorted(DIAL_FIELDS))
def test_enum_and_default_match_the_openapi(name: str) -> None:
    spec = DIAL_FIELDS[name]
    prop = _resolve(_call_request()["properties"][name])
    assert spec.help, f"{name} has no help"
    if "enum" in prop:
        assert spec.enum is not None and set(spec.enum) == set(prop["enum"])
    else:
        assert spec.enum is None
    if "default" in prop:
        assert spec.default == prop["default"]
    if "maximum" in prop:
        assert spec.maximum == prop["maximum"] and spec.minimum == prop["minimum"]
    if "maxLength" in prop:
        assert spec.max_length == prop["maxLength"]
    expected_kind = {"string": "str", "integer": "int", "boolean": "bool", "object": "object",
                     "array": "array"}.get(prop.get("type", ""), "str_or_array")
    assert spec.kind == expected_kind


def test_nested_tables_match_the_openapi() -> None:
    props = _call_request()["properties"]
    for parent, specs in NESTED_FIELDS.items():
        nested = _resolve(props[parent])["properties"]
        assert set(specs) == set(nested), parent
        for key, spec in specs.items():
            if "default" in nested[key]:
                assert spec.default == nested[key]["default"], f"{parent}.{key}"
            if "enum" in nested[key]:
                assert spec.enum is not None and set(spec.enum) == set(nested[key]["enum"])


def test_documented_ranges() -> None:
    assert (DIAL_FIELDS["timeout_secs"].minimum, DIAL_FIELDS["timeout_secs"].maximum) == (5, 600)
    assert (DIAL_FIELDS["record_max_length"].minimum,
            DIAL_FIELDS["record_max_length"].maximum) == (0, 43200)
    assert DIAL_FIELDS["from_display_name"].max_length == 128
    assert (DIAL_FIELDS["record_custom_file_name"].min_length,
            DIAL_FIELDS["record_custom_file_name"].max_length) == (1, 40)


def test_campaign_and_secret_sets() -> None:
    per_call = {"to", "from", "connection_id", "client_state", "command_id", "link_to",
                "bridge_intent", "bridge_on_answer", "park_after_unbridge",
                "supervise_call_control_id", "supervisor_role"}
    assert set(DIAL_FIELDS) >= CAMPAIGN_DIAL_FIELDS
    assert not per_call & CAMPAIGN_DIAL_FIELDS
    assert {"timeout_secs", "answering_machine_detection", "audio_url", "webhook_url",
            "custom_headers", "sip_auth_password"} <= CAMPAIGN_DIAL_FIELDS
    assert {"sip_auth_password", "stream_auth_token"} <= SECRET_DIAL_FIELDS
    assert all(DIAL_FIELDS[n].secret for n in SECRET_DIAL_FIELDS)


# --- accepted bodies are valid for the OpenAPI schema ----------------------------------------

ACCEPTED = [
    MINIMAL,
    FULL,
    {**MINIMAL, "media_name": "greeting"},
    {**MINIMAL, "to": "sip:alice@sip.telnyx.com;secure=srtp"},
    {**MINIMAL, "to": ["+18005550100", "sips:bob@example.com"]},
    {**MINIMAL, "to": "+18004247767,200"},
    {**MINIMAL, "from_display_name": ""},
    {**MINIMAL, "timeout_secs": 5, "time_limit_secs": 14400, "record_max_length": 0},
    {**MINIMAL, "timeout_secs": 600, "time_limit_secs": 30, "record_max_length": 43200},
    {**MINIMAL, "record_custom_file_name": "x" * 40, "from_display_name": "é" * 128},
    {**MINIMAL, "bridge_intent": False, "bridge_on_answer": False},
    {**MINIMAL, "answering_machine_detection": "premium",
     "answering_machine_detection_config": {"total_analysis_time_millis": 5000}},
]


@pytest.mark.parametrize("body", ACCEPTED, ids=range(len(ACCEPTED)))
def test_accepted_bodies_validate_against_the_openapi(body: dict[str, Any]) -> None:
    assert validate_dial_request(body) == []
    assert schema_errors("CallRequest", body) == []


def test_the_openapi_example_is_accepted() -> None:
    example = copy.deepcopy(_call_request()["example"])
    example["to"] = "sip:username@sip.telnyx.com;secure=srtp"  # the example's `to` is prose
    assert validate_dial_request(example) == []


# --- rejected values ---------------------------------------------------------------------------

REJECTED: list[tuple[dict[str, Any], str, str]] = [
    ({"to": "8005550100"}, NOT_E164, "/to"),
    ({"to": "+0123"}, NOT_E164, "/to"),
    ({"to": "tel:+18005550100"}, NOT_E164, "/to"),
    ({"to": ["+18005550100", "555"]}, NOT_E164, "/to/1"),
    ({"to": ["+18004247767,200"]}, NOT_E164, "/to/0"),
    ({"to": []}, NOT_E164, "/to"),
    ({"to": 18005550100}, INVALID, "/to"),
    ({"from": "18005550101"}, NOT_E164, "/from"),
    ({"from": "+1800555010123456"}, NOT_E164, "/from"),
    ({"from": "sip:a@b"}, NOT_E164, "/from"),
    ({"connection_id": ""}, "10015", "/connection_id"),
    ({"connection_id": None}, MISSING, "/connection_id"),
    ({"timeout_secs": 4}, OUT_OF_RANGE, "/timeout_secs"),
    ({"timeout_secs": 601}, OUT_OF_RANGE, "/timeout_secs"),
    ({"timeout_secs": "30"}, INVALID, "/timeout_secs"),
    ({"timeout_secs": True}, INVALID, "/timeout_secs"),
    ({"time_limit_secs": 29}, OUT_OF_RANGE, "/time_limit_secs"),
    ({"time_limit_secs": 14401}, OUT_OF_RANGE, "/time_limit_secs"),
    ({"record_max_length": -1}, OUT_OF_RANGE, "/record_max_length"),
    ({"record_max_length": 43201}, OUT_OF_RANGE, "/record_max_length"),
    ({"record_custom_file_name": ""}, OUT_OF_RANGE, "/record_custom_file_name"),
    ({"record_custom_file_name": "x" * 41}, OUT_OF_RANGE, "/record_custom_file_name"),
    ({"from_display_name": "x" * 129}, OUT_OF_RANGE, "/from_display_name"),
    ({"from_display_name": "Acme <sales>"}, INVALID, "/from_display_name"),
    ({"answering_machine_detection": "on"}, BAD_ENUM, "/answering_machine_detection"),
    ({"media_encryption": "srtp"}, BAD_ENUM, "/media_encryption"),
    ({"stream_bidirectional_sampling_rate": 44100}, BAD_ENUM,
     "/stream_bidirectional_sampling_rate"),
    ({"sip_region": "Asia"}, BAD_ENUM, "/sip_region"),
    ({"answering_machine_detection_config": {"total_analysis_time_millis": "5000"}}, INVALID,
     "/answering_machine_detection_config/total_analysis_time_millis"),
    ({"answering_machine_detection_config": {"silence_threshold": 2**31}}, OUT_OF_RANGE,
     "/answering_machine_detection_config/silence_threshold"),
    ({"answering_machine_detection_config": {"total_time": 5}}, INVALID,
     "/answering_machine_detection_config/total_time"),
    ({"answering_machine_detection_config": [1]}, INVALID, "/answering_machine_detection_config"),
    ({"custom_headers": [{"name": "X-A"}]}, MISSING, "/custom_headers/0/value"),
    ({"custom_headers": ["X-A: 1"]}, INVALID, "/custom_headers/0"),
    ({"custom_headers": {"name": "X", "value": "1"}}, INVALID, "/custom_headers"),
    ({"sip_headers": [{"name": "X-Other", "value": "1"}]}, BAD_ENUM, "/sip_headers/0/name"),
    ({"sound_modifications": {"pitch": 0}}, OUT_OF_RANGE, "/sound_modifications/pitch"),
    ({"sound_modifications": {"pitch": "0.8"}}, INVALID, "/sound_modifications/pitch"),
    ({"sound_modifications": {"semitone": 15}}, OUT_OF_RANGE, "/sound_modifications/semitone"),
    ({"conference_config": {"beep_enabled": "sometimes"}}, BAD_ENUM,
     "/conference_config/beep_enabled"),
    ({"deepfake_detection": {"timeout": 15}}, MISSING, "/deepfake_detection/enabled"),
    ({"deepfake_detection": {"enabled": True, "timeout": 61}}, OUT_OF_RANGE,
     "/deepfake_detection/timeout"),
    ({"assistant": {"name": "x"}}, MISSING, "/assistant/id"),
    ({"conversation_relay_config": {}}, MISSING, "/conversation_relay_config/url"),
    ({"webhook_retries_policies": {"call.hangup": {"retries_ms": [30000, 31000]}}}, OUT_OF_RANGE,
     "/webhook_retries_policies"),
    ({"webhook_urls": {"call.hangup": "not a url"}}, INVALID, "/webhook_urls"),
    ({"webhook_url": "example.com/hook"}, INVALID, "/webhook_url"),
    ({"billing_group_id": "nope"}, INVALID, "/billing_group_id"),
    ({"send_digits_on_answer": "12x"}, INVALID, "/send_digits_on_answer"),
    ({"stream_auth_token": "x" * 4001}, OUT_OF_RANGE, "/stream_auth_token"),
    ({"client_state": "not base64!"}, INVALID, "/client_state"),
    ({"client_state": "abc"}, INVALID, "/client_state"),
    ({"enable_dialogflow": "yes"}, INVALID, "/enable_dialogflow"),
    ({"record": None}, INVALID, "/record"),
    ({"from_": "+18005550101"}, INVALID, "/from_"),
]


@pytest.mark.parametrize(("change", "code", "pointer"), REJECTED, ids=[r[2] for r in REJECTED])
def test_bad_values_give_the_right_code_and_pointer(
    change: dict[str, Any], code: str, pointer: str
) -> None:
    problems = validate_dial_request({**MINIMAL, **change})
    assert _codes(problems) == [(code, pointer)]
    error = problems[0].as_telnyx_error()
    assert error["code"] == code and error["source"]["pointer"] == pointer and error["detail"]


def test_missing_required_fields() -> None:
    assert _codes(validate_dial_request({})) == [
        (MISSING, "/to"), (MISSING, "/from"), (MISSING, "/connection_id")]


def test_unknown_key_suggests_the_right_name() -> None:
    (problem,) = validate_dial_request({**MINIMAL, "timeout_sec": 30})
    assert "timeout_secs" in problem.detail


def test_media_name_and_audio_url_not_together() -> None:
    problems = validate_dial_request({**MINIMAL, "audio_url": "https://x/a.wav",
                                      "media_name": "a"})
    assert _codes(problems) == [(INVALID, "/media_name")]
    assert "audio_url" in problems[0].detail


@pytest.mark.parametrize("field, value", [
    ("bridge_intent", True), ("bridge_on_answer", True), ("park_after_unbridge", "self")])
def test_link_to_required(field: str, value: Any) -> None:
    problems = validate_dial_request({**MINIMAL, field: value})
    assert _codes(problems) == [(MISSING, "/link_to")]
    assert field in problems[0].detail
    assert validate_dial_request({**MINIMAL, field: value, "link_to": "v3:x"}) == []


def test_all_problems_in_field_order() -> None:
    body = {"zzz": 1, "time_limit_secs": 5, "from": "bad", "timeout_secs": 1,
            "to": "+18005550100", "answering_machine_detection": "x"}
    assert [p.pointer for p in validate_dial_request(body)] == [
        "/from", "/connection_id", "/timeout_secs", "/time_limit_secs",
        "/answering_machine_detection", "/zzz"]


# --- campaign settings ---------------------------------------------------------------------

def test_campaign_settings_accept_campaign_fields_and_require_nothing() -> None:
    assert validate_campaign_dial_settings({}) == []
    settings = {k: v for k, v in FULL.items() if k in CAMPAIGN_DIAL_FIELDS}
    assert len(settings) == len(CAMPAIGN_DIAL_FIELDS) - 1  # media_name excludes audio_url
    assert validate_campaign_dial_settings(settings) == []


@pytest.mark.parametrize("field", ["to", "from", "connection_id", "client_state", "command_id",
                                   "link_to", "bridge_on_answer", "supervisor_role"])
def test_campaign_settings_reject_per_call_fields(field: str) -> None:
    (problem,) = validate_campaign_dial_settings({field: FULL[field]})
    assert problem.pointer == f"/{field}"
    assert "per campaign" in problem.detail


def test_campaign_settings_check_values_too() -> None:
    problems = validate_campaign_dial_settings(
        {"timeout_secs": 700, "media_name": "m", "audio_url": "https://x/y.mp3", "colour": "red"})
    assert _codes(problems) == [
        (INVALID, "/media_name"), (OUT_OF_RANGE, "/timeout_secs"), (INVALID, "/colour")]


#: The fast tier (pytest -m fast): no database, no processes.
pytestmark = pytest.mark.fast

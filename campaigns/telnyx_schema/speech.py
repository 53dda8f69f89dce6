"""What the speak and gather_using_speak commands accept for their speech, from the official
OpenAPI (shared/telnyx/call-control.openapi.json beside the checkout): the `language` enum and the
speech providers of the `voice` description."""

from __future__ import annotations

#: `SpeakRequest.language` / `GatherUsingSpeakRequest.language`; any other value is refused with
#: 422 10032 (and the callee would hear nothing).
SPEAK_LANGUAGES = (
    "arb", "cmn-CN", "cy-GB", "da-DK", "de-DE", "en-AU", "en-GB", "en-GB-WLS", "en-IN", "en-US",
    "es-ES", "es-MX", "es-US", "fr-CA", "fr-FR", "hi-IN", "is-IS", "it-IT", "ja-JP", "ko-KR",
    "nb-NO", "nl-NL", "pl-PL", "pt-BR", "pt-PT", "ro-RO", "ru-RU", "sv-SE", "tr-TR",
)
#: The providers of `voice` (`<Provider>.<Model>.<VoiceId>`, or the provider alone for its
#: defaults; `Polly.<VoiceId>` is the older AWS form the `language` description still names);
#: with `service_level: basic` the voice may be `male` or `female`.
VOICE_PROVIDERS = ("AWS", "Polly", "Azure", "ElevenLabs", "Telnyx", "Minimax", "Rime", "Resemble",
                   "Inworld", "FishAudio", "xAI")

"""Settings from the environment (and flags), with secrets that never print themselves."""

from __future__ import annotations

import os
from dataclasses import dataclass


class Secret:
    """A string that shows as *** in repr/str/f-strings; `.reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value or ""

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return "***" if self._value else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# Environment variables the product reads (shown in --help next to their flags).
ENV_DATABASE_URL = "DIALER_DATABASE_URL"
ENV_API_KEY = "TELNYX_API_KEY"
ENV_PUBLIC_KEY = "TELNYX_PUBLIC_KEY"
ENV_API_URL = "TELNYX_API_URL"
ENV_PUBLIC_URL = "DIALER_PUBLIC_URL"
ENV_HOST = "DIALER_HOST"
ENV_PORT = "DIALER_PORT"

DEFAULT_API_URL = "https://api.telnyx.com/v2"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


@dataclass(frozen=True)
class TelnyxSettings:
    api_url: str
    api_key: Secret
    public_key: str | None

    @classmethod
    def from_env(cls) -> TelnyxSettings:
        return cls(
            api_url=os.environ.get(ENV_API_URL, DEFAULT_API_URL),
            api_key=Secret(os.environ.get(ENV_API_KEY)),
            public_key=os.environ.get(ENV_PUBLIC_KEY),
        )

"""The environment variables the product reads, and their defaults."""

from __future__ import annotations

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

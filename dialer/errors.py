"""The one root exception of the `dialer` package.

Library errors (aiohttp, SQLAlchemy, ...) are translated into subclasses at the boundary where they
happen, so callers above only ever catch `DialerError` (and `campaigns.CampaignsError`).
"""


class DialerError(Exception):
    """Root of every error the engine raises on purpose. Its message is written for the user."""

    exit_code = 1


class ConfigurationError(DialerError):
    """A setting (environment variable or flag) is missing or malformed."""


class EngineCrashed(DialerError):
    """A task of `dialer run` stopped on an unexpected error: the engine stopped (exit 1) so a
    supervisor restarts it, rather than running on without the part that failed."""

    exit_code = 1

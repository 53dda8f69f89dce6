"""The dialing engine: Telnyx client, webhook receiver, scheduler and pacer, reconciliation, the
Telnyx simulator and the `dialer` command line. Builds on the `campaigns` domain package."""

from dialer.errors import DialerError

__all__ = ["DialerError"]

"""The one root exception of the `campaigns` package and its user-facing subclasses.

Every subclass carries a message written for the person at the terminal: the CLI prints it as one
line and exits non-zero.
"""


class CampaignsError(Exception):
    """Root of every error the campaign domain raises on purpose."""

    exit_code = 1


class NotFound(CampaignsError):
    """A campaign (or another named thing) does not exist."""


class AlreadyExists(CampaignsError):
    """A name that must be unique is taken."""


class InvalidSettings(CampaignsError):
    """A campaign setting is missing, of the wrong type, or outside its allowed values."""


class IllegalTransition(CampaignsError):
    """A campaign state change that the state machine does not allow."""


class DatabaseNotReady(CampaignsError):
    """The database has no schema yet, or an older one: `dialer db upgrade` fixes it."""


class DatabaseUnavailable(CampaignsError):
    """The database cannot be reached (down, wrong URL, wrong password)."""


class ImportFailed(CampaignsError):
    """A contact file could not be imported; nothing was written."""


class ReportError(CampaignsError):
    """A report cannot be produced as asked (unwritable path, a binary format without a file)."""


class UnsafeOutput(CampaignsError):
    """A file the user named for output would destroy data (the database, the input, a device)
    or cannot be created where asked (no such folder)."""

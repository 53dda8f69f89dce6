"""The campaign domain: campaigns, contacts, import, DNC, calling windows, outcomes, retry policy,
reports. No HTTP here: the engine (`dialer`) talks to Telnyx; this package owns the data and the
rules.
"""

from campaigns.errors import CampaignsError

__all__ = ["CampaignsError"]

"""Compliance rules at dial time: state calling hours, caps, holidays, blackouts, the DNC lists
and consent, decided by one pure function (`decide`) for the claim and the preview alike."""

from campaigns.compliance.decide import (
    ALLOWED,
    BLOCKED,
    DEFERRED,
    CampaignRules,
    ContactFacts,
    Decision,
    RecentCalls,
    decide,
)
from campaigns.compliance.ruleset import Blackout, RuleSet, RulesFileError, load_rules

__all__ = ["ALLOWED", "BLOCKED", "DEFERRED", "Blackout", "CampaignRules", "ContactFacts",
           "Decision", "RecentCalls", "RuleSet", "RulesFileError", "decide", "load_rules"]

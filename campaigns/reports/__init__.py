"""Campaign reports: per-contact and per-attempt exports (csv, jsonl, xlsx, parquet), the summary,
and the HTML report with charts. Streams from the database; no network I/O.

Public API: `write_report`, `summary` (async), `resolve_format`, `ReportResult`,
`CampaignSummary`. docs/reports.md documents the columns and the definitions.
"""

from campaigns.reports.api import FORMATS, ReportResult, resolve_format, summary, write_report
from campaigns.reports.summary import CampaignSummary, OutcomeCount

__all__ = ["FORMATS", "CampaignSummary", "OutcomeCount", "ReportResult", "resolve_format",
           "summary", "write_report"]

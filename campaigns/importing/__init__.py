"""Contact import: reading CSV/XLSX files, column mapping, phone normalisation, the pipeline.

Public entry points:

* `import_contacts(session, campaign, path, ImportOptions(...), progress)` -> `ImportSummary`
* `PhoneNormalizer(region)` / `reference(raw, region)`: phone numbers as phonenumbers sees them
* `map_columns(...)`, `original_row(...)`: which column is what, and a contact's row as uploaded
"""

from campaigns.importing.columns import ColumnMapping, map_columns, original_row
from campaigns.importing.phones import PhoneNormalizer, PhoneResult, reference
from campaigns.importing.pipeline import ImportOptions, ImportSummary, import_contacts

__all__ = [
    "ColumnMapping",
    "ImportOptions",
    "ImportSummary",
    "PhoneNormalizer",
    "PhoneResult",
    "import_contacts",
    "map_columns",
    "original_row",
    "reference",
]

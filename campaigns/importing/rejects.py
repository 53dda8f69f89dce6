"""The rejects report of an import: refused rows with why, as a formula-safe CSV.

Written to a temp file next to the target (checked by `campaigns.output_paths`: never the
database, the input or a device, never in a missing folder) and moved into place only when the
import succeeds. Every text cell that a spreadsheet could run as a formula is quote-prefixed, as
in the report's CSV (`campaigns.reports.safety`).
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from campaigns.errors import ImportFailed
from campaigns.output_paths import check_output_path
from campaigns.reports.safety import csv_text, csv_text_array


class RejectsWriter:
    """The rejects report, written to a temporary file next to the target and moved into place
    when the import succeeds."""

    def __init__(self, target: Path, columns: tuple[str, ...], delimiter: str,
                 protect: Sequence[tuple[Path, str]] = ()) -> None:
        self.target = target
        self.columns = columns
        self.delimiter = delimiter or ","
        self.protect = tuple(protect)
        check_output_path(target, "the rejects file", self.protect)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                       dir=str(target.parent))
        except OSError as exc:
            raise self._failed(exc) from None
        os.close(fd)
        self.tmp = Path(tmp)
        names = ["row", "reason", "duplicate_of_row", "detail", *columns]
        self.writer: pacsv.CSVWriter | None = None
        header = io.StringIO()
        csv.writer(header, lineterminator="\n").writerow([csv_text(n) for n in names])
        try:
            self.sink = pa.OSFile(str(self.tmp), "wb")
            self.sink.write(header.getvalue().encode())
        except OSError as exc:
            self.tmp.unlink(missing_ok=True)
            raise self._failed(exc) from None

    def _failed(self, exc: OSError) -> ImportFailed:
        reason = exc.strerror or str(exc).split("] ")[-1] or type(exc).__name__
        return ImportFailed(f"cannot write the rejects file {str(self.target)!r}: {reason}")

    def write_table(self, table: pa.Table) -> None:
        """Rows with the columns: row, reason, duplicate_of_row, detail, original cells."""
        if table.num_rows == 0:
            return
        table = formula_safe(table)
        try:
            if self.writer is None:
                self.writer = pacsv.CSVWriter(self.sink, table.schema,
                                              write_options=pacsv.WriteOptions(
                                                  include_header=False, quoting_style="needed"))
            self.writer.write_table(table)
        except OSError as exc:
            raise self._failed(exc) from None

    def close(self, keep: bool) -> None:
        try:
            try:
                if self.writer is not None:
                    self.writer.close()
                self.sink.close()
            except OSError as exc:
                if keep:
                    raise self._failed(exc) from None
            if keep:
                check_output_path(self.target, "the rejects file", self.protect)
                os.replace(self.tmp, self.target)
        finally:
            self.tmp.unlink(missing_ok=True)


def formula_safe(table: pa.Table) -> pa.Table:
    """The table with every text cell rendered as the report's CSV renders it
    (`campaigns.reports.safety`): a value a spreadsheet could run as a formula gets a `'`."""
    cols = [csv_text_array(col) if pa.types.is_string(col.type) else col
            for col in table.columns]
    return pa.Table.from_arrays(cols, schema=table.schema)

"""Reading the score tables (``OUT/scores/<domain>/<rank>.parquet``) in bounded memory.

A stage that needs every score of a domain at once (a threshold, a quantile) reads one column
into one preallocated array (8 bytes a document for float64); a stage that only counts streams
the columns it needs batch by batch. Row counts come from the parquet footers, without reading
any data.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow.parquet as pq

from ai_filters.selection.folder import SelectionFolder, parquet_file

BATCH_ROWS = 1 << 20


class ScoreTables:
    """The score tables of one selection folder, by domain."""

    def __init__(self, folder: SelectionFolder) -> None:
        self.folder = folder
        self.files = folder.score_tables()

    @property
    def domains(self) -> list[str]:
        return list(self.files)

    def _footer(self, path: str) -> pq.FileMetaData:
        return parquet_file(path).metadata

    def rows(self, domain: str) -> int:
        """Documents in the tables of ``domain`` (from the footers)."""
        return sum(self._footer(path).num_rows for path in self.files.get(domain, []))

    def columns(self, domain: str) -> list[str]:
        """The columns of the domain's tables (those of its first file)."""
        files = self.files.get(domain, [])
        return self._footer(files[0]).schema.to_arrow_schema().names if files else []

    def column(self, domain: str, name: str, dtype: type = np.float64) -> np.ndarray:
        """Every value of column ``name`` of ``domain``, in one array of ``dtype``; a null
        (a document without that field) is an error naming the file."""
        values = np.empty(self.rows(domain), dtype=dtype)
        start = 0
        for path, batch in self._batches(domain, [name]):
            column = batch.column(0)
            if column.null_count:
                raise ValueError(f"{path}: {column.null_count} rows lack '{name}'")
            values[start : start + len(column)] = column.to_numpy(zero_copy_only=False)
            start += len(column)
        return values

    def batches(self, domain: str, names: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
        """The columns ``names`` of ``domain``, batch by batch, as numpy arrays (nulls: NaN)."""
        for _, batch in self._batches(domain, names):
            yield {
                name: batch.column(index).to_numpy(zero_copy_only=False)
                for index, name in enumerate(names)
            }

    def _batches(self, domain: str, names: Sequence[str]):
        for path in self.files.get(domain, []):
            table = parquet_file(path)
            for batch in table.iter_batches(batch_size=BATCH_ROWS, columns=list(names)):
                yield path, batch
            table.close()

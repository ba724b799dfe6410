"""The selected and rejected documents in the Hub's layout, one flat column per field.

``OUT/selected/data/<domain>/<rank>.parquet`` (and ``rejected``) hold ``text``, ``id``,
``domain``, the scorer's fields (its score, the losses, then the token counts), then the rest of
the document's metadata, each its own column: what FineWeb-Edu publishes and what datatrove's
``ParquetWriter(expand_metadata=True)`` writes, so that the dataset viewer shows the score and
users filter on it.

datatrove's own writer takes each file's schema from its first document and converts every
later batch by itself, so a field that is null in the first document or missing from a batch
stops the task. Here the known columns have fixed types and the others are typed from a file's
first batch (a field null throughout it, or holding values of several kinds, is stored as
JSON text). A field first met after that batch is left out of the file and counted in the
step's stats (``field_dropped/<name>``); a value that does not fit its column's type stops the
task with one line naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document
from datatrove.io import DataFolderLike
from datatrove.pipeline.writers import ParquetWriter
from datatrove.utils.logging import logger

from ai_filters.blocks.score_table import table_schema
from ai_filters.selection.folder import HUB_SHARD

SHADOWED_PREFIX = "metadata_"  # a metadata key named like a leading column is kept under this


def flat_row(document: Document, fields: Sequence[str]) -> dict:
    """``text``, ``id``, ``domain``, ``fields`` in order, then the rest of the metadata."""
    metadata = dict(document.metadata)
    row = {"text": document.text, "id": str(document.id), "domain": metadata.pop("domain", None)}
    for name in fields:
        row[name] = metadata.pop(name, None)
    for key, value in metadata.items():
        row[f"{SHADOWED_PREFIX}{key}" if key in row else key] = value
    return row


def leading_schema(fields: Sequence[str]) -> pa.Schema:
    """The fixed columns: ``text``, then :func:`~ai_filters.blocks.score_table.table_schema`."""
    return pa.schema([pa.field("text", pa.string()), *table_schema(fields)])


def _flat_adapter(writer: HubShardWriter, document: Document) -> dict:
    return flat_row(document, writer.fields)


class HubShardWriter(ParquetWriter):
    """Writes documents as flat parquet rows (see the module docstring).

    Args:
        output_folder: ``OUT/selected`` or ``OUT/rejected`` (local or any URL datatrove writes).
        fields: the scorer's table fields, the score first (``SCORERS[...].table_fields``).
        output_filename: default ``data/<domain>/<rank>.parquet``.
        batch_size: rows per parquet batch; a file's schema comes from its first batch.
    """

    name = "📒 Hub shards"

    def __init__(
        self,
        output_folder: DataFolderLike,
        fields: Sequence[str],
        output_filename: str = HUB_SHARD,
        batch_size: int = 1000,
    ) -> None:
        self.fields = tuple(fields)
        super().__init__(
            output_folder,
            output_filename,
            adapter=_flat_adapter,
            batch_size=batch_size,
            max_file_size=-1,  # one file per domain and task, named as the layout says
        )
        self._handles: dict = {}
        self._json_columns: dict[str, set[str]] = {}

    def _write(self, document: dict, file_handler, filename: str) -> None:
        self._handles[filename] = file_handler
        self._batches[filename].append(document)
        if len(self._batches[filename]) >= self.batch_size:
            self._write_batch(filename)

    def _write_batch(self, filename: str) -> None:
        rows = self._batches.pop(filename, None)
        if not rows:
            return
        if filename not in self._writers:
            schema, self._json_columns[filename] = self._first_batch_schema(rows)
            self._writers[filename] = pq.ParquetWriter(
                self._handles[filename],
                schema,
                compression=self.compression,
                use_content_defined_chunking=self.use_content_defined_chunking,
                write_page_index=self.write_page_index,
            )
        writer = self._writers[filename]
        batch = self._fit(rows, writer.schema, self._json_columns[filename], filename)
        writer.write_batch(batch)

    def close(self) -> None:
        for filename in list(self._batches):
            self._write_batch(filename)
        super().close()

    def _first_batch_schema(self, rows: list[dict]) -> tuple[pa.Schema, set[str]]:
        leading = leading_schema(self.fields)
        names = list(dict.fromkeys(key for row in rows for key in row if key not in leading.names))
        fields, as_json = list(leading), set()
        for name in names:
            kind = _column_type([row.get(name) for row in rows])
            if kind is None:
                as_json.add(name)
            fields.append(pa.field(name, kind or pa.string()))
        return pa.schema(fields), as_json

    def _fit(
        self, rows: list[dict], schema: pa.Schema, as_json: set[str], filename: str
    ) -> pa.RecordBatch:
        for name in dict.fromkeys(key for row in rows for key in row if key not in schema.names):
            self.stat_update(f"field_dropped/{name}")
            logger.warning(f"{filename}: field '{name}' is not in the file's first batch; left out")
        columns = []
        for field in schema:
            values = [row.get(field.name) for row in rows]
            if field.name in as_json:
                values = [_json_text(value) for value in values]
            try:
                columns.append(pa.array(values, type=field.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                raise ValueError(
                    f"{filename}: metadata field '{field.name}' holds a value that is not "
                    f"{field.type} like the file's first rows"
                ) from None
        return pa.RecordBatch.from_arrays(columns, schema=schema)


def _column_type(values: list) -> pa.DataType | None:
    """The Arrow type of a column's values; None (store as JSON text) when all are null or they
    do not share one type."""
    present = [value for value in values if value is not None]
    if not present:
        return None
    kinds = {type(value) for value in present}
    if len(kinds) > 1 and not kinds <= {int, float}:
        return None
    try:
        return pa.array(present).type
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _json_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)

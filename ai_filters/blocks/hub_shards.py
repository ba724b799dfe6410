"""The selected and rejected documents in the Hub's layout, one flat column per field.

``OUT/selected/data/<domain>/<rank>.parquet`` (and ``rejected``) hold ``text``, ``id``,
``domain``, the scorer's fields (its score, the losses, then the token counts), then the rest of
the document's metadata, each its own column: what FineWeb-Edu publishes and what datatrove's
``ParquetWriter(expand_metadata=True)`` writes, so that the dataset viewer shows the score and
users filter on it.

datatrove's own writer takes each file's schema from its first document and converts every
later batch by itself, so a field that is null in the first document or missing from a batch
stops the task. Here the known columns have fixed types and every other field is typed from the
first batch it appears in (a field null throughout that batch, or holding values of several
kinds, is stored as JSON text). Every field of every document is kept: a file's batches go to
a local spill file first, a new one each time a batch brings a field not seen before, and when
the file closes the spill files are copied batch by batch into the output under the union of
their columns (a field a row lacks is null there). That costs one extra local write and read
of each file, never more memory than a batch. A value that does not fit its column's type
stops the task with one line naming the field. The spill files lie in the temporary folder
(``TMPDIR``), which must hold a task's share of the output: when it is full, the task stops with
one line naming the spill file; spill folders are removed whether the task succeeds or fails.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document
from datatrove.io import DataFolderLike

from ai_filters.blocks.parquet_files import CleanFailingParquetWriter, abandon
from ai_filters.blocks.score_table import check_folder_domain, table_schema
from ai_filters.blocks.staged import StagedWrites
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


class HubShardWriter(StagedWrites, CleanFailingParquetWriter):
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
        self._spills: dict[str, _Spill] = {}

    def write(self, document: Document, rank: int = 0, **kwargs) -> None:
        check_folder_domain(document)  # its domain names the folder its row goes to
        super().write(document, rank, **kwargs)

    def _write(self, document: dict, file_handler, filename: str) -> None:
        self._handles[filename] = file_handler
        self._batches[filename].append(document)
        if len(self._batches[filename]) >= self.batch_size:
            self._write_batch(filename)

    def _write_batch(self, filename: str) -> None:
        rows = self._batches.pop(filename, None)
        if not rows:
            return
        spill = self._spills.get(filename)
        if spill is None:
            spill = self._spills[filename] = _Spill(leading_schema(self.fields))
        spill.add_columns(rows)
        spill.write(self._fit(rows, spill.schema, spill.as_json, filename))

    def close(self) -> None:
        """Copy every file's spill into its output and close the outputs. The spill folders
        are removed whatever happens (a full disk here or in the temporary folder)."""
        try:
            for filename in list(self._batches):
                self._write_batch(filename)
            for filename, spill in self._spills.items():  # ParquetWriter.close closes them
                self._writers[filename] = spill.copy_into(self._handles[filename], self._options())
        except BaseException:
            for writer in self._writers.values():
                abandon(writer)
            self._writers.clear()
            raise
        finally:
            for spill in self._spills.values():
                spill.discard()
            self._spills.clear()
        super().close()

    def _options(self) -> dict:
        return {
            "compression": self.compression,
            "use_content_defined_chunking": self.use_content_defined_chunking,
            "write_page_index": self.write_page_index,
        }

    @staticmethod
    def _fit(
        rows: list[dict], schema: pa.Schema, as_json: set[str], filename: str
    ) -> pa.RecordBatch:
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
                    f"{field.type} like the rows where the field first appeared"
                ) from None
        return pa.RecordBatch.from_arrays(columns, schema=schema)


class _Spill:
    """One output file's batches on local disk, in segments of growing schemas."""

    def __init__(self, leading: pa.Schema) -> None:
        self.schema = leading
        self.as_json: set[str] = set()  # columns stored as JSON text
        self._folder = Path(tempfile.mkdtemp(prefix="ai-filters-shard-"))
        self._segments: list[Path] = []
        self._writer: pq.ParquetWriter | None = None

    def add_columns(self, rows: list[dict]) -> None:
        """Extend the schema with the fields of ``rows`` it lacks (typed from these rows); the
        next batch then starts a new segment."""
        new = [
            key
            for key in dict.fromkeys(k for row in rows for k in row)
            if key not in self.schema.names
        ]
        if not new and self._writer is not None:
            return
        for name in new:
            kind = _column_type([row.get(name) for row in rows])
            if kind is None:
                self.as_json.add(name)
            self.schema = self.schema.append(pa.field(name, kind or pa.string()))
        self._close_segment()
        self._segments.append(self._folder / f"{len(self._segments):05d}.parquet")
        with _naming(self._segments[-1]):
            self._writer = pq.ParquetWriter(self._segments[-1], self.schema)

    def write(self, batch: pa.RecordBatch) -> None:
        with _naming(self._segments[-1]):
            self._writer.write_batch(batch)

    def _close_segment(self) -> None:
        if self._writer is not None:
            with _naming(self._segments[-1]):
                self._writer.close()
            self._writer = None

    def copy_into(self, handle, options: dict) -> pq.ParquetWriter:
        """Every segment's batches, in order, under the final schema; the spill folder removed.
        Returns the open writer (its caller closes it with the file)."""
        self._close_segment()
        writer = pq.ParquetWriter(handle, self.schema, **options)
        try:
            for segment in self._segments:
                for batch in pq.ParquetFile(segment).iter_batches():
                    writer.write_batch(_widened(batch, self.schema))
        except BaseException:
            abandon(writer)
            raise
        finally:
            self.discard()
        return writer

    def discard(self) -> None:
        """Remove the spill folder (a segment still being written is abandoned)."""
        if self._writer is not None:
            abandon(self._writer)
            self._writer = None
        shutil.rmtree(self._folder, ignore_errors=True)


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """An ``OSError`` of pyarrow writing ``path`` itself (which names no file: a full temporary
    folder, say) raised again with ``path`` as its filename, so that its one line names it."""
    try:
        yield
    except OSError as error:
        if error.filename is not None:
            raise
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error


def _widened(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with the columns of ``schema`` it lacks, all null."""
    columns = [
        batch.column(field.name)
        if field.name in batch.schema.names
        else pa.nulls(len(batch), field.type)
        for field in schema
    ]
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

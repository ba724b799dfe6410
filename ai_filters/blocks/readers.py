"""Reading a corpus of several domains with datatrove's readers, losing no record.

:class:`DomainsReader` reads every domain of a domains file (see :mod:`ai_filters.domains`), each
sharded over the same tasks, sets ``metadata["domain"]`` and counts every record read under the
stat ``read_<domain>``. Unlike datatrove's own readers it loses no record: a record whose text
is empty, missing or not a string, and a line or file that cannot be parsed, flow on as
documents (the scorer then skips them with a reason), so that read = scored + skipped holds.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping
from pathlib import Path

import orjson
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers import JsonlReader, ParquetReader
from datatrove.pipeline.readers.base import BaseReader

from ai_filters.documents import parse_json_line, repair_strings, unreadable
from ai_filters.domains import check_spec
from ai_filters.selection.folder import READ_STAT


def broken_bytes(error: BaseException) -> bool:
    """Whether ``error`` says a file's bytes are broken (truncated or corrupt compression, a
    corrupt parquet page), not that the file system or the network failed.

    Decoders (gzip, bz2, pyarrow) report broken bytes as ``EOFError``, ``zlib.error``,
    ``gzip.BadGzipFile`` or a bare ``OSError``; connection, timeout and missing-file errors are
    ``OSError`` subclasses, and those must fail the task so that a rerun retries the file.
    """
    return isinstance(error, EOFError | zlib.error | gzip.BadGzipFile) or type(error) is OSError


class _KeepsEveryRecord:
    """Mixin for a datatrove disk reader: every record becomes a document, none is lost.

    datatrove 0.10.1 drops a record whose text is empty or missing (one warning, no stat) and
    fails on text that is not a string (its length stats take ``len(text)``). Here such a
    record becomes a document whose ``text`` is the record's value (``""``, ``None`` when the
    key is missing, or the non-string value), left out of the length stats. Input that cannot
    be parsed becomes an *unreadable* document (see :meth:`_unreadable`). ``limit`` and
    ``skip`` count all of these documents.
    """

    def get_document_from_dict(self, data: dict, source_file: str, id_in_file: int | str):
        text = data.get(self.text_key)
        if isinstance(text, str) and text:
            return super().get_document_from_dict(data, source_file, id_in_file)
        stand_in = {**data, self.text_key: "-"}  # datatrove's adapter needs some text
        document = super().get_document_from_dict(stand_in, source_file, id_in_file)
        document.text = text
        return document

    def update_doc_stats(self, document: Document) -> None:
        if has_text(document):
            super().update_doc_stats(document)

    def _unreadable(self, filepath: str, line: int | None, detail: str) -> Document:
        """The document standing for unparsable input: empty text, and in its metadata
        ``skip_reason="unreadable"``, ``skip_detail``, ``source_file`` and ``source_line``
        (as ``ai-filters score`` writes them)."""
        record = unreadable(Path(self.data_folder.resolve_paths(filepath)), line, detail)
        return Document(text="", id=record["id"], metadata=record["metadata"])


class EveryRecordJsonlReader(_KeepsEveryRecord, JsonlReader):
    """datatrove's ``JsonlReader`` that turns every line into a document (see the mixin).

    datatrove skips a line that orjson cannot parse with a warning (lone surrogates escaped in
    the JSON among them), stops reading a file at invalid UTF-8 and fails on a truncated
    ``.gz`` or a line holding a JSON array. Here lone surrogates are parsed (by the json
    module), any other bad line becomes an unreadable document naming its file and line, and a
    file that cannot be read to its end yields the documents before the break and one
    unreadable document. Media are not decoded.
    """

    def read_file(self, filepath: str) -> DocumentsPipeline:
        index = -1
        try:
            with self.data_folder.open(filepath, "rb", compression=self.compression) as lines:
                for index, raw in enumerate(lines):
                    if raw.strip():
                        yield self._line_document(filepath, index, raw)
        except (EOFError, OSError, zlib.error) as error:
            if not broken_bytes(error):
                raise
            line = None if index < 0 else index + 1
            yield self._unreadable(filepath, line, f"cannot read further: {error}")

    def _line_document(self, filepath: str, index: int, raw: bytes) -> Document:
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError:
            row = None
        if not isinstance(row, dict):  # the json module reads lone surrogates, or says why not
            row = parse_json_line(raw)
            if isinstance(row, str):
                return self._unreadable(filepath, index, row)
            row = self._repair_fields(row)
        return self.get_document_from_dict(row, filepath, index)

    def _repair_fields(self, row: dict) -> dict:
        """Lone surrogates outside the text (writers cannot store them) become U+FFFD, and the
        row gets ``fields_repaired``; the text is left to the scorer (``untokenizable_text``)."""
        fields, repaired = repair_strings({k: v for k, v in row.items() if k != self.text_key})
        if not repaired:
            return row
        text = {self.text_key: row[self.text_key]} if self.text_key in row else {}
        return {**fields, "fields_repaired": True, **text}


class EveryRecordParquetReader(_KeepsEveryRecord, ParquetReader):
    """datatrove's ``ParquetReader`` that keeps every row (see the mixin); a file that cannot
    be read to its end yields the rows before the break and one unreadable document."""

    def read_file(self, filepath: str) -> DocumentsPipeline:
        import pyarrow as pa

        rows = 0
        try:
            for document in super().read_file(filepath):
                rows += 1
                yield document
        except (pa.ArrowException, OSError) as error:
            if isinstance(error, OSError) and not broken_bytes(error):
                raise
            yield self._unreadable(filepath, None, f"corrupt parquet after {rows} rows: {error}")


READERS = {"jsonl": EveryRecordJsonlReader, "parquet": EveryRecordParquetReader}  # READER_NAMES


def has_text(document: Document) -> bool:
    """Whether the document's text is a non-empty string."""
    return isinstance(document.text, str) and bool(document.text)


def build_reader(domain: str, spec: Mapping, progress: bool = False) -> BaseReader:
    """The datatrove reader of one domain; its documents carry ``metadata["domain"]``.

    It yields every record, those without usable text and unparsable input included (see
    :class:`EveryRecordJsonlReader`); with ``progress``, datatrove's own progress bars of files
    and documents.
    """
    check_spec(domain, spec)
    return READERS[spec["reader"]](
        spec["path"],
        glob_pattern=spec.get("glob"),
        text_key=spec.get("text_key", "text"),
        id_key=spec.get("id_key", "id"),
        limit=spec.get("limit", -1),
        default_metadata={"domain": domain},
        doc_progress=progress,
        file_progress=progress,
    )


class DomainsReader(PipelineStep):
    """Reads every domain in turn; task ``rank`` reads its shard of each domain's files.

    Every record read counts under the stat ``read_<domain>``, unparsable input included (see
    :class:`EveryRecordJsonlReader`). A document without usable text (empty, missing, not a
    string, or unreadable input) is yielded (``keep_textless``, the default: the scorer then
    skips it with a reason), or, for pipelines that cannot use it (tokenization), dropped and
    counted under ``dropped_no_text_<domain>``.
    """

    _requires_dependencies = ["orjson", "pyarrow"]

    name = "📖 domains reader"
    type = "📖 - READER"

    def __init__(
        self, specs: Mapping[str, Mapping], keep_textless: bool = True, progress: bool = False
    ) -> None:
        super().__init__()
        self.readers = {
            domain: build_reader(domain, spec, progress) for domain, spec in specs.items()
        }
        self.keep_textless = keep_textless

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        if data:
            yield from data
        for domain, reader in self.readers.items():
            for document in reader.run(None, rank, world_size):
                document.metadata["domain"] = domain
                self.stat_update(READ_STAT.format(domain=domain))
                if self.keep_textless or has_text(document):
                    yield document
                else:
                    self.stat_update(f"dropped_no_text_{domain}")

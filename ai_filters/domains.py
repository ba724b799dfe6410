"""Domains of a corpus: which datatrove reader reads each one.

A domains file is YAML mapping each domain name to a reader spec::

    web:
      reader: parquet            # jsonl | parquet
      path: hf://datasets/HuggingFaceTB/smollm-corpus/fineweb-edu-dedup
      glob: "*.parquet"          # optional
      text_key: text             # optional
      id_key: id                 # optional
      limit: -1                  # optional: documents per task, -1 = all

Every document read gets ``metadata["domain"]`` set to its domain's name.
:class:`DomainsReader` reads all domains in one pipeline step, each sharded over the same tasks,
and counts every record it reads under the stat ``read_<domain>``. Unlike datatrove's own
readers it loses no record: one whose text is empty, missing or not a string, and a line or
file that cannot be parsed, flow on as documents (to be skipped by the scorer with a reason),
so that read = scored + skipped holds.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Mapping
from pathlib import Path

import orjson
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers import JsonlReader, ParquetReader
from datatrove.pipeline.readers.base import BaseReader

from ai_filters.documents import parse_json_line, repair_strings, unreadable

SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")
SPEC_KEYS = {"reader", "path", "glob", "text_key", "id_key", "limit"}

# The paper's corpus (DESIGN.md section 1). Python-Edu on the Hub holds only Software Heritage
# blob ids, not text: fetch the files first and point the "code" domain at them.
SMOLLM_CORPUS = {
    "web": {
        "reader": "parquet",
        "path": "hf://datasets/HuggingFaceTB/smollm-corpus/fineweb-edu-dedup",
    },
    "textbook": {
        "reader": "parquet",
        "path": "hf://datasets/HuggingFaceTB/smollm-corpus/cosmopedia-v2",
    },
    "math": {"reader": "parquet", "path": "hf://datasets/open-web-math/open-web-math/data"},
}


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


READERS = {"jsonl": EveryRecordJsonlReader, "parquet": EveryRecordParquetReader}


def has_text(document: Document) -> bool:
    """Whether the document's text is a non-empty string."""
    return isinstance(document.text, str) and bool(document.text)


class DomainSpecError(ValueError):
    """A domains file or spec is malformed."""


def load_domains(path: str | Path) -> dict[str, dict]:
    """Read and check a YAML domains file (format in the module docstring)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DomainSpecError(f"domains file {path} does not exist")
    specs = yaml.safe_load(path.read_text())
    if not isinstance(specs, Mapping) or not specs:
        raise DomainSpecError(f"{path}: expected a mapping of domain name -> reader spec")
    for domain, spec in specs.items():
        check_spec(str(domain), spec, str(path))
    return {str(domain): dict(spec) for domain, spec in specs.items()}


def check_spec(domain: str, spec: object, where: str = "domains") -> None:
    """Raise :class:`DomainSpecError` with a precise message when ``spec`` is not valid."""
    if not SAFE_NAME.fullmatch(domain) or domain in (".", ".."):
        raise DomainSpecError(
            f"{where}: domain name '{domain}' is used in output paths: use letters, digits, "
            "'.', '_' or '-' only"
        )
    if not isinstance(spec, Mapping):
        raise DomainSpecError(f"{where}: domain '{domain}' must map to a reader spec")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise DomainSpecError(
            f"{where}: domain '{domain}' has unknown keys {sorted(unknown)}; "
            f"allowed: {sorted(SPEC_KEYS)}"
        )
    if spec.get("reader") not in READERS:
        raise DomainSpecError(
            f"{where}: domain '{domain}' needs reader: one of {', '.join(READERS)}"
        )
    if not spec.get("path"):
        raise DomainSpecError(f"{where}: domain '{domain}' needs a path")


def build_reader(domain: str, spec: Mapping) -> BaseReader:
    """The datatrove reader of one domain; its documents carry ``metadata["domain"]``.

    It yields every record, those without usable text and unparsable input included (see
    :class:`EveryRecordJsonlReader`).
    """
    check_spec(domain, spec)
    return READERS[spec["reader"]](
        spec["path"],
        glob_pattern=spec.get("glob"),
        text_key=spec.get("text_key", "text"),
        id_key=spec.get("id_key", "id"),
        limit=spec.get("limit", -1),
        default_metadata={"domain": domain},
    )


class DomainsReader(PipelineStep):
    """Reads every domain in turn; task ``rank`` reads its shard of each domain's files.

    Every record read counts under the stat ``read_<domain>``, unparsable input included (see
    :class:`EveryRecordJsonlReader`). A document without usable text (empty, missing, not a
    string, or unreadable input) is yielded (``keep_textless``, the default: the scorer then
    skips it with a reason), or, for pipelines that cannot use it (tokenization), dropped and
    counted under ``dropped_no_text_<domain>``.
    """

    name = "📖 domains reader"
    type = "📖 - READER"

    def __init__(self, specs: Mapping[str, Mapping], keep_textless: bool = True) -> None:
        super().__init__()
        self.readers = {domain: build_reader(domain, spec) for domain, spec in specs.items()}
        self.keep_textless = keep_textless

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        if data:
            yield from data
        for domain, reader in self.readers.items():
            for document in reader.run(None, rank, world_size):
                document.metadata["domain"] = domain
                self.stat_update(f"read_{domain}")
                if self.keep_textless or has_text(document):
                    yield document
                else:
                    self.stat_update(f"dropped_no_text_{domain}")


def corpus_domains(out: str | Path, demo: bool, domains_file: str | None) -> dict[str, dict]:
    """The domain specs a pipeline reads: the demo corpus written under ``out/corpus/`` (one
    jsonl folder per domain), a domains file, or by default the SmolLM corpus on the Hub."""
    if demo:
        corpus = Path(out).resolve() / "corpus"
        return {
            folder.name: {"reader": "jsonl", "path": str(folder)}
            for folder in sorted(corpus.iterdir())
            if folder.is_dir()
        }
    return load_domains(domains_file) if domains_file else SMOLLM_CORPUS

"""Reading and writing documents in datatrove's layout: ``text``, ``id``, ``metadata``.

Formats are chosen by file name: ``.jsonl``, ``.jsonl.gz`` or ``.parquet``. As in datatrove's
readers, a row's columns other than ``text``, ``id`` and ``metadata`` are moved into
``metadata``, and a row without an id gets ``<file name>/<row index>``. Writers write to a
temporary file beside the target and rename it on success, so a reader never sees a
half-written file under the final name.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from datatrove.io import get_datafolder, open_file

from ai_filters.console import error_line, storage_errors
from ai_filters.fields import SKIP_REASON_KEY, SKIP_UNREADABLE

FORMATS = (".jsonl", ".jsonl.gz", ".parquet")


class DocumentFormatError(ValueError):
    """The file name has no supported extension."""


def document_format(path: str | Path) -> str:
    name = Path(path).name
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    raise DocumentFormatError(f"{path}: unsupported file type; use one of {', '.join(FORMATS)}")


def _as_document(row: dict, text_key: str, default_id: str) -> dict:
    row = dict(row)
    text = row.pop(text_key, None)
    doc_id = row.pop("id", None)
    metadata = row.pop("metadata", None) or {}
    metadata = {**row, **metadata} if isinstance(metadata, dict) else {**row, "metadata": metadata}
    return {"text": text, "id": default_id if doc_id is None else doc_id, "metadata": metadata}


class DocumentReadError(ValueError):
    """A file or a line of it cannot be read (raised in strict mode only)."""


def unreadable(path: str | Path, line: int | None, detail: str) -> dict:
    """The record standing for input that could not be parsed: it names the file and line."""
    name = _file_name(path)
    where = f"{name}/{line}" if line is not None else f"{name}/file"
    metadata = {SKIP_REASON_KEY: SKIP_UNREADABLE, "skip_detail": detail, "source_file": str(path)}
    if line is not None:
        metadata["source_line"] = line + 1
    return {"text": "", "id": where, "metadata": metadata}


def read_documents(
    path: str | Path, text_key: str = "text", strict: bool = False
) -> Iterator[dict]:
    """Yield ``{"text", "id", "metadata"}`` dicts from a jsonl, jsonl.gz or parquet file, a local
    path or a URL datatrove reads (``s3://...``).

    A line that is not valid UTF-8 or not a JSON object, a truncated or corrupt compressed
    file, or a parquet file that cannot be read yields an :func:`unreadable` record (with
    ``metadata["skip_reason"] == "unreadable"``) and reading goes on with the next line (the
    next file, for a broken file). With ``strict``, those raise :class:`DocumentReadError`.
    """
    path = str(path)
    kind = document_format(path)
    reader = _read_parquet(path, text_key) if kind == ".parquet" else _read_jsonl(path, text_key)
    for document in reader:
        metadata = document["metadata"]
        if strict and metadata.get(SKIP_REASON_KEY) == SKIP_UNREADABLE:
            line = f":{metadata['source_line']}" if "source_line" in metadata else ""
            raise DocumentReadError(f"{metadata['source_file']}{line}: {metadata['skip_detail']}")
        yield document


def _file_name(path: str | Path) -> str:
    return str(path).rstrip("/").rsplit("/", 1)[-1]


def _open_binary(path: str) -> IO[bytes]:
    """A local file (gunzipped for ``.gz``), or a URL through fsspec with the same inference."""
    if "://" in path:
        return open_file(path, "rb", compression="infer")
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _read_jsonl(path: str, text_key: str) -> Iterator[dict]:
    index = -1
    try:
        with _open_binary(path) as handle:
            for index, raw in enumerate(handle):
                if raw.strip():
                    yield _parse_line(path, index, raw, text_key)
    except (EOFError, OSError, zlib.error) as error:  # truncated or corrupt gzip stream
        yield unreadable(path, None if index < 0 else index + 1, f"cannot read further: {error}")


def parse_json_line(raw: bytes) -> dict | str:
    """The JSON object on one line of a ``.jsonl`` file, or, as a string, why there is none.

    Lone UTF-16 surrogates escaped in the JSON (``"\\ud800"``) are accepted, as the json
    module does; invalid UTF-8, invalid JSON and a JSON value that is not an object are not.
    """
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        return f"invalid UTF-8 at byte {error.start}"
    except json.JSONDecodeError as error:
        return f"invalid JSON: {error.msg} at column {error.colno}"
    if not isinstance(row, dict):
        return f"a JSON {type(row).__name__}, not an object"
    return row


def _parse_line(path: str, index: int, raw: bytes, text_key: str) -> dict:
    row = parse_json_line(raw)
    if isinstance(row, str):
        return unreadable(path, index, row)
    return _as_document(row, text_key, f"{_file_name(path)}/{index}")


def _read_parquet(path: str, text_key: str) -> Iterator[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = 0
    try:
        source = open_file(path, "rb") if "://" in path else path
        for batch in pq.ParquetFile(source).iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                yield _as_document(row, text_key, f"{_file_name(path)}/{index}")
                index += 1
    except (pa.ArrowException, OSError) as error:
        yield unreadable(path, None, f"corrupt parquet after {index} rows: {error}")


def repair_text(text: str) -> tuple[str, bool]:
    """``text`` with lone UTF-16 surrogates replaced by U+FFFD (they cannot be stored as
    UTF-8), and whether anything was replaced."""
    try:
        text.encode("utf-8")
        return text, False
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"), True


def repair_strings(value: object) -> tuple[object, bool]:
    """``value`` with :func:`repair_text` applied to every string in it (dict keys and values,
    list items, at any depth), and whether anything was replaced."""
    if isinstance(value, str):
        return repair_text(value)
    if isinstance(value, dict):
        pairs = [(repair_text(str(key)), repair_strings(item)) for key, item in value.items()]
        repaired = {key: item for (key, _), (item, _) in pairs}
        return repaired, any(a or b for (_, a), (_, b) in pairs)
    if isinstance(value, list | tuple):
        items = [repair_strings(item) for item in value]
        return [item for item, _ in items], any(flag for _, flag in items)
    return value, False


BUCKET_PREFIX = "hf://buckets/"


def buckets_supported() -> bool:
    """Whether the installed huggingface_hub's file system reads and writes Hub buckets
    (``hf://buckets/<namespace>/<bucket>/...``; huggingface_hub >= 1.6). An older one would
    take ``buckets`` for a namespace and write to a repository instead."""
    from huggingface_hub import hf_file_system

    return hasattr(hf_file_system, "HfFileSystemResolvedBucketPath")


def check_folder_url(folder: str | Path) -> None:
    """``ValueError`` in one line when ``folder`` is an ``hf://buckets/`` URL that the
    installed huggingface_hub cannot use, or that names no bucket; other folders pass."""
    url = str(folder)
    if not url.startswith(BUCKET_PREFIX):
        return
    if not buckets_supported():
        raise ValueError(
            f"{url}: the installed huggingface_hub has no Hub buckets (they need >= 1.6); "
            "upgrade it or use an hf://datasets/ or s3:// folder"
        )
    if len([part for part in url[len(BUCKET_PREFIX) :].split("/") if part]) < 2:
        raise ValueError(f"{url} names no bucket: write hf://buckets/<namespace>/<bucket>/<path>")


def check_writable_folder(folder: str | Path, option: str) -> None:
    """Create ``folder`` if needed (a local path or any URL datatrove writes) and make sure a
    file can be written in it.

    Otherwise (a path under a regular file, a read-only file system, no permission, a bucket
    that does not exist, ...) raise ``OSError`` with one line that names the folder, the
    reason and the ``option`` to change; when the storage is busy (S3's 503 SlowDown, after
    the client's retries) or cannot be reached (connections refused or reset), the line says
    so and to try again, not to change the folder.
    """
    probe = f".write_test.{os.getpid()}"
    try:
        data = get_datafolder(str(folder))
        if data.is_local():
            Path(data.path).mkdir(parents=True, exist_ok=True)
        with data.open(probe, "wt") as file:
            file.write("")
        data.rm(probe)
    except (OSError, ValueError, *storage_errors()) as error:
        if isinstance(error, storage_errors()) or getattr(error, "errno", None) == errno.EBUSY:
            raise OSError(
                f"output folder {folder} cannot be reached now ({error_line(error)}): the "
                "storage is busy or down after the client's retries; try again later"
            ) from error
        reason = "a file is in the way" if isinstance(error, FileExistsError) else None
        reason = reason or getattr(error, "strerror", None) or error_line(error)
        raise OSError(
            f"output folder {folder} cannot be written ({reason}); choose another {option}"
        ) from error


class DocumentWriter:
    """Writes documents to ``path`` (format by extension), atomically on :meth:`close`.

    Use as a context manager; if the block raises, the partial file is removed and the target
    is left untouched.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.kind = document_format(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._staging = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._rows: list[dict] = []
        self._handle: io.TextIOBase | None = None
        self.count = 0
        if self.kind == ".jsonl":
            self._handle = open(self._staging, "w", encoding="utf-8")
        elif self.kind == ".jsonl.gz":
            self._handle = gzip.open(self._staging, "wt", encoding="utf-8")

    def write(self, document: dict) -> None:
        """Write one document. Lone surrogates (which UTF-8 cannot store) are replaced by
        U+FFFD and flagged: in the text with ``text_repaired``, in the id or the metadata with
        ``fields_repaired``."""
        text, text_repaired = repair_text(document["text"])
        doc_id, id_repaired = repair_strings(document["id"])
        metadata, metadata_repaired = repair_strings(document["metadata"])
        if text_repaired:
            metadata["text_repaired"] = True
        if id_repaired or metadata_repaired:
            metadata["fields_repaired"] = True
        row = {"text": text, "id": doc_id, "metadata": metadata}
        if self._handle is not None:
            self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            self._rows.append(row)
        self.count += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        else:
            _write_parquet(self._staging, self._rows)
        os.replace(self._staging, self.path)

    def abort(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._staging.unlink(missing_ok=True)

    def __enter__(self) -> DocumentWriter:
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is None:
            self.close()
        else:
            self.abort()


def _write_parquet(path: Path, rows: list[dict]) -> None:
    """Parquet with ``metadata`` as a struct column, like datatrove's ParquetWriter.

    A metadata dict that is empty for every row is stored as null (parquet has no empty struct).
    A metadata field whose values do not fit one Arrow type (``2020`` in one document, ``"n/a"``
    in another, or nested values that differ) is stored as JSON text in every row, and its name
    is listed in the file's schema metadata under ``ai_filters_json_fields``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows:
        empty = {"text": pa.array([], pa.string()), "id": pa.array([], pa.string())}
        pq.write_table(pa.table(empty), path)
        return
    if not any(row["metadata"] for row in rows):
        rows = [{**row, "metadata": None} for row in rows]
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        fields = _fields_without_one_type(rows)
        rows = [{**row, "metadata": _as_json(row["metadata"], fields)} for row in rows]
        table = pa.Table.from_pylist(rows).replace_schema_metadata(
            {"ai_filters_json_fields": ",".join(sorted(fields))}
        )
    pq.write_table(table, path)


def _fields_without_one_type(rows: list[dict]) -> set[str]:
    """Metadata fields holding values of several types, or nested values (dicts, lists)."""
    types: dict[str, set[type]] = {}
    for row in rows:
        for key, value in row["metadata"].items():
            if value is not None:
                types.setdefault(key, set()).add(type(value))
    return {key for key, found in types.items() if len(found) > 1 or found & {dict, list}}


def _as_json(metadata: dict, fields: set[str]) -> dict:
    return {
        key: json.dumps(value, ensure_ascii=False) if key in fields and value is not None else value
        for key, value in metadata.items()
    }

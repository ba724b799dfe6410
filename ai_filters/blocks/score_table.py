"""The score tables: every scored document without its text, for the stages that only count.

Beside the scored documents, the scoring stage writes ``OUT/scores/<domain>/<rank>.parquet``:
one row per scored document with its ``id``, ``domain``, the scorer's fields (its score, the
losses, the token counts) and nothing else. The thresholds and report stages read these
columns instead of the documents: at 240 million documents the tables are a few GB on disk
and a single column of one domain is all a stage holds in memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
from datatrove.data import Document
from datatrove.io import DataFolderLike

from ai_filters.blocks.parquet_files import CleanFailingParquetWriter
from ai_filters.blocks.staged import StagedWrites
from ai_filters.domains import is_safe_name
from ai_filters.selection.folder import TABLE_SHARD


def table_schema(fields: Sequence[str]) -> pa.Schema:
    """``id``, ``domain``, then ``fields``: token counts (``*_tokens``) as int64, the rest
    (scores, losses) as float64."""
    columns = [pa.field("id", pa.string()), pa.field("domain", pa.string())]
    for name in fields:
        kind = pa.int64() if name.endswith("_tokens") else pa.float64()
        columns.append(pa.field(name, kind))
    return pa.schema(columns)


def _table_row(writer: ScoreTableWriter, document: Document) -> dict:
    row = {"id": str(document.id), "domain": document.metadata.get("domain")}
    for name in writer.fields:
        row[name] = document.metadata.get(name)
    return row


class ScoreTableWriter(StagedWrites, CleanFailingParquetWriter):
    """Writes the score table row of every document that passes (after a scorer block).

    Args:
        output_folder: where the tables go (``OUT/scores``; local or any URL datatrove writes).
        fields: the metadata fields to keep, the scorer's score first (see
            :data:`ai_filters.blocks.registry.SCORERS`' ``table_fields``).
        output_filename: default ``<domain>/<rank>.parquet``.

    A document without ``metadata["domain"]`` is an error: the tables are split by domain.
    """

    name = "📇 score table"

    def __init__(
        self,
        output_folder: DataFolderLike,
        fields: Sequence[str],
        output_filename: str = TABLE_SHARD,
    ) -> None:
        self.fields = tuple(fields)
        super().__init__(
            output_folder,
            output_filename,
            adapter=_table_row,
            schema=table_schema(self.fields),
            use_content_defined_chunking=False,
        )

    def write(self, document: Document, rank: int = 0, **kwargs) -> None:
        if document.metadata.get("domain") is None:
            raise ValueError(
                f"document {document.id} has no metadata['domain']: score tables are split by "
                "domain; read it with DomainsReader or set the domain before this step"
            )
        check_folder_domain(document)
        super().write(document, rank, **kwargs)


def check_folder_domain(document: Document) -> None:
    """``ValueError`` in one line when ``metadata["domain"]`` (if set) cannot name the one folder
    a writer puts the document in (:func:`ai_filters.domains.is_safe_name`): a domain read from
    the data, such as ``../x``, would write outside the output folder."""
    domain = document.metadata.get("domain")
    if domain is not None and not is_safe_name(domain):
        raise ValueError(
            f"document {document.id}: metadata['domain'] {domain!r} cannot name a folder (it "
            "would write outside the output folder); a domain is letters, digits, '.', '_' or '-'"
        )

"""HubShardWriter: the pipeline's selected and rejected documents as flat parquet columns."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datatrove.data import Document
from datatrove.pipeline.readers import ParquetReader

from ai_filters.blocks import HubShardWriter

FIELDS = ("attention_influence", "ai_loss_base", "ai_loss_ref", "ai_n_tokens", "ai_doc_tokens")


def document(index: int, domain: str = "web", **extra) -> Document:
    metadata = {
        "file_path": f"/corpus/{domain}.jsonl",
        "ai_doc_tokens": 100 + index,
        "domain": domain,
        "attention_influence": 0.01 * index,
        "ai_loss_base": 2.0,
        "ai_loss_ref": 2.5,
        "ai_n_tokens": 100 + index,
    }
    return Document(text=f"text {index}", id=f"{domain}/{index}", metadata=metadata | extra)


def write(folder, documents: list[Document], batch_size: int = 2) -> HubShardWriter:
    writer = HubShardWriter(str(folder), FIELDS, batch_size=batch_size)
    with writer:
        for doc in documents:
            writer.write(doc, rank=0)
    return writer


def test_columns_are_flat_in_order_with_typed_scores(tmp_path):
    docs = [document(i, url=None if i == 0 else f"https://x/{i}") for i in range(5)]
    docs.append(document(9, domain="code", repo="r"))
    write(tmp_path, docs)
    web = pq.read_table(tmp_path / "data" / "web" / "00000.parquet")
    assert web.column_names == ["text", "id", "domain", *FIELDS, "file_path", "url"]
    assert web.schema.field("attention_influence").type == pa.float64()
    assert web.schema.field("ai_doc_tokens").type == pa.int64()
    assert web.column("id").to_pylist() == [f"web/{i}" for i in range(5)]
    # null in the whole first batch, text later: kept, no task failure
    assert web.column("url").to_pylist() == [None] + [f"https://x/{i}" for i in range(1, 5)]
    code = pq.read_table(tmp_path / "data" / "code" / "00000.parquet")
    assert code.column_names[-1] == "repo" and code.column("domain").to_pylist() == ["code"]


def test_mixed_late_and_shadowing_fields_lose_nothing_silently(tmp_path):
    docs = [
        document(0, year=2020, text="metadata text"),
        document(1, year="n/a"),
        document(2),
        document(3, late="appears after the first batch"),
    ]
    write(tmp_path, docs)
    table = pq.read_table(tmp_path / "data" / "web" / "00000.parquet")
    assert table.column("text").to_pylist()[0] == "text 0"
    assert table.column("metadata_text").to_pylist()[0] == "metadata text"
    assert table.column("year").to_pylist() == ["2020", "n/a", None, None]  # JSON text
    assert table.column("late").to_pylist() == [None, None, None, "appears after the first batch"]


def test_a_field_first_met_late_in_a_long_file_is_kept_in_every_row(tmp_path):
    """As in a mixed web dump: a field first present in document 2,400 of 2,500 (batches of
    1,000) is a column of the file, null before it; a field typed in its first batch keeps
    that type; the spill files are gone once the file is written."""
    docs = [document(i) for i in range(2500)]
    docs[2400].metadata["language_score"] = 0.93
    docs[2450].metadata["dump"] = {"name": "CC-MAIN-2024-10"}  # a struct column
    spills_before = set(Path(tempfile.gettempdir()).glob("ai-filters-shard-*"))
    write(tmp_path, docs, batch_size=1000)
    table = pq.read_table(tmp_path / "data" / "web" / "00000.parquet")
    assert table.num_rows == 2500 and table.column("id").to_pylist()[2400] == "web/2400"
    scores = table.column("language_score").to_pylist()
    assert scores[2400] == 0.93 and scores.count(None) == 2499
    assert table.schema.field("language_score").type == pa.float64()
    assert table.column("dump").to_pylist()[2450] == {"name": "CC-MAIN-2024-10"}
    assert set(Path(tempfile.gettempdir()).glob("ai-filters-shard-*")) == spills_before


def test_a_value_that_does_not_fit_its_column_is_one_clear_error(tmp_path):
    docs = [document(0, count=1), document(1, count=2), document(2, count="many")]
    with pytest.raises(ValueError, match="metadata field 'count' holds a value that is not int64"):
        write(tmp_path, docs)


def test_datatrove_reads_the_shards_back_with_their_metadata(tmp_path):
    write(tmp_path, [document(i) for i in range(3)])
    reader = ParquetReader(str(tmp_path), glob_pattern="data/*/*.parquet")
    read = list(reader.run())
    assert [doc.id for doc in read] == ["web/0", "web/1", "web/2"]
    assert read[1].metadata["attention_influence"] == pytest.approx(0.01, abs=0)  # stored as is
    assert read[1].metadata["domain"] == "web"

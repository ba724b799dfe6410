"""The pipeline's reader: every record of every domain read, none dropped, each with its domain."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from ai_filters.blocks import DomainsReader, RandomScorer
from ai_filters.blocks.readers import build_reader
from tests.helpers.broken_inputs import write_broken_inputs


@pytest.fixture
def broken_inputs(tmp_path) -> list[Path]:
    """One file of every kind of bad record, a truncated .jsonl.gz and a corrupt parquet."""
    return write_broken_inputs(tmp_path)


def test_pipeline_reader_keeps_every_record_of_broken_files(broken_inputs):
    """The pipeline's reader on the broken files: nothing dropped, nothing fatal."""
    plain, truncated, corrupt = broken_inputs
    folders = {}
    for domain, path in (("plain", plain), ("gz", truncated), ("parquet", corrupt)):
        folders[domain] = path.parent / domain
        folders[domain].mkdir()
        shutil.copy(path, folders[domain] / path.name)
    reader = DomainsReader(
        {
            d: {"reader": "parquet" if d == "parquet" else "jsonl", "path": str(f)}
            for d, f in folders.items()
        }
    )
    documents = list(reader.run())
    by_domain = Counter(d.metadata["domain"] for d in documents)
    read = {key.removeprefix("read_"): stat.total for key, stat in reader.stats.stats.items()}
    assert read == by_domain and by_domain["plain"] == 14  # every line of bad.jsonl
    unreadable = [d for d in documents if d.metadata.get("skip_reason") == "unreadable"]
    assert {d.metadata["source_file"].rsplit("/", 1)[1] for d in unreadable} == {
        "bad.jsonl",
        "truncated.jsonl.gz",
        "corrupt.parquet",
    }
    assert 0 < by_domain["gz"] - 1 < 50  # the lines before the truncation, then one record
    assert by_domain["parquet"] == 1
    texts = {d.id: d.text for d in documents}
    assert texts["surrogate"] == "lone \ud800 surrogate text here"  # orjson would drop it
    assert texts["number"] == 42 and texts["no-text"] is None and texts["empty"] == ""
    scorer = RandomScorer()  # any scorer: an unreadable record keeps its reason
    reasons = {d.metadata["skip_reason"] for d in unreadable}
    assert all(scorer.filter(d) == (False, "unreadable") for d in unreadable) and reasons == {
        "unreadable"
    }


def test_pipeline_reader_lets_connection_errors_fail_the_task(broken_inputs, monkeypatch):
    """A network failure is not broken input: the task fails, and a rerun retries the file."""
    reader = DomainsReader({"web": {"reader": "jsonl", "path": str(broken_inputs[0].parent)}})

    def reset_connection(*args, **kwargs):
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(reader.readers["web"].data_folder, "open", reset_connection)
    with pytest.raises(ConnectionResetError):
        list(reader.run())


def test_every_document_carries_its_domain(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "hello there", "id": "1", "domain": "other"}\n')
    spec = {"reader": "jsonl", "path": str(tmp_path)}
    (document,) = list(build_reader("web", spec).run())
    assert document.text == "hello there"
    (document,) = list(DomainsReader({"web": spec}).run())
    assert document.metadata["domain"] == "web"


def test_lone_surrogates_outside_the_text_are_repaired_and_flagged(tmp_path):
    """A lone surrogate in the id or a metadata field (writers cannot store one) becomes
    U+FFFD and the document gets ``fields_repaired``; the text is left to the scorer."""
    (tmp_path / "a.jsonl").write_text(
        '{"text": "plain text", "id": "id-\\ud800", "note": "x\\udfffy"}\n'
        '{"text": "clean text", "id": "clean"}\n'
    )
    repaired, clean = DomainsReader({"web": {"reader": "jsonl", "path": str(tmp_path)}}).run()
    assert repaired.id == "id-\ufffd" and repaired.metadata["note"] == "x\ufffdy"
    assert repaired.metadata["fields_repaired"] is True and repaired.text == "plain text"
    assert "fields_repaired" not in clean.metadata

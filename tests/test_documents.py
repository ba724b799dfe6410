"""Document files in datatrove's layout."""

from __future__ import annotations

import socket

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import hf_file_system

from ai_filters.documents import (
    DocumentFormatError,
    DocumentWriter,
    buckets_supported,
    check_folder_url,
    check_writable_folder,
    read_documents,
)
from ai_filters.selection.folder import SelectionFolder

DOCS = [
    {"text": "héllo wörld ✓", "id": "a", "metadata": {"domain": "web", "score": 1.5}},
    {"text": "second", "id": "b", "metadata": {"domain": "code"}},
]


@pytest.mark.parametrize("name", ["docs.jsonl", "docs.jsonl.gz", "docs.parquet"])
def test_round_trip(tmp_path, name):
    with DocumentWriter(tmp_path / name) as writer:
        for document in DOCS:
            writer.write(document)
    back = list(read_documents(tmp_path / name))
    assert [(d["text"], d["id"]) for d in back] == [(d["text"], d["id"]) for d in DOCS]
    assert back[0]["metadata"]["score"] == 1.5 and back[1]["metadata"]["domain"] == "code"


def test_extra_columns_move_into_metadata_and_ids_default(tmp_path):
    pq.write_table(pa.Table.from_pylist([{"content": "x y", "lang": "en"}]), tmp_path / "t.parquet")
    (document,) = read_documents(tmp_path / "t.parquet", text_key="content")
    assert document == {"text": "x y", "id": "t.parquet/0", "metadata": {"lang": "en"}}


def test_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError), DocumentWriter(tmp_path / "out.jsonl") as writer:
        writer.write(DOCS[0])
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_unknown_extension_is_a_clear_error(tmp_path):
    with pytest.raises(DocumentFormatError, match="use one of .jsonl, .jsonl.gz, .parquet"):
        DocumentWriter(tmp_path / "out.csv")


def test_parquet_keeps_metadata_of_mixed_types_as_json(tmp_path):
    """A field that is 2020 in one document and "n/a" in another must not lose the file."""
    documents = [
        {"text": "a", "id": "1", "metadata": {"year": 2020, "tags": {"x": 1}, "score": 0.5}},
        {"text": "b", "id": "2", "metadata": {"year": "n/a", "tags": {"x": "y"}, "score": 0.7}},
        {"text": "c", "id": "3", "metadata": {"year": None, "score": 0.9}},
    ]
    with DocumentWriter(tmp_path / "mixed.parquet") as writer:
        for document in documents:
            writer.write(document)
    back = list(read_documents(tmp_path / "mixed.parquet", strict=True))
    assert [d["metadata"]["year"] for d in back] == ["2020", '"n/a"', None]
    assert [d["metadata"]["score"] for d in back] == [0.5, 0.7, 0.9]  # one type: untouched
    assert back[1]["metadata"]["tags"] == '{"x": "y"}'
    schema = pq.read_schema(tmp_path / "mixed.parquet")
    assert schema.metadata[b"ai_filters_json_fields"] == b"tags,year"


def test_a_bucket_url_is_taken_where_huggingface_hub_has_buckets():
    assert buckets_supported()  # the pinned huggingface_hub has them
    check_folder_url("hf://buckets/org/b/run")
    folder = SelectionFolder("hf://buckets/org/b/run")  # nothing is asked of the Hub
    assert folder.path("report.md") == "hf://buckets/org/b/run/report.md"
    assert not folder.is_local


def test_a_bucket_url_is_refused_in_one_line_without_bucket_support(monkeypatch):
    monkeypatch.delattr(hf_file_system, "HfFileSystemResolvedBucketPath")
    with pytest.raises(ValueError, match="has no Hub buckets") as error:
        SelectionFolder("hf://buckets/org/b/run")
    assert "\n" not in str(error.value)
    check_folder_url("hf://datasets/org/d/run")  # repositories are not buckets


def test_a_bucket_url_without_a_bucket_is_refused():
    with pytest.raises(ValueError, match="names no bucket"):
        check_folder_url("hf://buckets/org")


def test_an_unreachable_storage_is_one_line_saying_to_try_again(monkeypatch):
    import s3fs

    with socket.socket() as closed:  # a port nothing listens on: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    for key, value in {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",  # no retry: the client gives up at once
    }.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        with pytest.raises(OSError, match="cannot be reached now") as error:
            check_writable_folder("s3://bucket/run", "--out")
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    assert "try again later" in str(error.value) and "\n" not in str(error.value)
    assert f"127.0.0.1:{port}" in str(error.value)

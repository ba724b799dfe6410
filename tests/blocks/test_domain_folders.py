"""The writers that put a document in its domain's folder refuse a domain that would leave the
output folder (a ``domain`` field of the data such as ``../x``) in one line, writing nothing."""

from __future__ import annotations

import pytest
from datatrove.data import Document

from ai_filters.blocks import HubShardWriter, ScoreTableWriter

FIELDS = ("attention_influence", "ai_doc_tokens")


@pytest.mark.parametrize("writer_class", [HubShardWriter, ScoreTableWriter])
@pytest.mark.parametrize("domain", ["../escaped", "a/../../escaped", "/escaped", "..", ""])
def test_a_domain_that_would_leave_the_folder_is_refused(writer_class, domain, tmp_path):
    out = tmp_path / "out" / "selected"
    metadata = {"domain": domain, "attention_influence": 0.5, "ai_doc_tokens": 3}
    document = Document(text="some text", id="doc-1", metadata=metadata)
    with pytest.raises(ValueError) as error:
        with writer_class(str(out), FIELDS) as writer:
            writer.write(document)
    message = str(error.value)
    assert "\n" not in message and "doc-1" in message and repr(domain) in message
    assert [path.name for path in tmp_path.rglob("*") if path.is_file()] == []


def test_a_plain_domain_is_written_in_its_folder(tmp_path):
    metadata = {"domain": "web.en_2-b", "attention_influence": 0.5, "ai_doc_tokens": 3}
    with HubShardWriter(str(tmp_path), FIELDS) as writer:
        writer.write(Document(text="some text", id="doc-1", metadata=metadata))
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet")] == [
        "data/web.en_2-b/00000.parquet"
    ]

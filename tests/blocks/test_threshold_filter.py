"""The per-domain threshold filter in a real pipeline, and the thresholds it reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.writers import JsonlWriter

from ai_filters.blocks import ThresholdFilter
from ai_filters.selection.folder import read_thresholds
from tests.helpers.blocks import block_stats, read_output


def scored_documents() -> list[Document]:
    values = [("w1", "web", 0.30), ("w2", "web", 0.10), ("c1", "code", 0.05), ("c2", "code", 0.01)]
    return [
        Document(text=f"text {i}", id=i, metadata={"domain": d, "attention_influence": s})
        for i, d, s in values
    ]


@pytest.fixture
def thresholds_file(tmp_path) -> Path:
    path = tmp_path / "thresholds.json"
    path.write_text(json.dumps({"web": {"threshold": 0.2, "n": 2}, "code": {"threshold": 0.05}}))
    return path


def test_filter_pipeline_keeps_documents_at_or_above_their_domain_threshold(
    thresholds_file, tmp_path
):
    LocalPipelineExecutor(
        [
            scored_documents(),
            ThresholdFilter(
                thresholds_file, exclusion_writer=JsonlWriter(str(tmp_path / "rejected"))
            ),
            JsonlWriter(str(tmp_path / "kept")),
        ],
        tasks=1,
        logging_dir=str(tmp_path / "logs"),
    ).run()
    assert set(read_output(tmp_path / "kept")) == {"w1", "c1"}
    rejected = read_output(tmp_path / "rejected")
    assert {i: r["metadata"]["filter_reason"] for i, r in rejected.items()} == {
        "w2": "below_threshold",
        "c2": "below_threshold",
    }
    stats = block_stats(tmp_path / "logs", ThresholdFilter.name)
    assert stats["kept_web"] == 1 and stats["below_threshold_code"] == 1


def test_filter_needs_a_domain_unless_a_default_is_given(thresholds_file):
    document = Document(text="x", id="nodomain", metadata={"attention_influence": 0.1})
    with pytest.raises(ValueError, match=r"metadata\['domain'\].*default_domain"):
        list(ThresholdFilter(thresholds_file)([document]))
    kept = list(ThresholdFilter(thresholds_file, default_domain="code")([document]))
    assert [doc.id for doc in kept] == ["nodomain"]


def test_filter_rejects_a_domain_without_threshold(thresholds_file):
    document = Document(text="x", id="m1", metadata={"domain": "math", "attention_influence": 1})
    with pytest.raises(ValueError, match=f"'math'.*{thresholds_file}"):
        list(ThresholdFilter(thresholds_file)([document]))


def test_filter_requires_a_score():
    document = Document(text="x", id="u1", metadata={"domain": "web"})
    with pytest.raises(ValueError, match="run the scorer"):
        list(ThresholdFilter({"web": 0.1})([document]))


def test_thresholds_format(tmp_path):
    document = Document(text="x", id="1", metadata={"domain": "code", "attention_influence": 2.0})
    assert list(ThresholdFilter({"web": 0.1, "code": 2})([document])) == [document]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"web": {"fraction": 0.2}}))
    with pytest.raises(ValueError, match="domain 'web' is not a threshold entry"):
        read_thresholds(bad)
    with pytest.raises(ValueError, match="domain 'web' has no numeric 'threshold'"):
        list(ThresholdFilter(str(bad))([document]))


def test_filter_reads_the_score_of_its_score_key():
    """A control's score (another metadata key) decides, not the method's score beside it."""
    documents = [
        Document(text="x", id=i, metadata={"domain": "web", "attention_influence": a, "ppl": p})
        for i, a, p in (("high-ai", 0.9, -5.0), ("high-ppl", 0.1, -1.0))
    ]
    kept = list(ThresholdFilter({"web": -2.0}, score_key="ppl")(documents))
    assert [doc.id for doc in kept] == ["high-ppl"]

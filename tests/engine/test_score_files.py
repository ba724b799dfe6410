"""score_file on broken input: every document is scored or skipped with a reason; the run never
dies halfway."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from ai_filters.documents import DocumentReadError, read_documents
from ai_filters.engine.score_files import score_file, skipped_path
from ai_filters.engine.scoring import ScoringConfig, ScoringEngine
from tests.helpers.broken_inputs import write_broken_inputs

HEADS = [(18, 6), (20, 6), (17, 3)]


@pytest.fixture(scope="module")
def engine(embedded) -> ScoringEngine:
    return ScoringEngine(embedded, HEADS, ScoringConfig(max_tokens=32))


@pytest.fixture
def broken_inputs(tmp_path) -> list[Path]:
    """One file of every kind of bad record, a truncated .jsonl.gz and a corrupt parquet."""
    return write_broken_inputs(tmp_path)


def test_every_broken_record_is_scored_or_skipped_with_its_reason(engine, broken_inputs, tmp_path):
    output = tmp_path / "out.jsonl"
    summary = score_file(engine, broken_inputs, output)
    scored = list(read_documents(output))
    skipped = list(read_documents(skipped_path(output)))
    reasons = {d["id"]: d["metadata"]["skip_reason"] for d in skipped}
    assert reasons["empty"] == reasons["one-token"] == "too_short"
    assert reasons["number"] == reasons["no-text"] == "missing_text"
    assert reasons["surrogate"] == "untokenizable_text"
    assert (
        reasons["bad.jsonl/4"]
        == reasons["bad.jsonl/12"]
        == reasons["bad.jsonl/13"]
        == ("unreadable")
    )
    unreadable = {
        d["id"]: d["metadata"] for d in skipped if d["metadata"]["skip_reason"] == "unreadable"
    }
    assert unreadable["bad.jsonl/4"]["source_line"] == 5
    assert "invalid UTF-8" in unreadable["bad.jsonl/4"]["skip_detail"]
    assert any(i.startswith("truncated.jsonl.gz/") for i in unreadable)
    assert "corrupt.parquet/file" in unreadable
    assert next(d for d in skipped if d["id"] == "surrogate")["metadata"]["text_repaired"]
    scored_ids = Counter(d["id"] for d in scored)
    assert scored_ids["dup"] == 2 and {"controls", "no-domain", "huge"} <= set(scored_ids)
    assert all(math.isfinite(d["metadata"]["attention_influence"]) for d in scored)
    huge = next(d for d in scored if d["id"] == "huge")
    assert huge["metadata"]["ai_n_tokens"] == 32 and huge["metadata"]["ai_doc_tokens"] > 1_000_000
    gz_scored = [d for d in scored if d["id"].startswith("gz-")]
    assert 0 < len(gz_scored) < 50  # the lines before the truncation point are kept
    for domain, read in summary.read.items():  # read = scored + skipped, per domain
        assert read == summary.scored[domain] + summary.skipped_in(domain)
    assert sum(summary.read.values()) == len(scored) + len(skipped)


def test_strict_mode_stops_with_file_and_line(engine, broken_inputs, tmp_path):
    with pytest.raises(DocumentReadError, match=r"bad\.jsonl:5: invalid UTF-8"):
        score_file(engine, broken_inputs, tmp_path / "out.jsonl", strict=True)
    assert not (tmp_path / "out.jsonl").exists()


def test_non_finite_loss_is_skipped_never_scored(engine, embedded):
    """A NaN in the forward pass (as an fp16 overflow makes) gives a reason, not a score."""
    last = embedded.model.base_model.layers[-1]
    handle = last.register_forward_hook(lambda module, args, output: output * float("nan"))
    try:
        (score,) = engine.score_texts(["A perfectly ordinary sentence about rivers."])
    finally:
        handle.remove()
    assert score.skip_reason == "non_finite_loss" and score.attention_influence is None


def test_skipped_non_string_text_keeps_its_value_as_original_text(engine, broken_inputs, tmp_path):
    output = tmp_path / "out.jsonl"
    score_file(engine, broken_inputs, output)
    skipped = {d["id"]: d for d in read_documents(skipped_path(output))}
    assert skipped["number"]["metadata"]["original_text"] == "42"
    assert skipped["number"]["text"] == ""
    assert skipped["no-text"]["metadata"]["original_text"] == "None"
    assert "original_text" not in skipped["empty"]["metadata"]  # a string keeps its text


def test_lone_surrogates_in_the_id_or_metadata_are_scored_and_flagged(engine, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": "id-\\ud800", "text": "Rivers carry sand to the sea.", "domain": "web", '
        '"note": "a\\udfffb"}\n'
        '{"id": "clean", "text": "Rivers carry sand to the sea.", "domain": "web"}\n'
    )
    summary = score_file(engine, [source], tmp_path / "out.jsonl")
    repaired, clean = read_documents(tmp_path / "out.jsonl")
    assert summary.scored["web"] == 2
    assert repaired["id"] == "id-\ufffd" and repaired["metadata"]["note"] == "a\ufffdb"
    assert repaired["metadata"]["fields_repaired"] is True
    assert math.isfinite(repaired["metadata"]["attention_influence"])
    assert "fields_repaired" not in clean["metadata"]

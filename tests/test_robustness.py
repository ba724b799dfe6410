"""Broken input: every document is scored or skipped with a reason; the run never dies halfway."""

from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_heads_file

from ai_filters.documents import DocumentReadError, read_documents
from ai_filters.score_files import score_file, skipped_path
from ai_filters.scoring import ScoringConfig, ScoringEngine

HEADS = [(18, 6), (20, 6), (17, 3)]


@pytest.fixture(scope="module")
def engine(embedded) -> ScoringEngine:
    return ScoringEngine(embedded, HEADS, ScoringConfig(max_tokens=32))


def line(document: dict) -> bytes:
    return (json.dumps(document) + "\n").encode()


@pytest.fixture
def broken_inputs(tmp_path) -> list[Path]:
    """One file of every kind of bad record, a truncated .jsonl.gz and a corrupt parquet."""
    records = [
        line({"id": "empty", "text": "", "domain": "web"}),
        line({"id": "spaces", "text": "   \n\t ", "domain": "web"}),
        line({"id": "one-token", "text": "Hello", "domain": "web"}),
        line({"id": "huge", "text": "The quick brown fox. " * 250_000, "domain": "web"}),
        b'{"id": "bad-utf8", "text": "caf\xe9 \xff", "domain": "web"}\n',
        line({"id": "surrogate", "text": "lone \ud800 surrogate text here", "domain": "web"}),
        line({"id": "controls", "text": "NUL \x00 bell \x07 escape \x1b end", "domain": "code"}),
        line({"id": "number", "text": 42, "domain": "code"}),
        line({"id": "no-text", "domain": "code"}),
        line({"id": "no-domain", "text": "A document without any domain at all."}),
        line({"id": "dup", "text": "First copy of a duplicated id.", "domain": "math"}),
        line({"id": "dup", "text": "Second copy of a duplicated id.", "domain": "math"}),
        b"{not json at all\n",
        b"[1, 2, 3]\n",
    ]
    plain = tmp_path / "bad.jsonl"
    plain.write_bytes(b"".join(records))
    good = b"".join(
        line({"id": f"gz-{i}", "text": f"Sentence number {i} is here.", "domain": "math"})
        for i in range(50)
    )
    truncated = tmp_path / "truncated.jsonl.gz"
    truncated.write_bytes(gzip.compress(good)[:-40])
    corrupt = tmp_path / "corrupt.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": "p", "text": "ok"}] * 10), corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    return [plain, truncated, corrupt]


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


def test_cli_reports_broken_files_and_goes_on(broken_inputs, tmp_path, embedded):
    heads = write_heads_file(embedded, HEADS, tmp_path / "heads.json")
    command = [
        sys.executable,
        "-m",
        "ai_filters.cli",
        "score",
        "--heads",
        str(heads),
        "--input",
        *map(str, broken_inputs),
        "--output",
        str(tmp_path / "o.jsonl"),
        "--max-tokens",
        "32",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "unreadable: " in result.stdout and "corrupt.parquet" in result.stdout
    strict = subprocess.run(
        [*command, "--strict"], capture_output=True, text=True, env=env, timeout=600
    )
    assert strict.returncode == 2 and "bad.jsonl:5" in strict.stderr
    assert "Traceback" not in strict.stderr


def test_non_finite_loss_is_skipped_never_scored(engine, embedded):
    """A NaN in the forward pass (as an fp16 overflow makes) gives a reason, not a score."""
    last = embedded.model.base_model.layers[-1]
    handle = last.register_forward_hook(lambda module, args, output: output * float("nan"))
    try:
        (score,) = engine.score_texts(["A perfectly ordinary sentence about rivers."])
    finally:
        handle.remove()
    assert score.skip_reason == "non_finite_loss" and score.attention_influence is None

"""The datatrove blocks in real pipelines: JsonlReader -> block -> JsonlWriter, local executor."""

from __future__ import annotations

import copy
import gzip
import json
import math
from pathlib import Path

import pytest
from conftest import write_heads_file
from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from ai_filters.blocks import (
    AttentionInfluenceScorer,
    DomainThresholdFilter,
    PerplexityScorer,
    RandomScorer,
    scorer_base,
)
from ai_filters.blocks.scorer_base import score_bin, shared_model
from ai_filters.layout import read_thresholds
from ai_filters.numerics import loss_rtol, score_atol
from ai_filters.scoring import ScoringConfig, ScoringEngine

HEADS = [[18, 6], [20, 6], [17, 3]]
MAX_TOKENS = 128
WEB = [
    (
        "web-1",
        "The mitochondria is the powerhouse of the cell. It turns glucose and oxygen into "
        "ATP through a chain of reactions in its inner membrane.",
    ),
    (
        "web-2",
        "Rivers carry sediment downstream; where the current slows, at a bend or a delta, "
        "the sand settles and the riverbed slowly rises.",
    ),
    ("web-short", "Hi"),  # one token: nothing to predict
    ("web-empty", ""),  # datatrove's readers drop empty texts before any block sees them
]
CODE = [
    ("code-1", "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"),
    (
        "code-2",
        "import json\n\nwith open('data.json') as f:\n    rows = json.load(f)\nprint(len(rows))\n",
    ),
]


@pytest.fixture(scope="module")
def loaded():
    """The embedded model from the blocks' own cache, so the pipelines below reuse it."""
    return shared_model("smollm2-135m", "cpu", "float32")


@pytest.fixture(scope="module")
def heads_file(loaded, tmp_path_factory) -> Path:
    return write_heads_file(loaded, HEADS, tmp_path_factory.mktemp("heads") / "heads.json")


def write_jsonl(path: Path, domain: str, documents: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"id": i, "text": t, "domain": domain}) for i, t in documents]
    path.write_text("\n".join(lines) + "\n")


def read_output(folder: Path) -> dict[str, dict]:
    """Every record JsonlWriter wrote under ``folder``, by id."""
    records = {}
    for file in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(file, "rt") as lines:
            for line in lines:
                record = json.loads(line)
                assert record["id"] not in records
                records[record["id"]] = record
    return records


def block_stats(logs: Path, name: str) -> dict:
    """Totals of the merged stats of the block named ``name`` from the executor's stats.json.

    datatrove records a block as ``"<type>: <name>"`` and a stat counted only in ones as its
    bare total.
    """
    stats = json.loads((logs / "stats.json").read_text())
    block = next(block["stats"] for block in stats if block["name"].endswith(f": {name}"))
    return {
        key: value["total"] if isinstance(value, dict) else value for key, value in block.items()
    }


def test_score_bins():
    assert score_bin(0.0) == "score_bin_0.00"
    assert score_bin(0.1) == "score_bin_0.10"
    assert score_bin(0.149) == "score_bin_0.10"
    assert score_bin(-0.01) == "score_bin_-0.05"
    assert score_bin(-3.0) == "score_bin_-0.50"
    assert score_bin(7.0) == "score_bin_1.45"


def test_scorer_pipeline_annotates_every_scorable_document(loaded, heads_file, tmp_path):
    write_jsonl(tmp_path / "input" / "web.jsonl", "web", WEB)
    write_jsonl(tmp_path / "input" / "code.jsonl", "code", CODE)
    models_before = dict(scorer_base._MODELS)
    scorer = AttentionInfluenceScorer(
        heads_file,
        max_tokens=MAX_TOKENS,
        batch_size=2,
        device="cpu",
        dtype="float32",
        exclusion_writer=JsonlWriter(str(tmp_path / "skipped")),
    )
    LocalPipelineExecutor(
        [JsonlReader(str(tmp_path / "input")), scorer, JsonlWriter(str(tmp_path / "scored"))],
        tasks=2,  # one file per task, both tasks in this process
        workers=1,
        logging_dir=str(tmp_path / "logs"),
    ).run()

    scored, skipped = read_output(tmp_path / "scored"), read_output(tmp_path / "skipped")
    readable = {i for i, text in WEB + CODE if text}
    assert set(scored) | set(skipped) == readable and not set(scored) & set(skipped)
    assert {i: r["metadata"]["filter_reason"] for i, r in skipped.items()} == {
        "web-short": "too_short"
    }
    assert scorer_base._MODELS == models_before  # the tasks took the cached model

    engine = ScoringEngine(loaded, [tuple(h) for h in HEADS], ScoringConfig(max_tokens=MAX_TOKENS))
    ids = sorted(scored)
    expected = engine.score_texts([scored[i]["text"] for i in ids])
    rtol = loss_rtol(loaded.config, MAX_TOKENS)  # the block batches documents differently
    for i, score in zip(ids, expected, strict=True):
        metadata = scored[i]["metadata"]
        assert math.isfinite(metadata["attention_influence"])
        atol = score_atol(score.attention_influence, rtol)
        assert metadata["attention_influence"] == pytest.approx(score.attention_influence, abs=atol)
        assert metadata["ai_loss_base"] == pytest.approx(score.loss_base, rel=rtol)
        assert metadata["ai_loss_ref"] == pytest.approx(score.loss_ref, rel=rtol)
        assert metadata["ai_n_tokens"] == score.n_tokens
        assert metadata["domain"] == i.split("-")[0]

    stats = block_stats(tmp_path / "logs", AttentionInfluenceScorer.name)
    assert stats["forwarded"] == len(scored)
    assert stats["dropped_too_short"] == 1
    assert stats["tokens_scored"] == sum(score.n_tokens for score in expected)
    bins = {key: value for key, value in stats.items() if key.startswith("score_bin_")}
    assert sum(bins.values()) == len(scored)
    assert bins == {
        key: sum(score_bin(s.attention_influence) == key for s in expected) for key in bins
    }


def test_scorer_excludes_empty_and_non_string_texts(heads_file, tmp_path):
    """Documents built in code can carry texts a reader would drop; they are excluded, counted."""
    documents = [
        Document(text="", id="empty"),
        Document(text=None, id="none"),
        Document(text="A short sentence to score.", id="ok"),
    ]
    scorer = AttentionInfluenceScorer(
        heads_file,
        max_tokens=MAX_TOKENS,
        device="cpu",
        dtype="float32",
        exclusion_writer=JsonlWriter(str(tmp_path / "skipped")),
    )
    kept = list(scorer(documents))  # run() closes the exclusion writer at the end
    assert [doc.id for doc in kept] == ["ok"]
    skipped = read_output(tmp_path / "skipped")
    assert {i: r["metadata"]["filter_reason"] for i, r in skipped.items()} == {
        "empty": "too_short",
        "none": "missing_text",
    }
    assert scorer.stats["dropped_missing_text"].total == 1
    assert scorer._scorer is not None and copy.deepcopy(scorer)._scorer is None


def test_scorer_rejects_bad_settings_before_loading(heads_file):
    with pytest.raises(ValueError, match="mask mode"):
        AttentionInfluenceScorer(heads_file, mask_mode="nope")


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
            DomainThresholdFilter(
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
    stats = block_stats(tmp_path / "logs", DomainThresholdFilter.name)
    assert stats["kept_web"] == 1 and stats["below_threshold_code"] == 1


def test_filter_needs_a_domain_unless_a_default_is_given(thresholds_file):
    document = Document(text="x", id="nodomain", metadata={"attention_influence": 0.1})
    with pytest.raises(ValueError, match=r"metadata\['domain'\].*default_domain"):
        list(DomainThresholdFilter(thresholds_file)([document]))
    kept = list(DomainThresholdFilter(thresholds_file, default_domain="code")([document]))
    assert [doc.id for doc in kept] == ["nodomain"]


def test_filter_rejects_a_domain_without_threshold(thresholds_file):
    document = Document(text="x", id="m1", metadata={"domain": "math", "attention_influence": 1})
    with pytest.raises(ValueError, match=f"'math'.*{thresholds_file}"):
        list(DomainThresholdFilter(thresholds_file)([document]))


def test_filter_requires_a_score():
    document = Document(text="x", id="u1", metadata={"domain": "web"})
    with pytest.raises(ValueError, match="run the scorer"):
        list(DomainThresholdFilter({"web": 0.1})([document]))


def test_thresholds_format(tmp_path):
    document = Document(text="x", id="1", metadata={"domain": "code", "attention_influence": 2.0})
    assert list(DomainThresholdFilter({"web": 0.1, "code": 2})([document])) == [document]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"web": {"fraction": 0.2}}))
    with pytest.raises(ValueError, match="domain 'web' is not a threshold entry"):
        read_thresholds(bad)
    with pytest.raises(ValueError, match="domain 'web' has no numeric 'threshold'"):
        list(DomainThresholdFilter(str(bad))([document]))


def test_random_scorer_is_a_pure_function_of_seed_and_id(loaded):
    """Order and sharding never change a random score; another seed gives other scores."""
    documents = [Document(text=text, id=doc_id) for doc_id, text in WEB + CODE]
    forward = {d.id: d for d in RandomScorer(seed=1)(copy.deepcopy(documents))}
    backward = {d.id: d for d in RandomScorer(seed=1)(copy.deepcopy(documents[::-1]))}
    other_seed = {d.id: d for d in RandomScorer(seed=2)(copy.deepcopy(documents))}
    assert set(forward) == {i for i, text in WEB + CODE if len(text) > 2}  # same skips as the model
    for doc_id, document in forward.items():
        score = document.metadata["random_score"]
        assert 0 <= score < 1 and score == backward[doc_id].metadata["random_score"]
        assert score != other_seed[doc_id].metadata["random_score"]
        assert document.metadata["ai_doc_tokens"] == len(loaded.tokenizer(document.text).input_ids)


def test_perplexity_scorer_keeps_minus_the_base_loss(loaded):
    documents = [Document(text=text, id=doc_id) for doc_id, text in WEB[:2] + CODE]
    engine = ScoringEngine(loaded, HEADS, ScoringConfig(max_tokens=MAX_TOKENS))
    expected = engine.score_texts([d.text for d in documents])
    scorer = PerplexityScorer(max_tokens=MAX_TOKENS, device="cpu", dtype="float32")
    rtol = loss_rtol(loaded.config, MAX_TOKENS)  # one pass instead of a doubled batch
    for document, score in zip(scorer(copy.deepcopy(documents)), expected, strict=True):
        metadata = document.metadata
        assert metadata["perplexity_score"] == pytest.approx(-score.loss_base, rel=rtol)
        assert metadata["ai_loss_base"] == pytest.approx(score.loss_base, rel=rtol)
        assert "attention_influence" not in metadata and "ai_loss_ref" not in metadata

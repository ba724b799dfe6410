"""The distilled scorer block: the training-time predictions, the random scorer's skips, the
lazy model, and its registry entry."""

from __future__ import annotations

import copy
import json
import pickle

import pyarrow.parquet as pq
import pytest
from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from ai_filters.blocks import DistilledScorer, RandomScorer
from ai_filters.blocks.distilled import POOLED_STAT
from ai_filters.blocks.registry import ScorerOptions, get_scorer
from ai_filters.distill import HELDOUT_TABLE, POOLED, TrainingSettings, distill, save
from ai_filters.documents import DocumentWriter, read_documents
from ai_filters.engine.models import load_tokenizer
from tests.helpers.distill import synthetic_documents, write_scored_selection

AWKWARD = [
    ("real", "The mitochondria is the powerhouse of the cell: it turns glucose into ATP."),
    ("code", "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"),
    ("one-token", "Hi"),
    ("empty", ""),
    ("surrogate", "a lone surrogate \ud800 in the text"),
    ("missing", None),
    ("number", 12345),
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    selection = write_scored_selection(tmp_path_factory.mktemp("selection"), synthetic_documents())
    out = tmp_path_factory.mktemp("model")
    return save(distill(selection, TrainingSettings()), out)


def awkward_documents() -> list[Document]:
    documents = [
        Document(text=text, id=doc_id, metadata={"domain": "web"}) for doc_id, text in AWKWARD
    ]
    documents.append(
        Document(text="", id="unreadable", metadata={"domain": "web", "skip_reason": "unreadable"})
    )
    return documents


def test_block_reproduces_the_training_time_predictions(model_dir, tmp_path):
    """A real datatrove pipeline (reader, block in batches of 7, writer) scores the held-out
    documents exactly as training predicted them."""
    heldout = pq.read_table(model_dir / HELDOUT_TABLE).to_pylist()
    texts = {d["id"]: d for d in synthetic_documents()}
    with DocumentWriter(tmp_path / "in" / "heldout.jsonl") as writer:
        for row in heldout:
            writer.write(texts[row["id"]])
    LocalPipelineExecutor(
        [
            JsonlReader(str(tmp_path / "in")),
            DistilledScorer(str(model_dir), batch_size=7),
            JsonlWriter(str(tmp_path / "out"), output_filename="${rank}.jsonl", compression=None),
        ],
        tasks=1,
        logging_dir=str(tmp_path / "logs"),
    ).run()
    scored = {d["id"]: d["metadata"] for d in read_documents(tmp_path / "out" / "00000.jsonl")}
    assert set(scored) == {row["id"] for row in heldout}
    tokenizer = load_tokenizer()
    for row in heldout:
        # one sparse dot product per text, the same code as at training: exactly equal
        assert scored[row["id"]]["distilled_score"] == row["prediction"]
        expected_tokens = len(tokenizer(texts[row["id"]]["text"]).input_ids)
        assert scored[row["id"]]["ai_doc_tokens"] == expected_tokens


def test_block_skips_exactly_what_the_random_scorer_skips(model_dir):
    distilled = DistilledScorer(str(model_dir))
    random = RandomScorer()
    distilled_documents, random_documents = awkward_documents(), awkward_documents()
    by_distilled = distilled.filter_batch(distilled_documents)
    by_random = [random.filter(document) for document in random_documents]
    assert by_distilled == [
        result if result is True else (False, result[1]) for result in by_random
    ]
    assert [r is True for r in by_distilled] == [True, True] + [False] * 6
    assert [r[1] for r in by_distilled[2:]] == [
        "too_short",
        "too_short",
        "untokenizable_text",
        "missing_text",
        "missing_text",
        "unreadable",
    ]
    for ours, theirs in zip(distilled_documents[:2], random_documents[:2], strict=True):
        assert ours.metadata["ai_doc_tokens"] == theirs.metadata["ai_doc_tokens"]
    assert distilled.stats["skipped/web/too_short"].total == 2
    # one document at a time: the same results as in one batch
    one_by_one = [distilled.filter_batch([d])[0] for d in awkward_documents()]
    assert one_by_one == by_distilled


def test_model_loads_lazily_and_never_travels_with_the_block(model_dir):
    block = DistilledScorer(str(model_dir))
    assert block._model is None
    block.filter_batch([Document(text="therefore the proof", id="a", metadata={})])
    assert block._model is not None
    copied = pickle.loads(pickle.dumps(block))
    assert copied._model is None and "tokenizer" not in copied.__dict__
    assert copy.deepcopy(block)._model is None


def test_registry_builds_the_block(model_dir):
    scorer = get_scorer("distilled")
    assert (scorer.score_key, scorer.needs_heads, scorer.mask_mode) == (
        "distilled_score",
        False,
        None,
    )
    assert scorer.table_fields[0] == scorer.score_key and "ai_doc_tokens" in scorer.table_fields
    block = scorer.build(ScorerOptions(distilled_model=str(model_dir)))
    assert isinstance(block, DistilledScorer)
    assert block.tokenizer_model == "smollm2-135m"  # the selector recorded with the model
    assert block.model_dir == str(model_dir.resolve())
    with pytest.raises(ValueError, match="--distilled-model"):
        scorer.build(ScorerOptions())
    with pytest.raises(ValueError, match="not a distilled model folder"):
        scorer.build(ScorerOptions(distilled_model=str(model_dir.parent)))
    record = json.loads((model_dir / "distilled.json").read_text())
    assert record["model"]["weights"] == "weights.npy"


def test_documents_of_other_domains_are_scored_by_the_pooled_model(model_dir):
    block = DistilledScorer(str(model_dir))
    text = "therefore the proof of the lemma implies the theorem"
    documents = [
        Document(text=text, id=str(index), metadata={"domain": domain} if domain else {})
        for index, domain in enumerate(["web", "legal", None])
    ]
    assert block.filter_batch(documents) == [True, True, True]
    scores = [document.metadata["distilled_score"] for document in documents]
    pooled = block.model.predict([text], [POOLED])[0]
    assert scores[1] == scores[2] == pooled != scores[0]  # the same dot product: exact
    assert block.stats[POOLED_STAT].total == 2

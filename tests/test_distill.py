"""Distillation (ai_filters/distill.py): the split, the targets, training, the model folder."""

from __future__ import annotations

import math
import random

import numpy as np
import pyarrow.parquet as pq
import pytest

from ai_filters.distill import (
    HELDOUT_IDS_FILE,
    HELDOUT_TABLE,
    POOLED,
    ScoredDocument,
    TrainingSettings,
    agreement,
    distill,
    is_heldout,
    load_model,
    rank_targets,
    read_ids,
    read_record,
    save,
    split,
    text_statistics,
)
from tests.helpers.distill import HEADS_FILE, synthetic_documents, write_scored_selection


@pytest.fixture(scope="module")
def selection(tmp_path_factory):
    return write_scored_selection(tmp_path_factory.mktemp("selection"), synthetic_documents())


@pytest.fixture(scope="module")
def model_dir(selection, tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    save(distill(selection, TrainingSettings()), out)
    return out


def scored(documents: list[dict]) -> list[ScoredDocument]:
    return [
        ScoredDocument(
            d["id"], d["metadata"]["domain"], d["text"], d["metadata"]["attention_influence"]
        )
        for d in documents
    ]


def test_record_says_what_the_model_was_trained_on(selection, model_dir):
    import sklearn

    record = read_record(model_dir)
    assert record["library"] == {"name": "scikit-learn", "version": sklearn.__version__}
    trained = record["trained_on"]
    assert (trained["scorer"], trained["score_key"], trained["fraction"]) == (
        "attention_influence",
        "attention_influence",
        0.2,
    )
    assert trained["selection"] == str(selection.resolve())
    assert trained["selector_model"] == HEADS_FILE["model"]
    assert trained["heads_fingerprint"] == HEADS_FILE["model_fingerprint"]
    assert trained["heads"] == HEADS_FILE["selected"]
    counts = trained["documents"]
    assert set(counts) == {"web", "math"}
    assert all(row["scored"] == 150 == row["train"] + row["heldout"] for row in counts.values())
    assert record["training"]["documents"] == sum(row["train"] for row in counts.values())
    assert record["training"]["alpha"] == 1.0 and record["training"]["max_train"] is None
    assert record["model"]["domains"] == ["math", "web", POOLED]
    assert len(record["model"]["intercepts"]) == 3 and len(record["model"]["statistics_mean"]) == 8
    # the held-out ids: written, and recomputed from the recorded rule
    ids = (model_dir / HELDOUT_IDS_FILE).read_text().splitlines()
    assert ids == sorted(ids) and len(ids) == record["holdout"]["documents"]
    holdout = record["holdout"]
    every_id = [d["id"] for d in synthetic_documents()]
    assert set(ids) == {i for i in every_id if is_heldout(i, holdout["share"], holdout["salt"])}
    assert read_ids(model_dir) == set(ids)


def test_model_learns_the_ranking_and_reloads_to_the_same_predictions(model_dir):
    record = read_record(model_dir)
    measured = record["heldout_agreement"]
    # signal share is linear in word counts: far above chance (0.11)
    assert measured["jaccard"] >= 0.6
    assert all(row["spearman"] > 0.8 for row in measured["domains"].values())
    table = pq.read_table(model_dir / HELDOUT_TABLE).to_pylist()
    texts = {d["id"]: d["text"] for d in synthetic_documents()}
    predictions = load_model(model_dir).predict(
        [texts[row["id"]] for row in table], [row["domain"] for row in table]
    )
    # the same arithmetic in the same order (one sparse dot product per text): exactly equal
    assert predictions.tolist() == [row["prediction"] for row in table]
    recomputed = agreement(
        [row["domain"] for row in table],
        [row["score"] for row in table],
        predictions,
        0.2,
    )
    assert recomputed == measured


def test_heldout_split_is_disjoint_stable_and_nested():
    documents = scored(synthetic_documents())
    settings = TrainingSettings()
    training, heldout = split(documents, settings)
    training_ids, heldout_ids = {d.id for d in training}, {d.id for d in heldout}
    assert not training_ids & heldout_ids
    assert training_ids | heldout_ids == {d.id for d in documents}
    assert 0.1 < len(heldout) / len(documents) < 0.3
    shuffled = random.Random(1).sample(documents, len(documents))
    again_training, again_heldout = split(shuffled, settings)
    assert [d.id for d in again_training] == [d.id for d in training]  # order by hash, not input
    assert {d.id for d in again_heldout} == heldout_ids
    grown = scored(synthetic_documents(per_domain=300))  # the same ids and 300 more
    assert heldout_ids <= {d.id for d in split(grown, settings)[1]}
    small = {d.id for d in split(documents, TrainingSettings(max_train=50))[0]}
    large = {d.id for d in split(documents, TrainingSettings(max_train=100))[0]}
    assert len(small) == 50 and small < large < training_ids
    other_salt = {d.id for d in split(documents, TrainingSettings(salt="other"))[1]}
    assert other_salt != heldout_ids


def test_targets_rank_within_each_domain():
    documents = [
        ScoredDocument(f"{domain}/{i}", domain, "x", score)
        for domain, scores in (("a", [3.0, 1.0, 2.0, 2.0]), ("b", [10.0, 20.0]))
        for i, score in enumerate(scores)
    ]
    assert rank_targets(documents).tolist() == [1.0, 0.25, 0.625, 0.625, 0.5, 1.0]


def test_text_statistics():
    pattern = r"\w+|[^\w\s]"
    values = text_statistics("a b a b\nx = 12", pattern)
    # 7 tokens a b a b x = 12; 5 distinct; bigrams ab ba ab bx x= =12: 5 of 6; 4-grams: 4 of 4
    expected = [math.log1p(14), math.log1p(7), 5 / 7, 5 / 6, 1.0, 5 / 14, 2 / 14, 1 / 14]
    assert values == pytest.approx(expected, abs=1e-12)  # ratios of small integers
    assert text_statistics("", pattern) == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]


def test_agreement_counts_the_selections():
    domains = ["a"] * 10 + ["b"] * 5
    teacher = list(range(10)) + [1, 2, 3, 4, 5]
    student = [0, 1, 2, 3, 4, 5, 6, 7, 20, 8] + [5, 4, 3, 2, 1]
    measured = agreement(domains, teacher, student, 0.2)
    a, b = measured["domains"]["a"], measured["domains"]["b"]
    # a: top 2 by teacher {8, 9}, by student {8, 9} (20 and 8): the same; b: top 1 each, apart
    assert (a["selected_both"], a["jaccard"], b["selected_both"], b["jaccard"]) == (2, 1.0, 0, 0.0)
    assert measured["jaccard"] == 2 / 4  # both: 2 of the union {a8, a9, b4, b0}
    assert b["spearman"] == pytest.approx(-1.0, abs=1e-12)  # reversed order exactly
    assert a["chance_jaccard"] == pytest.approx(0.2 / 1.8, abs=1e-12)  # 2 of 10 selected


def test_other_domains_get_the_pooled_model(selection, model_dir, tmp_path):
    model = load_model(model_dir)
    texts = ["therefore the proof of the lemma", "the of and to in is"]
    pooled = load_model(model_dir).predict(texts, [POOLED, POOLED])
    assert model.predict(texts, ["unseen", None]).tolist() == pooled.tolist()
    assert model.predict(texts, ["web", "web"]).tolist() != pooled.tolist()
    result = distill(selection, TrainingSettings(per_domain=False, max_train=120))
    save(result, tmp_path)
    record = read_record(tmp_path)
    assert record["model"]["domains"] == [POOLED] and record["training"]["documents"] == 120
    assert record["heldout_agreement"]["jaccard"] > 0.3  # chance is 0.11
    heldout = result.heldout
    predictions = load_model(tmp_path).predict(
        [d.text for d in heldout], [d.domain for d in heldout]
    )
    assert np.array_equal(predictions, result.heldout_predictions)


def test_bad_input_is_a_clear_error(tmp_path, selection):
    with pytest.raises(ValueError, match="no scored documents"):
        distill(tmp_path, TrainingSettings())
    broken = tmp_path / "broken"
    documents = synthetic_documents(per_domain=5)
    del documents[3]["metadata"]["attention_influence"]
    write_scored_selection(broken, documents)
    with pytest.raises(ValueError, match=r"doc-0003 has no finite 'attention_influence'"):
        distill(broken, TrainingSettings())
    with pytest.raises(ValueError, match="not a distilled model folder"):
        load_model(tmp_path)
    for bad in ({"heldout_share": 1.0}, {"alpha": 0}, {"max_train": 1}):
        with pytest.raises(ValueError):
            TrainingSettings(**bad)
    with pytest.raises(ValueError, match="both must be non-empty"):
        distill(selection, TrainingSettings(heldout_share=1e-9))

"""Distilling a selection into a model folder and reading it back
(ai_filters/distill/folder.py)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from ai_filters.distill import (
    DEFAULT_GROUP_KEY,
    HELDOUT_IDS_FILE,
    HELDOUT_TABLE,
    NO_GROUPS,
    POOLED,
    RECORD_FILE,
    TRAINING_IDS_FILE,
    WEIGHTS_FILE,
    TrainingSettings,
    agreement,
    check_folder,
    distill,
    fit,
    is_heldout,
    load_model,
    read_ids,
    read_record,
    save,
)
from ai_filters.selection.folder import ScorerRecord, SelectionFolder
from tests.helpers.distill import (
    HEADS_FILE,
    grouped,
    synthetic_documents,
    write_scored_selection,
)


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


def test_pooled_only_model_with_fewer_training_documents(selection, tmp_path):
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


def test_bad_selection_is_a_clear_error(tmp_path, selection):
    with pytest.raises(FileNotFoundError, match="scorer.json is missing"):
        distill(tmp_path, TrainingSettings())
    SelectionFolder(tmp_path).write_scorer(ScorerRecord("random", "random_score", 0.2))
    with pytest.raises(ValueError, match="no scored documents"):
        distill(tmp_path, TrainingSettings())
    broken = tmp_path / "broken"
    documents = synthetic_documents(per_domain=5)
    del documents[3]["metadata"]["attention_influence"]
    write_scored_selection(broken, documents)
    with pytest.raises(ValueError, match=r"doc-0003 has no finite 'attention_influence'"):
        distill(broken, TrainingSettings())
    for bad in ({"heldout_share": 1.0}, {"alpha": 0}, {"max_train": 1}):
        with pytest.raises(ValueError):
            TrainingSettings(**bad)
    with pytest.raises(ValueError, match="both must be non-empty"):
        distill(selection, TrainingSettings(heldout_share=1e-9))


def test_bad_model_folder_is_a_clear_error(tmp_path, model_dir):
    with pytest.raises(ValueError, match="not a distilled model folder"):
        load_model(tmp_path)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / RECORD_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        check_folder(folder)
    record = json.loads((model_dir / RECORD_FILE).read_text())
    (folder / RECORD_FILE).write_text(json.dumps(record))
    with pytest.raises(ValueError, match="incomplete distilled model folder: .*weights.npy"):
        check_folder(folder)
    np.save(folder / WEIGHTS_FILE, np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"weights of shape \(2, 5\), the record says \(3, "):
        load_model(folder)
    (folder / RECORD_FILE).write_text(json.dumps({**record, "format_version": 99}))
    with pytest.raises(ValueError, match="format version 99"):
        read_record(folder)
    with pytest.raises(ValueError, match="does not exist"):
        read_ids(tmp_path / "ids.txt")


def test_fit_never_sees_a_heldout_document(selection, tmp_path, monkeypatch):
    """The ids ``fit`` is given (recorded around the real fit) and the held-out ids written to
    the model folder are disjoint, together every scored id, and the record counts them."""
    from ai_filters.distill import folder as distill_folder

    seen: list[str] = []

    def recording_fit(documents, settings):
        seen.extend(d.id for d in documents)
        return fit(documents, settings)

    monkeypatch.setattr(distill_folder, "fit", recording_fit)
    save(distill(selection, TrainingSettings()), tmp_path)
    heldout = read_ids(tmp_path)
    record = read_record(tmp_path)
    assert len(seen) == len(set(seen)) == record["training"]["documents"]
    assert not set(seen) & heldout
    assert set(seen) | heldout == {d["id"] for d in synthetic_documents()}


def test_fit_sees_training_ids_only_and_no_heldout_source(tmp_path, monkeypatch):
    """Distilling a selection of pieces from shared texts: the ids ``fit`` receives are the
    recorded training ids, none of them held out, and no held-out piece shares its text with a
    training piece; the record names the group key and counts the groups."""
    import ai_filters.distill.folder as folder_module

    documents = grouped(synthetic_documents(), size=5)
    selection = write_scored_selection(tmp_path / "selection", documents)
    fitted: list[str] = []
    real_fit = folder_module.fit

    def recording_fit(docs, settings):
        fitted.extend(d.id for d in docs)
        return real_fit(docs, settings)

    monkeypatch.setattr(folder_module, "fit", recording_fit)
    save(distill(selection, TrainingSettings()), tmp_path / "model")
    record = read_record(tmp_path / "model")
    training_ids = (tmp_path / "model" / TRAINING_IDS_FILE).read_text().splitlines()
    heldout_ids = read_ids(tmp_path / "model")
    assert record["training"]["ids_file"] == TRAINING_IDS_FILE
    assert sorted(fitted) == training_ids and len(training_ids) == record["training"]["documents"]
    assert heldout_ids and not heldout_ids & set(training_ids)
    source = {d["id"]: d["metadata"]["source_text"] for d in documents}
    assert not {source[i] for i in heldout_ids} & {source[i] for i in training_ids}
    holdout = record["holdout"]
    assert holdout["group_key"] == DEFAULT_GROUP_KEY == "source_text"
    assert holdout["heldout_groups"] == len({source[i] for i in heldout_ids})
    assert holdout["training_groups"] == len({source[i] for i in training_ids})
    assert holdout["heldout_groups"] + holdout["training_groups"] == 60
    assert holdout["documents_without_group"] == 0
    by_id = distill(selection, TrainingSettings(group_key=NO_GROUPS))  # the split by id
    assert {d.id for d in by_id.heldout} == {
        d["id"] for d in documents if is_heldout(d["id"], 0.2, "heldout")
    }

"""The held-out rule and the training order (ai_filters/distill/heldout.py)."""

from __future__ import annotations

import random

from ai_filters.distill import (
    DEFAULT_GROUP_KEY,
    NO_GROUPS,
    URL_HOST,
    TrainingSettings,
    group_counts,
    group_of,
    holdout_key,
    is_heldout,
    split,
)
from tests.helpers.distill import as_scored, grouped, synthetic_documents


def test_heldout_split_is_disjoint_stable_and_nested():
    documents = as_scored(synthetic_documents())
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
    grown = as_scored(synthetic_documents(per_domain=300))  # the same ids and 300 more
    assert heldout_ids <= {d.id for d in split(grown, settings)[1]}
    small = {d.id for d in split(documents, TrainingSettings(max_train=50))[0]}
    large = {d.id for d in split(documents, TrainingSettings(max_train=100))[0]}
    assert len(small) == 50 and small < large < training_ids
    other_salt = {d.id for d in split(documents, TrainingSettings(salt="other"))[1]}
    assert other_salt != heldout_ids


def test_whole_groups_are_held_out():
    """No held-out document shares its group with a training document, at any training size;
    a document without a group is held out by its id alone."""
    documents = as_scored(grouped(synthetic_documents(), size=5))
    loose = as_scored(synthetic_documents(per_domain=300))[-20:]  # no source_text: own groups
    for max_train in (None, 50):
        settings = TrainingSettings(max_train=max_train)
        training, heldout = split([*documents, *loose], settings)
        training_groups = {holdout_key(d) for d in training}
        heldout_groups = {holdout_key(d) for d in heldout}
        assert heldout and training and not training_groups & heldout_groups
    training, heldout = split([*documents, *loose], TrainingSettings())
    keys = {holdout_key(d) for d in [*documents, *loose]}
    assert {holdout_key(d) for d in heldout} == {k for k in keys if is_heldout(k, 0.2, "heldout")}
    sides = {}
    for side, members in (("train", training), ("heldout", heldout)):
        for document in members:
            assert sides.setdefault(document.group or document.id, side) == side
    counts = group_counts(training, heldout)
    assert counts["heldout_groups"] + counts["training_groups"] == 60 + 20
    assert counts["documents_without_group"] == 20
    for document in loose:
        held = document in heldout
        assert held == is_heldout(document.id, 0.2, "heldout")


def test_group_of_each_kind_of_key():
    page = {"url": "https://Docs.Example.org:8080/a/b?c", "source_text": "web/numpy", "n": 3}
    assert group_of(page, URL_HOST) == "docs.example.org"
    assert group_of(page, "source_text") == "web/numpy"
    assert group_of(page, "n") == "3"
    assert group_of(page, NO_GROUPS) is None
    for metadata in ({}, {"url": None}, {"url": "not a url"}, {"url": "http://[oops/x"}):
        assert group_of(metadata, URL_HOST) is None
    for value in (None, ""):
        assert group_of({"source_text": value}, "source_text") is None
    assert DEFAULT_GROUP_KEY == "source_text"

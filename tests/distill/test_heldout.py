"""The held-out rule and the training order (ai_filters/distill/heldout.py)."""

from __future__ import annotations

import random

from ai_filters.distill import TrainingSettings, split
from tests.helpers.distill import as_scored, synthetic_documents


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

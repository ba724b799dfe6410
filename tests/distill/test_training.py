"""Training a distilled model (ai_filters/distill/training.py) and applying it (model.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ai_filters.distill import (
    POOLED,
    DistilledModel,
    Features,
    ScoredDocument,
    TrainingSettings,
    fit,
    load_model,
    rank_targets,
)
from tests.helpers.distill import as_scored, synthetic_documents


def test_targets_rank_within_each_domain():
    documents = [
        ScoredDocument(f"{domain}/{i}", domain, "x", score)
        for domain, scores in (("a", [3.0, 1.0, 2.0, 2.0]), ("b", [10.0, 20.0]))
        for i, score in enumerate(scores)
    ]
    assert rank_targets(documents).tolist() == [1.0, 0.25, 0.625, 0.625, 0.5, 1.0]


def test_a_model_per_domain_with_two_documents_and_the_pooled_one():
    documents = as_scored(synthetic_documents(per_domain=20))
    lonely = ScoredDocument("code/0", "code", "def f(): pass", 1.0)
    model = fit([*documents, lonely], TrainingSettings(features=Features(bits=12)))
    assert model.domains == ["math", "web", POOLED]  # code has 1 document: the pooled model's
    assert model.weights.shape == (3, 2**12 + 8) and model.weights.dtype == np.float32
    pooled_only = fit(documents, TrainingSettings(per_domain=False))
    assert pooled_only.domains == [POOLED] and pooled_only.own_domains == []
    with pytest.raises(ValueError, match="at least 2 documents"):
        fit([lonely], TrainingSettings())


def test_other_domains_get_the_pooled_model(model_dir):
    model = load_model(model_dir)
    texts = ["therefore the proof of the lemma", "the of and to in is"]
    pooled = model.predict(texts, [POOLED, POOLED])
    assert model.predict(texts, ["unseen", None]).tolist() == pooled.tolist()
    assert model.predict(texts, ["web", "web"]).tolist() != pooled.tolist()
    # each text alone: the same score as in a batch of mixed domains (exact: same dot product)
    domains = ["web", "math"]
    alone = [model.predict([t], [d])[0] for t, d in zip(texts, domains, strict=True)]
    assert alone == model.predict(texts, domains).tolist()
    assert model.predict([], []).tolist() == []
    with pytest.raises(ValueError, match="2 texts but 1 domains"):
        model.predict(texts, ["web"])
    with pytest.raises(ValueError, match="the pooled one"):
        DistilledModel(
            Features(), ["web"], model.weights, model.intercepts, np.zeros(8), np.ones(8)
        )

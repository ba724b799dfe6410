"""Training a distilled model: per domain, a ridge regression of the document's rank within its
domain on its features, and a pooled one on every document."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ai_filters.distill.features import Features, text_statistics
from ai_filters.distill.groups import DEFAULT_GROUP_KEY
from ai_filters.distill.model import POOLED, DistilledModel
from ai_filters.distill.scored import ScoredDocument

SOLVER = "sparse_cg"


@dataclass(frozen=True)
class TrainingSettings:
    """How a model is trained: the regularisation, the held-out split (its share of groups,
    salt and group key, :mod:`ai_filters.distill.groups`), the training size, per domain or
    pooled only, the features."""

    alpha: float = 1.0  # the ridge penalty
    heldout_share: float = 0.2
    salt: str = "heldout"
    group_key: str = DEFAULT_GROUP_KEY
    max_train: int | None = None
    per_domain: bool = True  # one model per domain (and the pooled one); False: pooled only
    features: Features = field(default_factory=Features)

    def __post_init__(self) -> None:
        if not 0 < self.heldout_share < 1:
            raise ValueError(f"the held-out share must be in (0, 1), got {self.heldout_share}")
        if not self.group_key:
            raise ValueError("the group key must be a metadata field name, 'url_host' or 'none'")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be positive, got {self.alpha}")
        if self.max_train is not None and self.max_train < 2:
            raise ValueError(f"max_train must be at least 2, got {self.max_train}")


def rank_targets(documents: Sequence[ScoredDocument]) -> np.ndarray:
    """Per document, its rank among the given documents of its domain scaled to (0, 1] (ties
    share their mean rank). The rank, not the top-fraction label: every document teaches."""
    from scipy.stats import rankdata

    scores = np.array([d.score for d in documents])
    domains = np.array([d.domain for d in documents])
    targets = np.zeros(len(documents))
    for domain in np.unique(domains):
        members = domains == domain
        targets[members] = rankdata(scores[members]) / members.sum()
    return targets


def fit(documents: Sequence[ScoredDocument], settings: TrainingSettings) -> DistilledModel:
    """Train on ``documents`` (all of them: split first): with ``per_domain``, a ridge regression
    for every domain with at least 2 documents; and the pooled one on all documents.

    Targets come from these documents alone (:func:`rank_targets`); the statistics are
    standardised with their mean and standard deviation over these documents.
    """
    from sklearn.linear_model import Ridge

    if len(documents) < 2:
        raise ValueError(f"training needs at least 2 documents, got {len(documents)}")
    features = settings.features
    texts = [d.text for d in documents]
    mean, scale = np.zeros(0), np.zeros(0)
    if features.statistics:
        values = np.array([text_statistics(text, features.token_pattern) for text in texts])
        mean, scale = values.mean(axis=0), values.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
    labels = np.array([d.domain for d in documents])
    present, counts = np.unique(labels, return_counts=True)
    domains = [str(name) for name, count in zip(present, counts, strict=True) if count >= 2]
    names = [*domains, POOLED] if settings.per_domain else [POOLED]
    draft = DistilledModel(features, names, np.zeros((0, 0)), np.zeros(0), mean, scale)
    matrix, targets = draft.matrix(texts), rank_targets(documents)
    weights, intercepts = [], []
    for name in draft.domains:
        members = np.flatnonzero(labels == name) if name != POOLED else np.arange(len(labels))
        ridge = Ridge(alpha=settings.alpha, solver=SOLVER).fit(matrix[members], targets[members])
        weights.append(ridge.coef_.astype(np.float32))
        intercepts.append(float(ridge.intercept_))
    return replace(draft, weights=np.stack(weights), intercepts=np.array(intercepts))

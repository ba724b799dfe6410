"""A distilled model: linear models on :class:`~ai_filters.distill.features.Features`, one per
domain and a pooled one for documents of any other domain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ai_filters.distill.features import Features, text_statistics

POOLED = "*"  # the name of the pooled model, the last one: documents of other domains


@dataclass
class DistilledModel:
    """Linear models on :class:`Features`: one per name of ``domains``, the last one the pooled
    model (:data:`POOLED`). A document's score is ``features . weights[row] + intercepts[row]``,
    ``row`` its domain's model or the pooled one.

    ``weights`` holds a row per model (float32, stored so; the products are float64) and
    ``statistics_mean`` / ``statistics_scale`` standardise the statistics as in training.
    """

    features: Features
    domains: list[str]
    weights: np.ndarray
    intercepts: np.ndarray
    statistics_mean: np.ndarray
    statistics_scale: np.ndarray

    def __post_init__(self) -> None:
        if not self.domains or self.domains[-1] != POOLED:
            raise ValueError(f"the last model must be the pooled one ('{POOLED}'): {self.domains}")
        self._vectorizer = self.features.vectorizer()
        self._rows = {domain: row for row, domain in enumerate(self.domains)}

    @property
    def own_domains(self) -> list[str]:
        """The domains with a model of their own (every other one gets the pooled model)."""
        return self.domains[:-1]

    def matrix(self, texts: Sequence[str]):
        """The feature matrix of ``texts`` (scipy CSR, one row per text)."""
        from scipy import sparse

        hashed = self._vectorizer.transform(texts)
        if not self.features.statistics:
            return hashed
        pattern = self.features.token_pattern
        values = np.array([text_statistics(text, pattern) for text in texts], dtype=np.float64)
        standard = (values - self.statistics_mean) / self.statistics_scale
        return sparse.hstack([hashed, sparse.csr_matrix(standard)], format="csr")

    def row(self, domain: str | None) -> int:
        """The model that scores a document of ``domain``: its own, else the pooled one."""
        return self._rows.get(domain, len(self.domains) - 1)

    def predict(self, texts: Sequence[str], domains: Sequence[str | None]) -> np.ndarray:
        """The score of each text under the model of its domain (float64). One sparse dot
        product per text, so a text's score does not depend on the others in the call."""
        if len(texts) != len(domains):
            raise ValueError(f"{len(texts)} texts but {len(domains)} domains")
        scores = np.zeros(len(texts))
        if not len(texts):
            return scores
        matrix = self.matrix(texts)
        rows = np.array([self.row(domain) for domain in domains])
        weights = self.weights.astype(np.float64)
        for row in np.unique(rows):
            members = np.flatnonzero(rows == row)
            scores[members] = matrix[members] @ weights[row] + self.intercepts[row]
        return scores

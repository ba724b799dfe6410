"""What a distilled model sees of a text: hashed word n-grams and a few text statistics."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

STATISTICS = (
    "log_chars",
    "log_tokens",
    "distinct_tokens",  # distinct tokens / tokens: how little the text repeats itself
    "distinct_bigrams",
    "distinct_4grams",
    "letters",  # share of the characters
    "digits",
    "line_breaks",
)
_LETTER = re.compile(r"[^\W\d_]")
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class Features:
    """Hashed word 1- to ``max_ngram``-grams of the lowercased text (``2**bits`` features,
    tokens ``token_pattern``: runs of letters, digits and underscores, and single other
    symbols, so code and formulas keep their operators), L2-normalised; then, with
    ``statistics``, the :data:`STATISTICS` of the text.

    The statistics are there because AttentionInfluence rewards what retrieval heads can copy
    from the context, which n-gram counts alone do not see (how much a text repeats itself).
    """

    bits: int = 20
    max_ngram: int = 2
    token_pattern: str = r"\w+|[^\w\s]"
    statistics: bool = True

    def vectorizer(self):
        """scikit-learn's stateless ``HashingVectorizer`` with these settings (MurmurHash3,
        fixed seed: the same features whatever the scikit-learn version)."""
        from sklearn.feature_extraction.text import HashingVectorizer

        return HashingVectorizer(
            n_features=2**self.bits,
            ngram_range=(1, self.max_ngram),
            token_pattern=self.token_pattern,
            lowercase=True,
            alternate_sign=False,
            norm="l2",
            dtype=np.float64,
        )

    @property
    def statistics_count(self) -> int:
        return len(STATISTICS) if self.statistics else 0

    @property
    def count(self) -> int:
        """Columns of the feature matrix: hashed n-grams, then statistics."""
        return 2**self.bits + self.statistics_count


def text_statistics(text: str, token_pattern: str) -> list[float]:
    """The :data:`STATISTICS` of ``text``, in that order (tokens as the n-grams see them)."""
    tokens = re.findall(token_pattern, text.lower())
    chars = max(len(text), 1)
    return [
        math.log1p(len(text)),
        math.log1p(len(tokens)),
        _distinct_share(tokens, 1),
        _distinct_share(tokens, 2),
        _distinct_share(tokens, 4),
        _LETTER.subn("", text)[1] / chars,
        _DIGIT.subn("", text)[1] / chars,
        text.count("\n") / chars,
    ]


def _distinct_share(tokens: list[str], n: int) -> float:
    """Distinct ``n``-grams / ``n``-grams (1.0 for a text with none)."""
    grams = list(zip(*(tokens[i:] for i in range(n)), strict=False))
    return len(set(grams)) / len(grams) if grams else 1.0

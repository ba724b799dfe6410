"""Fixtures of the proxy tests: the embedded tokenizer and a small demo corpus."""

from __future__ import annotations

import pytest

from ai_filters.demo.corpus import local_corpus
from ai_filters.engine.models import load_tokenizer
from ai_filters.proxy import TokenCache


@pytest.fixture(scope="session")
def tokens() -> TokenCache:
    return TokenCache(load_tokenizer("smollm2-135m"))


@pytest.fixture(scope="session")
def corpus() -> list[dict]:
    return local_corpus(6, seed=0, chunk_chars=1200)

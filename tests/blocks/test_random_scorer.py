"""The random-subset control block."""

from __future__ import annotations

import copy

from datatrove.data import Document

from ai_filters.blocks import RandomScorer
from tests.helpers.blocks import CODE, WEB


def test_random_scorer_is_a_pure_function_of_seed_and_id(loaded):
    """Order and sharding never change a random score; another seed gives other scores."""
    documents = [Document(text=text, id=doc_id) for doc_id, text in WEB + CODE]
    forward = {d.id: d for d in RandomScorer(seed=1)(copy.deepcopy(documents))}
    backward = {d.id: d for d in RandomScorer(seed=1)(copy.deepcopy(documents[::-1]))}
    other_seed = {d.id: d for d in RandomScorer(seed=2)(copy.deepcopy(documents))}
    assert set(forward) == {i for i, text in WEB + CODE if len(text) > 2}  # same skips as the model
    for doc_id, document in forward.items():
        score = document.metadata["random_score"]
        assert 0 <= score < 1 and score == backward[doc_id].metadata["random_score"]
        assert score != other_seed[doc_id].metadata["random_score"]
        assert document.metadata["ai_doc_tokens"] == len(loaded.tokenizer(document.text).input_ids)

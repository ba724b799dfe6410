"""Held-out sets: no shared text with the corpus, deterministic problems, full blocks."""

from __future__ import annotations

import re

import pytest
import torch

from ai_filters.proxy import heldout_blocks, local_heldout, reasoning_problems


def test_heldout_shares_no_source_text_with_the_corpus(corpus) -> None:
    heldout = local_heldout([d["id"] for d in corpus], per_domain=5)
    parents = {d["id"].split("#")[0] for d in corpus}
    assert len(heldout) == 20
    assert not {d["id"].split("#")[0] for d in heldout} & parents
    assert not {d["text"] for d in heldout} & {d["text"] for d in corpus}


def test_reasoning_problems_are_deterministic_and_correct() -> None:
    problems = reasoning_problems(12, seed=4)
    assert problems == reasoning_problems(12, seed=4)
    assert problems != reasoning_problems(12, seed=5)
    for problem in problems:
        text = problem["text"]
        assert text.startswith("Problem:") and "\nAnswer:" in text
        equation = re.match(r"Problem: Solve (\d+)x \+ (\d+) = (-?\d+)", text)
        if equation:
            a, b, c = map(int, equation.groups())
            x = int(re.search(r"Answer: x = (-?\d+)", text).group(1))
            assert a * x + b == c


def test_heldout_blocks_are_full_and_in_document_order(tokens) -> None:
    problems = reasoning_problems(6)
    stream = [t for d in problems for t in tokens.ids(d).tolist()]
    blocks = heldout_blocks(problems, tokens, 32)["reasoning"]
    assert blocks.shape == (len(stream) // 32, 32)  # the tail shorter than a block is left out
    assert blocks.flatten().tolist() == stream[: blocks.numel()]
    shared = heldout_blocks(problems, tokens, 32, multiple_of=5)["reasoning"]
    assert shared.shape[0] == blocks.shape[0] - blocks.shape[0] % 5 < blocks.shape[0]
    assert torch.equal(shared, blocks[: shared.shape[0]])
    with pytest.raises(ValueError, match="held-out set 'reasoning' has .* fewer than 1 block"):
        heldout_blocks(problems[:1], tokens, 4096)

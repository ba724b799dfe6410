"""Training data: tokens with EOS, packed blocks, the token-matched random control."""

from __future__ import annotations

import pytest
import torch

from ai_filters.demo.corpus import local_corpus
from ai_filters.engine.models import load_tokenizer, resolve_model_path
from ai_filters.proxy import TokenCache, pack_blocks, token_matched_random, tokens_per_domain
from tests.proxy.helpers import top_fraction, with_random_scores


def test_a_tokenizer_file_its_folder_and_the_model_give_the_same_tokens(tokens, corpus, tmp_path):
    source = resolve_model_path("smollm2-135m") + "/tokenizer.json"
    (tmp_path / "tokenizer.json").write_bytes(open(source, "rb").read())
    for spec in (str(tmp_path / "tokenizer.json"), str(tmp_path)):
        other = TokenCache(load_tokenizer(spec))
        assert other.vocab_size == tokens.vocab_size == 49152
        assert all((other.ids(d) == tokens.ids(d)).all() for d in corpus)


def test_random_control_matches_selection_tokens_per_domain(tokens) -> None:
    documents = local_corpus(12, seed=1, chunk_chars=1200)
    selection = top_fraction(documents, key=lambda d: -len(d["text"]), fraction=0.25)
    targets = tokens_per_domain(selection, tokens)
    picked = token_matched_random(with_random_scores(documents, seed=3), targets, tokens)
    got = tokens_per_domain(picked, tokens)
    assert set(got) == set(targets) == {"web", "textbook", "code", "math"}
    for domain, target in targets.items():
        sizes = [len(tokens.ids(d)) for d in documents if d["metadata"]["domain"] == domain]
        assert abs(got[domain] - target) <= max(sizes) / 2, domain
    assert {d["id"] for d in picked} != {d["id"] for d in selection}


def test_random_control_takes_the_highest_scores_first(tokens) -> None:
    documents = with_random_scores(local_corpus(12, seed=1, chunk_chars=1200), seed=5)
    web = [d for d in documents if d["metadata"]["domain"] == "web"]
    picked = token_matched_random(documents, {"web": 1500}, tokens)
    ranked = sorted(web, key=lambda d: -d["metadata"]["random_score"])
    assert [d["id"] for d in picked] == [d["id"] for d in ranked[: len(picked)]]
    with pytest.raises(ValueError, match="domain 'nope'"):
        token_matched_random(documents, {"nope": 10}, tokens)


def test_pack_blocks_shuffles_with_the_seed_and_separates_documents(tokens, corpus) -> None:
    lists = [tokens.ids(d) for d in corpus]
    assert all(ids[-1] == tokens.eos_id for ids in lists)
    blocks = pack_blocks(lists, 64, seed=0)
    assert blocks.shape == (sum(map(len, lists)) // 64, 64)
    assert torch.equal(blocks, pack_blocks(lists, 64, seed=0))
    assert not torch.equal(blocks, pack_blocks(lists, 64, seed=1))
    plain = pack_blocks(lists, 64).flatten().tolist()
    assert plain[: len(lists[0]) + len(lists[1])] == [*lists[0], *lists[1]]

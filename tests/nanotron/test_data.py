"""Tokenized .ds folders: tokens, token size, tokenizer and largest id, read from the files."""

from __future__ import annotations

from ai_filters.nanotron import read_tokenized_folder, token_size_for
from tests.nanotron.helpers import COSMO2


def test_tokens_are_counted_from_the_ds_files(tokenized):
    corpus, _ = tokenized
    assert sorted(p.name for p in corpus.iterdir()) == [
        "000_corpus.ds",
        "000_corpus.ds.index",
        "000_corpus.ds.metadata",
        "001_corpus.ds",
        "001_corpus.ds.index",
        "001_corpus.ds.metadata",
        "corpus.ds.metadata",
    ]
    info = read_tokenized_folder(corpus)
    assert (info.tokens, info.token_size, info.tokenizer_name) == (3000, 2, COSMO2)
    assert info.max_token_id == 1999


def test_token_size_follows_the_vocab():
    assert (token_size_for(49152), token_size_for(65536), token_size_for(65537)) == (2, 2, 4)

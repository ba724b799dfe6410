"""Probes are the tokenizer's own encoding of their text, with spans found by offsets."""

from __future__ import annotations

import pytest

from ai_filters.engine.probes import (
    Probe,
    build_probes,
    decode_probe,
    default_sentence_texts,
    token_span,
)


@pytest.fixture(scope="module")
def probes(embedded):
    return build_probes(embedded.tokenizer, default_sentence_texts(), 4, 512, seed=1)


def test_probe_ids_are_the_tokenizers_encoding_of_the_probe_text(embedded, probes):
    tokenizer = embedded.tokenizer
    for probe in probes:
        text = decode_probe(tokenizer, probe)
        assert tokenizer(text).input_ids == list(probe.input_ids)


def test_answer_and_gold_value_spans_hold_the_queried_value(embedded, probes):
    """The answer decodes to the value; the context's value span decodes to the same value,
    its last token possibly merged with the quote after it (``.",``)."""
    tokenizer = embedded.tokenizer
    for probe in probes:
        answer = tokenizer.decode(list(probe.input_ids[probe.answer_start :]))
        in_context = tokenizer.decode(list(probe.input_ids[probe.value_start : probe.value_end]))
        assert in_context.startswith(answer) and in_context[len(answer) :] in ("", '"', '",')
        before = tokenizer.decode(list(probe.input_ids[: probe.value_start]))
        assert before.endswith('": "')


def test_token_span_takes_every_token_that_overlaps_the_characters():
    offsets = [(0, 0), (0, 3), (3, 5), (5, 8), (8, 9)]  # a special token first: empty offsets
    assert token_span(offsets, 3, 8) == (2, 4)
    assert token_span(offsets, 4, 6) == (2, 4)  # characters inside tokens: the whole tokens
    assert token_span(offsets, 0, 1) == (1, 2)
    with pytest.raises(ValueError, match="no token covers"):
        token_span(offsets, 9, 10)


def test_probe_spans_must_be_in_order():
    Probe((1, 2, 3, 2), 1, 2, 3)
    with pytest.raises(ValueError, match="non-empty gold value span"):
        Probe((1, 2, 3), 1, 2, 3)  # no answer
    with pytest.raises(ValueError, match="non-empty gold value span"):
        Probe((1, 2, 3, 2), 2, 4, 3)  # value span overlaps the answer

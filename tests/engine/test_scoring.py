"""The scoring engine on the embedded model: definition, padding, windows, skips."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import torch

from ai_filters.demo.corpus import local_corpus
from ai_filters.engine.masking import masked_heads
from ai_filters.engine.numerics import loss_rtol, score_atol
from ai_filters.engine.prefix import shared_prefix_layers
from ai_filters.engine.scoring import DocumentScore, ScoringConfig, ScoringEngine
from ai_filters.fields import SKIP_TOO_SHORT

HEADS = [(18, 6), (20, 6), (17, 3), (18, 7), (23, 2), (17, 4), (20, 5)]


@pytest.fixture(scope="module")
def documents():
    return [document["text"] for document in local_corpus(docs_per_domain=1, seed=1)]


def scorer(embedded, **config) -> ScoringEngine:
    return ScoringEngine(embedded, HEADS, ScoringConfig(**config))


def test_losses_match_huggingface_labels_loss(embedded, documents):
    """loss_base is the model's own next-token loss (HF shifts ``labels`` itself)."""
    text = documents[0]
    ids = torch.tensor([embedded.tokenizer(text).input_ids[:300]])
    with torch.no_grad():
        expected = embedded.model(input_ids=ids, labels=ids).loss.item()
        with masked_heads(embedded.model, HEADS):
            expected_ref = embedded.model(input_ids=ids, labels=ids).loss.item()
    score = scorer(embedded, max_tokens=300).score_token_ids([ids[0].tolist()])[0]
    # another path through the same fp32 arithmetic (see ai_filters.engine.numerics)
    rtol = loss_rtol(embedded.config, 300)
    assert score.loss_base == pytest.approx(expected, rel=rtol)
    assert score.loss_ref == pytest.approx(expected_ref, rel=rtol)
    assert score.n_tokens == 300
    # the same formula on the same two floats: equal up to one float64 rounding
    assert score.attention_influence == pytest.approx(
        (score.loss_ref - score.loss_base) / score.loss_base, rel=1e-12
    )
    assert score.loss_ref != pytest.approx(score.loss_base, rel=1e-3)  # far beyond rounding


def test_one_padded_batch_equals_one_document_at_a_time(embedded, documents):
    texts = [documents[0][:40], documents[1], documents[2][:300], documents[3][:1500], "Hi there"]
    lengths = [len(embedded.tokenizer(text).input_ids) for text in texts]
    assert max(lengths) > 20 * min(lengths)
    batched = scorer(embedded, max_tokens=512, batch_size=8, batch_tokens=8 * 512, min_row_fill=0)
    single = scorer(embedded, max_tokens=512, batch_size=1)
    together = batched.score_texts(texts)
    alone = [single.score_texts([text])[0] for text in texts]
    assert len(batched.plan([[0] * n for n in lengths])[0]) == 1
    # padding and batch shape change the kernels' summation order, nothing else
    rtol = loss_rtol(embedded.config, 512)
    for joint, separate in zip(together, alone, strict=True):
        assert joint.n_tokens == separate.n_tokens
        assert joint.loss_base == pytest.approx(separate.loss_base, rel=rtol)
        assert joint.loss_ref == pytest.approx(separate.loss_ref, rel=rtol)
        atol = score_atol(separate.attention_influence, rtol)
        assert joint.attention_influence == pytest.approx(separate.attention_influence, abs=atol)


def test_windows_average_token_weighted(embedded, documents):
    ids = embedded.tokenizer(documents[2]).input_ids[:250]
    windowed = scorer(embedded, max_tokens=100, windows=True).score_token_ids([ids])[0]
    parts = scorer(embedded, max_tokens=100).score_token_ids([ids[:100], ids[100:200], ids[200:]])
    weights = [99, 99, 49]  # predicted tokens per window
    rtol = loss_rtol(embedded.config, 100)  # windows and parts may be batched differently
    for field in ("loss_base", "loss_ref"):
        expected = sum(getattr(p, field) * w for p, w in zip(parts, weights, strict=True)) / sum(
            weights
        )
        assert getattr(windowed, field) == pytest.approx(expected, rel=rtol)
    assert windowed.n_tokens == 250
    truncated = scorer(embedded, max_tokens=100).score_token_ids([ids])[0]
    assert truncated.n_tokens == 100
    assert truncated.loss_base == pytest.approx(parts[0].loss_base, rel=rtol)  # alone vs batched
    assert truncated.document_tokens == windowed.document_tokens == 250


def test_documents_under_two_tokens_get_a_reason(embedded):
    one_token = embedded.tokenizer("Hello").input_ids
    assert len(one_token) == 1
    scores = scorer(embedded).score_texts(["", "Hello", "Hello world, how are you?"])
    assert [score.skip_reason for score in scores] == [SKIP_TOO_SHORT, SKIP_TOO_SHORT, None]
    assert scores[0].attention_influence is None and scores[1].n_tokens == 1


def test_output_order_is_input_order(embedded, documents):
    texts = [documents[3][:2000], documents[0][:100], documents[1][:700]]
    forward = scorer(embedded, max_tokens=256, batch_size=2).score_texts(texts)
    backward = scorer(embedded, max_tokens=256, batch_size=2).score_texts(texts[::-1])
    rtol = loss_rtol(embedded.config, 256)  # other batch partners: other summation order
    for one, other in zip(forward, backward[::-1], strict=True):
        assert one.loss_base == pytest.approx(other.loss_base, rel=rtol)
    assert len({round(score.loss_base, 4) for score in forward}) == 3


def test_layers_below_the_first_masked_head_run_once(embedded, documents):
    """One forward: the bottom layers see the batch once, the upper ones plain + masked rows."""
    engine = scorer(embedded, max_tokens=64, batch_size=3)  # its start-up check runs a forward
    rows_seen: dict[int, list[int]] = {0: [], 16: [], 17: [], 29: []}
    layers = embedded.model.base_model.layers
    handles = [
        layers[index].mlp.register_forward_pre_hook(
            lambda module, args, index=index: rows_seen[index].append(args[0].shape[0])
        )
        for index in rows_seen
    ]
    try:
        engine.score_texts(documents[:3])
    finally:
        for handle in handles:
            handle.remove()
    assert shared_prefix_layers(HEADS) == 17
    assert rows_seen == {0: [3], 16: [3], 17: [6], 29: [6]}


def test_score_metadata_fields():
    score = DocumentScore(n_tokens=10, document_tokens=25, loss_base=2.0, loss_ref=3.0)
    assert score.as_metadata() == {
        "attention_influence": 0.5,
        "ai_loss_base": 2.0,
        "ai_loss_ref": 3.0,
        "ai_n_tokens": 10,
        "ai_doc_tokens": 25,
    }


def test_config_rejects_nonsense():
    with pytest.raises(ValueError):
        ScoringConfig(max_tokens=1)
    with pytest.raises(ValueError):
        ScoringConfig(mask_mode="mean")
    with pytest.raises(ValueError, match="min_row_fill"):
        ScoringConfig(min_row_fill=1.5)
    with pytest.raises(ValueError, match="pack_tokens must be at least max_tokens"):
        ScoringConfig(max_tokens=512, pack_tokens=256)


def test_packed_documents_score_as_unpacked(embedded, documents):
    """Several documents in one row, each attending only to itself, give each its own losses."""
    texts = [documents[0][:600], documents[1][:200], documents[2][:90], documents[3][:400]]
    packed = scorer(embedded, max_tokens=128, packing=True, pack_tokens=256)
    alone = scorer(embedded, max_tokens=128, packing=False, batch_size=1)
    together = packed.score_texts(texts)
    separate = alone.score_texts(texts)
    batches, _ = packed.plan([[0] * s.n_tokens for s in together])
    assert sum(len(batch) for batch in batches) == 2  # four documents in two rows
    rtol = loss_rtol(embedded.config, 256)  # one row of 256 positions vs rows of their own
    for joint, single in zip(together, separate, strict=True):
        assert joint.n_tokens == single.n_tokens
        assert joint.loss_base == pytest.approx(single.loss_base, rel=rtol)
        assert joint.loss_ref == pytest.approx(single.loss_ref, rel=rtol)


def test_padding_is_counted_and_never_attended(embedded, documents):
    engine = scorer(embedded, max_tokens=64, batch_size=2, batch_tokens=128, min_row_fill=0)
    ids = [embedded.tokenizer(text).input_ids for text in documents[:2]]
    engine.score_token_ids([ids[0][:64], ids[1][:40]])
    assert (engine.feed.real, engine.feed.fed) == (104, 128)
    assert engine.feed.padding_share == 24 / 128


def test_background_tokenizing_gives_the_same_scores(embedded, documents):
    engine = scorer(embedded, max_tokens=64)
    batches = [documents[:2], ["", "\ud800 lone surrogate"], documents[2:4]]
    pairs = list(engine.score_batches(iter(batches)))
    assert [batch for batch, _ in pairs] == batches
    pipelined = [scores for _, scores in pairs]
    in_turn = [engine.score_texts(batch) for batch in batches]
    assert [len(scores) for scores in pipelined] == [2, 2, 2]
    assert pipelined[1][1].skip_reason == "untokenizable_text"
    rtol = loss_rtol(embedded.config, 64)  # the same batches again: at most rounding
    for got, expected in zip(sum(pipelined, []), sum(in_turn, []), strict=True):
        assert got.skip_reason == expected.skip_reason
        if got.skip_reason is None:
            assert got.loss_ref == pytest.approx(expected.loss_ref, rel=rtol)
    records = [{"text": text, "keep": i % 2 == 0} for i, text in enumerate(documents)]
    chosen = list(
        engine.score_batches([records], texts=lambda batch: [r["text"] for r in batch if r["keep"]])
    )
    assert chosen[0][0] is records and len(chosen[0][1]) == 2


@pytest.mark.slow  # inductor compiles three graphs with gcc: 11-47 s on the 2-core CI machine
@pytest.mark.parametrize("packing", [False, True])
def test_compiled_and_eager_scores_agree(tiny_llama, monkeypatch, packing):
    """Unpacked, and packed (rows of several documents with their own positions: another
    graph, with position ids and a block-diagonal mask)."""
    from ai_filters.engine.models import LoadedModel

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)  # the default cache folder

    loaded = LoadedModel("tiny", tiny_llama, None, torch.device("cpu"), torch.float32)
    generator = torch.Generator().manual_seed(0)
    docs = [torch.randint(0, 97, (n,), generator=generator).tolist() for n in (40, 33, 17, 60)]
    heads = [(1, 0), (2, 5), (3, 3)]
    config = ScoringConfig(max_tokens=64, packing=packing, pack_tokens=128)
    eager = ScoringEngine(loaded, heads, config).score_token_ids(docs)
    compiled = ScoringEngine(loaded, heads, replace(config, compile=True))
    if packing:  # rows [60 + 40 + 17] and [33]: three documents share a row
        assert [len(row) for batch in compiled.plan(docs)[0] for row in batch] == [3, 1]
    assert all(layer.self_attn._compiled_call_impl is not None for layer in tiny_llama.model.layers)
    capability = torch.backends.cpu.get_cpu_capability()  # kernels of one capability only
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"].endswith(f"cpu_{capability}")
    # new batch shapes after the first: dynamic shapes, no failure on a second call
    scores = compiled.score_token_ids(docs[:1]) and compiled.score_token_ids(docs)
    rtol = loss_rtol(tiny_llama.config, 64)  # fused kernels may sum in another order
    for got, expected in zip(scores, eager, strict=True):
        assert got.loss_base == pytest.approx(expected.loss_base, rel=rtol)
        assert got.loss_ref == pytest.approx(expected.loss_ref, rel=rtol)
        atol = score_atol(expected.attention_influence, rtol)
        assert got.attention_influence == pytest.approx(expected.attention_influence, abs=atol)


def test_a_chosen_inductor_cache_folder_is_kept(tmp_path, monkeypatch):
    from ai_filters.engine.compile import inductor_cache_per_cpu_capability

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    assert inductor_cache_per_cpu_capability() == str(tmp_path)


def test_rows_much_shorter_than_the_batch_get_their_own(embedded):
    engine = scorer(embedded, max_tokens=100, batch_tokens=1000)
    batches, _ = engine.plan([[0] * n for n in (100, 95, 90, 80, 75, 10)])
    widths = [[len(row[0].ids) for row in batch] for batch in batches]
    assert widths == [[100, 95, 90], [80, 75], [10]]  # each row fills >= 90 % of its batch

"""Every supported family, on a tiny random-weight model built from its configuration: the
engine's base and masked losses (padded and packed, on the model's own kernel and on the flex
kernel) against the model's own ``forward(labels=...)``, with masked heads replaced literally by
an independent eager attention; and the refusals of what the engine does not handle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest
import torch
import transformers

from ai_filters.engine.architectures import (
    SUPPORTED,
    Family,
    UnsupportedArchitectureError,
    check_output_logits,
    check_supported,
)
from ai_filters.engine.kernels import AttentionKernelError, is_block_mask, resolve_attention_kernel
from ai_filters.engine.masking import MaskingError
from ai_filters.engine.numerics import loss_rtol
from ai_filters.engine.prefix import shared_prefix
from ai_filters.engine.scoring import ScoringConfig, ScoringEngine
from tests.helpers.literal_attention import labels_loss, literal_labels_loss
from tests.helpers.tiny_families import COMMON, FAMILIES, loaded, tiny_model

LOGIT_POST_PROCESSING = ("granite", "gemma2", "gemma3_text", "cohere", "cohere2")
HEADS = [(1, 0), (1, 3), (2, 2)]  # layer 0 is shared by the plain and the masked rows
LENGTHS = [40, 23, 9, 2]
MAX_TOKENS = 48


pytestmark = pytest.mark.usefixtures("one_thread")


def documents(vocab: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randint(1, vocab, (n,), generator=generator).tolist() for n in LENGTHS]


def test_every_supported_family_has_a_test():
    assert set(FAMILIES) == set(SUPPORTED)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_engine_matches_forward_labels_and_literal_masking(family):
    model = tiny_model(family)
    docs = documents(model.config.vocab_size)
    rtol = loss_rtol(model.config, 2 * MAX_TOKENS)  # SDPA or eager vs eager: rounding only
    for mode in ("uniform", "zero"):
        expected_ref = [literal_labels_loss(model, ids, HEADS, mode) for ids in docs]
        expected_base = [labels_loss(model, ids) for ids in docs]
        for packing in (False, True):
            config = ScoringConfig(
                max_tokens=MAX_TOKENS, mask_mode=mode, packing=packing, pack_tokens=2 * MAX_TOKENS
            )
            engine = ScoringEngine(loaded(model), HEADS, config)
            scores = engine.score_token_ids(docs)
            for score, base, ref in zip(scores, expected_base, expected_ref, strict=True):
                assert score.loss_base == pytest.approx(base, rel=rtol), (mode, packing)
                assert score.loss_ref == pytest.approx(ref, rel=rtol), (mode, packing)
        assert engine.feed.fed == sum(LENGTHS)  # all four documents in one row, no padding
        assert abs(expected_ref[0] - expected_base[0]) > 1e-3, "masking should matter here"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_flex_kernel_on_packed_rows_matches_forward_labels_and_literal_masking(family):
    """All four documents in one row, attention through flex_attention with a block mask of
    the documents: a masked head's zero query row attends uniformly to its own document's
    prefix (``uniform``), or its output is zero (``zero``), as in the literal reference."""
    model = tiny_model(family)
    docs = documents(model.config.vocab_size)
    rtol = loss_rtol(model.config, 2 * MAX_TOKENS)  # flex vs eager: rounding only
    last_layer = model.base_model.layers[-1]
    masks = []  # the attention masks the last layer gets while the engine scores
    for mode in ("uniform", "zero"):
        config = ScoringConfig(
            max_tokens=MAX_TOKENS,
            mask_mode=mode,
            packing=True,
            pack_tokens=2 * MAX_TOKENS,
            attention_kernel="flex",
        )
        engine = ScoringEngine(loaded(model), HEADS, config)
        assert engine.config.attention_kernel == "flex"
        masks.clear()
        hook = last_layer.register_forward_pre_hook(
            lambda module, args, kwargs: masks.append(kwargs["attention_mask"]), with_kwargs=True
        )
        try:
            scores = engine.score_token_ids(docs)
        finally:
            hook.remove()
        assert masks and all(is_block_mask(mask) for mask in masks)  # flex ran, on block masks
        assert engine.feed.fed == sum(LENGTHS)  # one row: every document beside the others
        for score, ids in zip(scores, docs, strict=True):
            assert score.loss_base == pytest.approx(labels_loss(model, ids), rel=rtol), mode
            literal = literal_labels_loss(model, ids, HEADS, mode)
            assert score.loss_ref == pytest.approx(literal, rel=rtol), mode


def test_flex_kernel_is_refused_in_one_line_where_it_cannot_run():
    """StableLM (not listed, accepted at the user's risk) has no flex_attention support in
    transformers: asking for flex names why; ``auto`` scores it on its own kernel."""
    model = transformers.StableLmForCausalLM(transformers.StableLmConfig(**COMMON)).eval()
    risky = {"max_tokens": MAX_TOKENS, "allow_unsupported_architecture": True}
    with pytest.raises(AttentionKernelError) as refused:
        ScoringEngine(loaded(model), HEADS, ScoringConfig(**risky, attention_kernel="flex"))
    message = str(refused.value)
    assert "\n" not in message
    assert message == (
        "attention kernel 'flex' cannot run: architecture 'stablelm' (StableLmForCausalLM) "
        "has no flex_attention support in transformers"
    )
    cuda = torch.device("cuda")  # resolving looks at the device, it needs no GPU
    assert resolve_attention_kernel("auto", model, cuda, packing=True) == "sdpa"


@pytest.mark.parametrize("family", LOGIT_POST_PROCESSING)
def test_skipping_the_logit_post_processing_would_show(family):
    """The families above are a real test of the output processing: raw output-layer logits
    give a loss far outside the tolerance (Granite's bug: 4.6127 against the model's 4.5780)."""
    model = tiny_model(family)
    ids = documents(model.config.vocab_size)[0]
    tensor = torch.tensor([ids])
    with torch.no_grad():
        hidden = model.base_model(input_ids=tensor).last_hidden_state
        raw = model.get_output_embeddings()(hidden)[0, :-1]
    raw_loss = torch.nn.functional.cross_entropy(raw, tensor[0, 1:]).item()
    rtol = loss_rtol(model.config, len(ids))
    assert abs(raw_loss - labels_loss(model, ids)) > 100 * rtol * labels_loss(model, ids)


def test_olmo2_query_norm_makes_q_proj_zeroing_wrong():
    """OLMo2 normalises all query heads together after q_proj: zeroing one head's q_proj
    output rescales the others. Masking inside the attention function does not."""
    model = tiny_model("olmo2")
    ids = documents(model.config.vocab_size)[0]
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    handles = []
    for layer, head in HEADS:
        columns = slice(head * head_dim, (head + 1) * head_dim)

        def zero(module, args, output, columns=columns):
            output[..., columns] = 0
            return output

        handles.append(model.model.layers[layer].self_attn.q_proj.register_forward_hook(zero))
    try:
        zeroed_before_norm = labels_loss(model, ids)
    finally:
        for handle in handles:
            handle.remove()
    literal = literal_labels_loss(model, ids, HEADS, "uniform")
    engine = ScoringEngine(loaded(model), HEADS, ScoringConfig(max_tokens=MAX_TOKENS))
    (score,) = engine.score_token_ids([ids])
    rtol = loss_rtol(model.config, len(ids))
    assert score.loss_ref == pytest.approx(literal, rel=rtol)
    assert abs(zeroed_before_norm - literal) > 100 * rtol * literal


def test_unsupported_architecture_is_refused_in_one_line():
    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=64)
    model = transformers.GPT2LMHeadModel(config).eval()
    with pytest.raises(UnsupportedArchitectureError) as refused:
        ScoringEngine(loaded(model), [(0, 0)], ScoringConfig(max_tokens=16))
    message = str(refused.value)
    assert "\n" not in message
    assert "'gpt2' (GPT2LMHeadModel) is not on the supported list" in message
    assert "--allow-unsupported-architecture" in message


def test_accepting_the_risk_scores_an_unlisted_model_with_a_warning():
    """Mixtral (not listed; Mistral's attention with mixture-of-experts MLPs) is scored the
    Llama way once the risk is accepted, and the scores are still right."""
    config = transformers.MixtralConfig(**COMMON, num_local_experts=4, num_experts_per_tok=2)
    torch.manual_seed(0)
    model = transformers.MixtralForCausalLM(config).eval()
    with pytest.raises(UnsupportedArchitectureError, match="'mixtral' \\(MixtralForCausalLM\\)"):
        ScoringEngine(loaded(model), HEADS, ScoringConfig(max_tokens=MAX_TOKENS))
    allow = ScoringConfig(max_tokens=MAX_TOKENS, allow_unsupported_architecture=True)
    with pytest.warns(UserWarning, match="scoring it anyway"):
        engine = ScoringEngine(loaded(model), HEADS, allow)
    ids = documents(config.vocab_size)[0]
    (score,) = engine.score_token_ids([ids])
    rtol = loss_rtol(config, len(ids))
    assert score.loss_base == pytest.approx(labels_loss(model, ids), rel=rtol)
    assert score.loss_ref == pytest.approx(
        literal_labels_loss(model, ids, HEADS, "uniform"), rel=rtol
    )


def test_sliding_window_shorter_than_the_sequences_is_refused():
    model = tiny_model("mistral", sliding_window=16)
    with pytest.raises(UnsupportedArchitectureError) as refused:
        ScoringEngine(loaded(model), HEADS, ScoringConfig(max_tokens=32))
    assert "sliding-window attention of 16 tokens, shorter than the 32-token" in str(refused.value)
    engine = ScoringEngine(loaded(model), HEADS, ScoringConfig(max_tokens=16))  # fits: exact
    ids = documents(model.config.vocab_size)[0][:16]
    (score,) = engine.score_token_ids([ids])
    assert score.loss_base == pytest.approx(
        labels_loss(model, ids), rel=loss_rtol(model.config, 16)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_supported(model, 32, allow_unsupported=True)
    assert "sliding-window" in str(caught[0].message)


def test_unknown_logit_post_processing_is_caught_at_start():
    """GraniteMoe (not listed) divides its logits like Granite: the start-up comparison of the
    engine's logits with the model's own forward sees it."""
    config = transformers.GraniteMoeConfig(**COMMON, logits_scaling=4.0, num_local_experts=2)
    model = transformers.GraniteMoeForCausalLM(config).eval()
    with pytest.raises(UnsupportedArchitectureError, match="post-processes them"):
        check_output_logits(model)


def test_shared_prefix_refuses_an_argument_it_does_not_know(tiny_llama):
    rows = 2
    layer = tiny_llama.model.layers[0]
    hidden = torch.zeros(2 * rows, 5, tiny_llama.config.hidden_size)
    position_ids = torch.arange(5).unsqueeze(0)
    cos_sin = tiny_llama.model.rotary_emb(hidden, position_ids)
    with shared_prefix(tiny_llama, 1, rows), torch.no_grad():
        output = layer(hidden, position_embeddings=cos_sin, position_ids=position_ids)
        assert output.shape[0] == 2 * rows  # cut to 2 rows, copied back to both halves
        with pytest.raises(MaskingError, match="'segment_ids' the shared prefix does not know"):
            layer(hidden, position_embeddings=cos_sin, segment_ids=torch.zeros(2 * rows, 5))


def test_command_line_refuses_in_one_line_and_accepts_the_risk(tmp_path):
    """``ai-filters score`` on a saved tiny Mistral whose window (16) is shorter than
    ``--max-tokens`` (32): one line naming the architecture, then a run with the option."""
    from transformers import AutoTokenizer

    from ai_filters.engine.heads_file import RetrievalHeads
    from ai_filters.engine.models import DEFAULT_MODEL, resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(DEFAULT_MODEL))
    model = tiny_model("mistral", sliding_window=16, vocab_size=len(tokenizer))
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    RetrievalHeads(
        model=str(tmp_path / "model"),
        model_fingerprint=loaded(model).fingerprint(),
        num_layers=3,
        num_heads=4,
        num_kv_heads=2,
        scores=[[0.0] * 4 for _ in range(3)],
        selected=[list(head) for head in HEADS],
    ).save(tmp_path / "heads.json")
    text = "Sliding windows see only the last tokens, so a long prefix is cut. " * 3
    (tmp_path / "docs.jsonl").write_text(json.dumps({"id": "a", "text": text}) + "\n")
    command = [
        sys.executable,
        "-m",
        "ai_filters.cli",
        "score",
        "--heads",
        str(tmp_path / "heads.json"),
    ]
    command += ["--input", str(tmp_path / "docs.jsonl"), "--output", str(tmp_path / "out.jsonl")]
    command += ["--max-tokens", "32", "--device", "cpu"]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    refused = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    assert refused.returncode == 2
    (line,) = [line for line in refused.stderr.splitlines() if "error:" in line]
    assert "architecture 'mistral' (MistralForCausalLM) uses sliding-window attention of 16" in line
    accepted = subprocess.run(
        [*command, "--allow-unsupported-architecture"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )
    assert accepted.returncode == 0, accepted.stderr[-1000:]
    assert "scoring it anyway (--allow-unsupported-architecture)" in accepted.stderr
    scored = json.loads((tmp_path / "out.jsonl").read_text())
    assert scored["metadata"]["ai_n_tokens"] == 32


def tiny_longrope_phi3() -> torch.nn.Module:
    """Phi-3 with ``longrope`` rotary scaling: long-context frequencies beyond 64 tokens."""
    half = 16 // 2  # head_dim 16
    rope = {
        "rope_type": "longrope",
        "rope_theta": 10000.0,
        "original_max_position_embeddings": 64,
        "short_factor": [1.0] * half,
        "long_factor": [4.0] * half,
    }
    return tiny_model(
        "phi3",
        sliding_window=None,
        max_position_embeddings=512,
        original_max_position_embeddings=64,
        rope_parameters=rope,
    )


def test_length_dependent_rope_scores_alone_padded_and_packed_alike_or_is_refused():
    """transformers picks longrope's frequencies from the largest position of the whole batch:
    rows that could pass 64 positions are refused; at 64 the document scores alike alone,
    padded beside a longer one, and packed."""
    model = tiny_longrope_phi3()
    generator = torch.Generator().manual_seed(1)
    short, other, long = (
        torch.randint(3, 128, (n,), generator=generator).tolist() for n in (12, 40, 300)
    )
    for config in (
        ScoringConfig(max_tokens=300),
        ScoringConfig(max_tokens=64, packing=True, pack_tokens=128),
    ):
        with pytest.raises(UnsupportedArchitectureError) as refused:
            ScoringEngine(loaded(model), HEADS, config)
        message = str(refused.value)
        assert "\n" not in message
        assert "'longrope' rotary scaling, whose frequencies change" in message
        assert "beyond 64 tokens" in message
    unpacked = ScoringConfig(max_tokens=64, packing=False, batch_tokens=256, min_row_fill=0)
    packed = ScoringConfig(max_tokens=64, packing=True, batch_tokens=256, min_row_fill=0)
    alone = ScoringEngine(loaded(model), HEADS, unpacked).score_token_ids([short])[0]
    padded = ScoringEngine(loaded(model), HEADS, unpacked).score_token_ids([long, short])[1]
    engine = ScoringEngine(loaded(model), HEADS, packed)
    beside = engine.score_token_ids([long, other, short])[2]
    assert engine.feed.fed == 128  # rows [64] and [40 + 12, padding]: packed beside another
    rtol = loss_rtol(model.config, 64)
    for score in (padded, beside):
        assert score.loss_base == pytest.approx(alone.loss_base, rel=rtol)
        assert score.loss_ref == pytest.approx(alone.loss_ref, rel=rtol)
    # what the refusal prevents: beside a 300-token document the frequencies are the long ones
    risky = ScoringConfig(
        max_tokens=300, packing=False, min_row_fill=0, allow_unsupported_architecture=True
    )
    with pytest.warns(UserWarning, match="'longrope' rotary scaling"):
        engine = ScoringEngine(loaded(model), HEADS, risky)
    moved = engine.score_token_ids([long, short])[1]
    assert abs(moved.loss_base - alone.loss_base) > 100 * rtol * alone.loss_base


ROPE_PARAMETERS = {
    "default": {},
    "linear": {"factor": 2.0},
    "dynamic": {"factor": 2.0},
    "yarn": {"factor": 2.0, "original_max_position_embeddings": 64},
    "longrope": {
        "short_factor": [1.0] * 8,
        "long_factor": [4.0] * 8,
        "original_max_position_embeddings": 64,
    },
    "llama3": {
        "factor": 2.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    },
    "proportional": {"partial_rotary_factor": 0.5},
}


@pytest.mark.parametrize("rope", list(ROPE_PARAMETERS))
def test_length_dependent_rope_types_are_those_transformers_rescales(rope):
    """Every rope type of transformers: the rotary embedding of positions 0-7 changes when the
    batch also holds position 299 exactly for the types the engine refuses beyond a limit."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from ai_filters.engine.architectures import length_dependent_rope

    assert set(ROPE_PARAMETERS) == {"default", *ROPE_INIT_FUNCTIONS}
    parameters = {"rope_type": rope, "rope_theta": 10000.0, **ROPE_PARAMETERS[rope]}
    model = tiny_model("llama", head_dim=16, rope_parameters=parameters)
    hidden = torch.zeros(1, 300, 64)
    with torch.no_grad():
        short = model.model.rotary_emb(hidden[:, :8], torch.arange(8)[None])[0]
        long = model.model.rotary_emb(hidden, torch.arange(300)[None])[0][:, :8]
    limits = length_dependent_rope(model.config)
    assert (not torch.equal(short, long)) == (rope in limits and limits[rope] < 300)


def test_a_wrong_logit_post_processing_is_caught_in_bf16(monkeypatch):
    """In bf16 the start-up logits check tolerates rounding only: a post-processing 10 % off
    (the engine's table wrong for a listed family) or a missing division by 1.25 (an unlisted
    family) is refused; the right one passes."""
    model = tiny_model("granite").to(torch.bfloat16)
    check_output_logits(model)
    wrong = Family("granite", lambda config, logits: logits / (config.logits_scaling * 1.1))
    monkeypatch.setitem(SUPPORTED, "granite", wrong)
    with pytest.raises(UnsupportedArchitectureError, match="post-processes them"):
        check_output_logits(model)
    config = transformers.GraniteMoeConfig(**COMMON, logits_scaling=1.25, num_local_experts=2)
    torch.manual_seed(0)
    unlisted = transformers.GraniteMoeForCausalLM(config).eval().to(torch.bfloat16)
    with pytest.raises(UnsupportedArchitectureError, match="post-processes them"):
        check_output_logits(unlisted)

"""Tiny models and heads files for the tests.

:func:`tiny_llama_model` is a randomly initialised Llama; :func:`save_tiny_model` saves it with
the embedded model's real tokenizer as a Hugging Face folder. Scoring with it takes
milliseconds per document, so property tests and pipeline runs can feed it many documents; its
tokenizer is SmolLM2's own, so tokenization (the part that meets arbitrary Unicode) is the real
one. :func:`write_heads_file` and :func:`other_shape_heads` write heads files without running
detection.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ai_filters.blocks.scorer_base import shared_model
from ai_filters.engine.heads_file import RetrievalHeads
from ai_filters.engine.models import DEFAULT_MODEL, LoadedModel, resolve_model_path

TINY_HEADS = [(1, 0), (2, 5), (3, 3)]
TINY_CONTEXT = 256  # max_position_embeddings of tiny_llama_model


def tiny_llama_model(seed: int = 0, layers: int = 4, heads: int = 8, kv_heads: int = 2):
    """A randomly initialised Llama with grouped-query attention (4 query heads per KV head)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=97,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=TINY_CONTEXT,
        attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(config).eval()
    # random init gives near-uniform attention; sharpen it so masking visibly matters
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(8.0)
    return model


def write_heads_file(loaded, heads, path):
    """Save a heads file that selects ``heads`` on ``loaded`` (no detection run); returns path."""
    scores = [[0.0] * loaded.num_heads for _ in range(loaded.num_layers)]
    for layer, head in heads:
        scores[layer][head] = 0.5
    RetrievalHeads(
        model="smollm2-135m",
        model_fingerprint=loaded.fingerprint(),
        num_layers=loaded.num_layers,
        num_heads=loaded.num_heads,
        num_kv_heads=loaded.num_kv_heads,
        scores=scores,
        selected=[list(head) for head in heads],
    ).save(path)
    return path


def other_shape_heads(path: Path) -> Path:
    """A heads file made for a 30-layer, 9-head model (the embedded one), not the tiny one."""
    RetrievalHeads(
        model="smollm2-135m",
        model_fingerprint="sha256:" + "0" * 64,
        num_layers=30,
        num_heads=9,
        num_kv_heads=3,
        scores=[[0.0] * 9 for _ in range(30)],
        selected=[[18, 6]],
    ).save(path)
    return path


def save_tiny_model(folder: Path, safetensors: bool = True) -> Path:
    """:func:`tiny_llama_model`, its vocabulary resized to the embedded tokenizer's, in ``folder``.

    Weights are written as safetensors (or, without ``safetensors``, as a pickled
    ``pytorch_model.bin``) with the tokenizer beside them; returns ``folder``.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(DEFAULT_MODEL))
    model = tiny_llama_model()
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.save_pretrained(folder)
    if not safetensors:  # transformers 5 writes safetensors only; write the pickle ourselves
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
        (folder / "model.safetensors").unlink()
    tokenizer.save_pretrained(folder)
    return folder


def tiny_model_and_heads(folder: Path) -> tuple[LoadedModel, Path]:
    """Save the tiny model in ``folder``, load it once through the blocks' shared cache (CPU,
    fp32, the key the blocks use in the tests) and write a heads file for it beside it."""
    save_tiny_model(folder / "model")
    loaded = shared_model(str(folder / "model"), "cpu", "float32")
    heads = write_heads_file(loaded, TINY_HEADS, folder / "heads.json")
    return loaded, heads

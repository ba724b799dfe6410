"""A tiny random Llama with the embedded model's real tokenizer, saved as a Hugging Face folder.

Scoring with it takes milliseconds per document, so property tests and pipeline runs can feed
it many documents; its tokenizer is SmolLM2's own, so tokenization (the part that meets
arbitrary Unicode) is the real one.
"""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import tiny_llama_model, write_heads_file

from ai_filters.blocks.scorer_base import shared_model
from ai_filters.models import DEFAULT_MODEL, LoadedModel, resolve_model_path

TINY_HEADS = [(1, 0), (2, 5), (3, 3)]
TINY_CONTEXT = 256  # max_position_embeddings of conftest's tiny Llama


def save_tiny_model(folder: Path, safetensors: bool = True) -> Path:
    """conftest's tiny Llama, its vocabulary resized to the embedded tokenizer's, in ``folder``.

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

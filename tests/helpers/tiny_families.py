"""Tiny random-weight causal LMs of every supported family, built from their configurations.

One shared shape (3 layers, 4 query heads sharing 2 KV heads, hidden 64, vocabulary 128) plus
what each family adds. Post-processing constants are far from 1 so that skipping them shows;
sliding windows (``WINDOW``) are longer than every sequence the tests feed.
"""

from __future__ import annotations

import torch
import transformers

from ai_filters.engine.architectures import attention_implementation
from ai_filters.engine.models import LoadedModel

COMMON = {
    "vocab_size": 128,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "initializer_range": 0.2,  # sharper attention than the default 0.02: masking matters
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}
WINDOW = 64  # longer than every sequence here: the windowed layers see their whole prefix
# what each family adds to the shared shape; the post-processing constants are far from 1 so
# that skipping them would show
FAMILIES: dict[str, tuple[str, dict]] = {
    "llama": ("LlamaConfig", {}),
    "mistral": ("MistralConfig", {"sliding_window": WINDOW}),
    "qwen2": ("Qwen2Config", {}),
    "qwen3": ("Qwen3Config", {"head_dim": 16}),
    "olmo2": ("Olmo2Config", {}),
    "olmo3": ("Olmo3Config", {"sliding_window": WINDOW}),
    "granite": (
        "GraniteConfig",
        {
            "logits_scaling": 4.0,
            "attention_multiplier": 0.3,
            "embedding_multiplier": 2.0,
            "residual_multiplier": 0.5,
        },
    ),
    "gemma": ("GemmaConfig", {"head_dim": 16}),
    "gemma2": (
        "Gemma2Config",
        {
            "head_dim": 16,
            "query_pre_attn_scalar": 16,
            "attn_logit_softcapping": 2.0,
            "final_logit_softcapping": 3.0,
            "sliding_window": WINDOW,
        },
    ),
    "gemma3_text": (
        "Gemma3TextConfig",
        {
            "head_dim": 16,
            "query_pre_attn_scalar": 16,
            "final_logit_softcapping": 3.0,
            "sliding_window": WINDOW,
            "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
        },
    ),
    "cohere": ("CohereConfig", {"logit_scale": 4.0, "use_qk_norm": True}),
    "cohere2": ("Cohere2Config", {"logit_scale": 4.0, "sliding_window": WINDOW}),
    "phi3": ("Phi3Config", {"sliding_window": WINDOW}),
    "smollm3": ("SmolLM3Config", {}),
    "starcoder2": ("Starcoder2Config", {"sliding_window": WINDOW}),
}


def tiny_model(family: str, **overrides) -> torch.nn.Module:
    """A random-weight causal LM of ``family`` (seeded), on its own attention implementation."""
    config_class, extra = FAMILIES[family]
    config = getattr(transformers, config_class)(**{**COMMON, **extra, **overrides})
    config._attn_implementation = attention_implementation(config)
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(config).eval()


def loaded(model: torch.nn.Module) -> LoadedModel:
    """``model`` as the engine takes it: on the CPU, fp32, no tokenizer."""
    return LoadedModel("tiny", model, None, torch.device("cpu"), torch.float32)

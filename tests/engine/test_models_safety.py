"""Loading a model never runs code it ships nor unpickles weights unless the user asks."""

from __future__ import annotations

import json

import pytest

from ai_filters.engine.models import ModelLoadError, load_model
from tests.helpers.models import save_tiny_model


def test_pickle_weights_load_only_with_the_flag(tmp_path):
    folder = save_tiny_model(tmp_path / "pickled", safetensors=False)
    assert (folder / "pytorch_model.bin").is_file()
    assert not list(folder.glob("*.safetensors"))
    with pytest.raises(ModelLoadError, match="--allow-pickle"):
        load_model(str(folder), device="cpu")
    assert load_model(str(folder), device="cpu", allow_pickle=True).num_layers == 4


REMOTE_CODE = """
from pathlib import Path

from transformers import LlamaForCausalLM

Path("{witness}").touch()


class WitnessLlama(LlamaForCausalLM):
    pass
"""


def test_remote_code_runs_only_with_the_flag(tmp_path):
    """A model folder that ships its own Python: without the flag the code never runs."""
    folder = save_tiny_model(tmp_path / "remote")
    witness = tmp_path / "code-ran"
    (folder / "modeling_witness.py").write_text(REMOTE_CODE.format(witness=witness))
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_witness.WitnessLlama"}
    (folder / "config.json").write_text(json.dumps(config))
    try:
        load_model(str(folder), device="cpu")
    except (ModelLoadError, ValueError):
        pass  # refusing to load is as good as loading the built-in Llama
    assert not witness.exists()
    loaded = load_model(str(folder), device="cpu", trust_remote_code=True)
    assert witness.exists() and type(loaded.model).__name__ == "WitnessLlama"

"""The pipeline scripts and ``ai-filters score`` / ``detect-heads`` keep the library's defaults:
a model folder's own Python code never runs and pickled weights are never unpickled (the
pipelines have no option to allow either). Each folder here is the tiny model with a trap: a
module whose import, or a ``pytorch_model.bin`` whose unpickling, creates a witness file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from ai_filters.cli import main as ai_filters_main
from tests.helpers.console import error_line_of
from tests.helpers.pipelines import console_log_follows_stderr, load_select_main

REMOTE_CODE = """
from pathlib import Path

Path({witness!r}).touch()

from transformers import LlamaForCausalLM, PreTrainedTokenizerFast


class WitnessLlama(LlamaForCausalLM):
    pass


class WitnessTokenizer(PreTrainedTokenizerFast):
    pass
"""


class Witness:
    """Unpickling it creates the file ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _remote_code_folder(model: Path, folder: Path, witness: Path) -> Path:
    """The model whose config and tokenizer config point at its own module (``auto_map``)."""
    shutil.copytree(model, folder)
    (folder / "witness_code.py").write_text(REMOTE_CODE.format(witness=str(witness)))
    for name, auto_map in (
        ("config.json", {"AutoModelForCausalLM": "witness_code.WitnessLlama"}),
        ("tokenizer_config.json", {"AutoTokenizer": [None, "witness_code.WitnessTokenizer"]}),
    ):
        config = json.loads((folder / name).read_text())
        (folder / name).write_text(json.dumps({**config, "auto_map": auto_map}))
    return folder


def _pickle_folder(model: Path, folder: Path, witness: Path) -> Path:
    """The model with pickled weights only, whose unpickling creates ``witness``."""
    shutil.copytree(model, folder)
    (folder / "model.safetensors").unlink()
    torch.save({"model.embed_tokens.weight": Witness(witness)}, folder / "pytorch_model.bin")
    return folder


@pytest.fixture(params=["remote-code", "pickle"])
def trap(request, tiny, tmp_path) -> tuple[str, Path, Path]:
    """(kind, the trapped model folder, the witness file its code or pickle would create)."""
    model, witness = tiny[1].parent / "model", tmp_path / "witness"
    make = _remote_code_folder if request.param == "remote-code" else _pickle_folder
    return request.param, make(model, tmp_path / request.param, witness), witness


def _check(kind: str, code: int, stderr: str, prog: str, loads: bool = True) -> None:
    """A pickle-only model is refused in one line that says where pickles may load; a
    remote-code one loads as the built-in architecture, its code ignored (``loads``: the
    command then succeeds)."""
    if kind == "pickle":
        line = error_line_of(stderr, prog)
        assert code == 2 and "never in the pipeline scripts" in line and "--allow-pickle" in line
    elif loads:
        assert code == 0, stderr[-2000:]


@pytest.mark.parametrize("scorer", ["attention_influence", "random"])
def test_the_selection_pipeline_runs_no_model_code(trap, scorer, tiny, tmp_path, capsys):
    kind, model, witness = trap
    argv = ["--demo", "--docs-per-domain", "2", "--max-tokens", "32", "--tasks", "1"]
    argv += ["--scorer", scorer, "--model", str(model), "--out", str(tmp_path / "out")]
    argv += ["--heads", str(tiny[1])] if scorer == "attention_influence" else []
    console_log_follows_stderr()
    code = load_select_main()(argv)
    if scorer == "random":  # the random scorer reads the tokenizer alone, never the weights
        assert code == 0
    else:
        _check(kind, code, capsys.readouterr().err, "smollm_select.py")
    assert not witness.exists()


def test_ai_filters_score_and_detect_heads_run_no_model_code(trap, tiny, tmp_path, capsys):
    kind, model, witness = trap
    documents = tmp_path / "docs.jsonl"
    documents.write_text(json.dumps({"id": "a", "text": "A short text to score. " * 8}) + "\n")
    score = ["score", "--model", str(model), "--heads", str(tiny[1]), "--device", "cpu"]
    score += ["--input", str(documents), "--output", str(tmp_path / "scored.jsonl")]
    _check(kind, ai_filters_main(score), capsys.readouterr().err, "ai-filters")
    # the tiny model's context is too short for a probe: detect-heads stops after loading
    detect = ["detect-heads", "--model", str(model), "--device", "cpu", "--num-probes", "2"]
    code = ai_filters_main([*detect, "--out", str(tmp_path / "heads.json")])
    _check(kind, code, capsys.readouterr().err, "ai-filters", loads=False)
    assert not witness.exists()

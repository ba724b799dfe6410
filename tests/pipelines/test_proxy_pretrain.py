"""pipelines/proxy_pretrain.py: the demo's four arms end to end, and its one-line errors."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from ai_filters.demo.corpus import corpus_fingerprint
from tests.proxy.helpers import write_demo_layout


def load_pipeline():
    """``pipelines/proxy_pretrain.py`` as a module (pipelines are scripts, not a package)."""
    path = Path(__file__).resolve().parents[2] / "pipelines" / "proxy_pretrain.py"
    spec = importlib.util.spec_from_file_location("proxy_pretrain", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


proxy_pretrain = load_pipeline()


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    from ai_filters.demo.corpus import local_corpus

    return local_corpus(6, seed=0, chunk_chars=1200)


def test_demo_command_writes_four_arms(tmp_path, corpus, capsys) -> None:
    write_demo_layout(tmp_path, corpus)
    tiny = ["--hidden", "32", "--layers", "2", "--seq-len", "128", "--batch-size", "2"]
    args = ["--demo", "--out", str(tmp_path), "--steps", "4", "--reasoning", "4", *tiny]
    args += ["--eval-points", "1", "--heldout-per-domain", "3"]
    assert proxy_pretrain.main([*args, "--no-progress"]) == 0
    results = json.loads((tmp_path / "proxy" / "results.json").read_text())
    names = [a["name"] for a in results["arms"]]
    assert names == [
        "corpus",
        "corpus+attention_influence",
        "corpus+random",
        "corpus+perplexity",
    ]
    assert len({a["training_tokens"] for a in results["arms"]}) == 1
    for arm in results["arms"]:
        assert set(arm["heldout"]) == {"web", "textbook", "code", "math", "reasoning"}
    assert results["settings"]["heldout"]["web"]["documents"] == 3
    table = (tmp_path / "proxy" / "results.md").read_text()
    assert all(f"| {name} |" in table for name in names)
    assert (tmp_path / "proxy" / "loss_curves.png").stat().st_size > 0
    assert "corpus+perplexity seed 0" in capsys.readouterr().out
    # one seed: every arm against corpus and random, differences without intervals
    assert results["settings"]["seeds"] == [0]
    assert results["settings"]["corpus_fingerprint"] == corpus_fingerprint(corpus)
    pairs = [(d["arm"], d["baseline"]) for d in results["differences"]]
    assert pairs == [
        ("corpus+attention_influence", "corpus"),
        ("corpus+random", "corpus"),
        ("corpus+perplexity", "corpus"),
        ("corpus+attention_influence", "corpus+random"),
        ("corpus+perplexity", "corpus+random"),
    ]
    assert all(d["sets"]["mean held-out"]["low"] is None for d in results["differences"])
    assert "One seed (0): no standard deviation and no interval" in table


def test_fewer_than_one_seed_is_refused(tmp_path) -> None:
    with pytest.raises(SystemExit, match="error: --seeds must be at least 1, got 0"):
        proxy_pretrain.main(["--demo", "--out", str(tmp_path), "--seeds", "0"])


def test_demo_command_names_the_missing_control(tmp_path, corpus) -> None:
    write_demo_layout(tmp_path, corpus)
    shutil.rmtree(tmp_path / "controls" / "perplexity")
    with pytest.raises(SystemExit, match="--scorer perplexity"):
        proxy_pretrain.main(["--demo", "--out", str(tmp_path)])


def test_an_unknown_tokenizer_is_a_one_line_error(tmp_path, corpus) -> None:
    write_demo_layout(tmp_path, corpus)
    with pytest.raises(SystemExit, match="error: model 'no tokenizer' is neither"):
        proxy_pretrain.main(["--demo", "--out", str(tmp_path), "--tokenizer", "no tokenizer"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_gpu_size_on_a_cpu_asks_for_fp32(tmp_path) -> None:
    with pytest.raises(SystemExit, match="--precision fp32"):
        proxy_pretrain.main(["--demo", "--out", str(tmp_path), "--size", "gpu"])

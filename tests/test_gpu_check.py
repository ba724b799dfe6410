"""``benchmarks/gpu_check.sh --cpu-smoke``: the GPU check's every step at toy sizes on the CPU,
so the script works the day a GPU is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # ten subprocesses that each load the model: about a minute on 2 cores
def test_gpu_check_cpu_smoke_writes_every_figure(tmp_path):
    result = subprocess.run(
        [
            "bash",
            str(ROOT / "benchmarks" / "gpu_check.sh"),
            "--cpu-smoke",
            "--out-dir",
            str(tmp_path),
        ],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (path,) = tmp_path.glob("gpu_check_cpu-smoke_*.json")
    report = json.loads(path.read_text())
    assert report["mode"] == "cpu-smoke"
    assert set(report["steps"]) == {"embedded", "llama_1p7b", "bf16", "tokenization"}
    summary = report["summary"]
    assert summary["embedded_scores_agree"] is True
    assert set(summary["embedded_padding_share"]) == {"naive", "engine", "packed"}
    assert summary["embedded_padding_share"]["naive"] == 0.0  # one whole document per row
    assert 0 < summary["mfu_1p7b"] and summary["tokens_per_s_1p7b"] > 0
    assert -1 <= summary["bf16_spearman"] <= 1
    assert 0 <= summary["tokenize_share_in_block"] < 1
    assert set(summary["targets"]) == {
        "mfu_1p7b",
        "embedded_speedup",
        "bf16_spearman",
        "bf16_top20_jaccard",
    }


def test_gpu_check_without_a_gpu_says_so_in_one_line():
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh")],
        env={**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "no CUDA device is visible; on a machine without a GPU use --cpu-smoke" in result.stderr

"""``benchmarks/gpu_check.sh`` where it will run: a copy of the GPU machine's software (Python
3.12 with only the image's packages, ``benchmarks/gpu_image_venv.py``), no network, no package
index, nothing but the working tree and ``gpu_bundle/`` (``make gpu-bundle``); every step at toy
sizes on the CPU (``--cpu-smoke``)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = {"scoring", "mfu", "pipeline", "memory", "compile", "bf16"}
LIMIT_MIB = 60


def python_312() -> str:
    """A Python 3.12 interpreter of this machine (the GPU image's version) that runs."""
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    candidates += [found] if (found := shutil.which("python3.12")) else []
    for candidate in candidates:
        probe = [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"]
        if subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "True":
            return candidate
    raise AssertionError("the GPU image simulation needs a Python 3.12 interpreter (python3.12)")


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, **kwargs)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gpu") / "gpu_bundle"
    run([sys.executable, "benchmarks/gpu_bundle.py", "--out", str(folder)], timeout=900)
    return folder


def isolated_env(tmp_path: Path, python: Path) -> dict[str, str]:
    """The environment of a bare machine: no project venv, no model cache, no index."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "VIRTUAL_ENV", "PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL"}
    }
    (tmp_path / "empty").mkdir()
    return {
        **env,
        "PYTHON": str(python),
        "PIP_NO_INDEX": "1",
        "AI_FILTERS_CACHE": str(tmp_path / "empty"),  # no embedded model to fall back on
        "HF_HOME": str(tmp_path / "empty"),
    }


@pytest.mark.slow  # a Python 3.12 environment, the bundle, and six steps: about 8 minutes
def test_gpu_check_runs_with_only_the_image_and_the_bundle(bundle, tmp_path):
    venv = ROOT / ".cache" / "gpu_image_venv"
    run([sys.executable, "benchmarks/gpu_image_venv.py", "--python", python_312()]
        + ["--out", str(venv)], timeout=1800)  # fmt: skip
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["tree_plus_bundle_mib"] <= LIMIT_MIB
    out = tmp_path / "out"
    command = ["unshare", "-n", "bash", str(CHECK), "--bundle", str(bundle), "--out", str(out)]
    result = subprocess.run(
        [*command, "--cpu-smoke"],
        env=isolated_env(tmp_path, venv / "bin" / "python"),
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=tmp_path,  # the script finds the tree itself
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"installing {len(manifest['wheels'])} wheels from" in result.stdout
    image = (out / "pip_list.txt").read_text().lower().splitlines()
    assert "torch==2.11.0" in image and "transformers==5.17.0" in image
    assert not any(line.startswith("datatrove==") for line in image)  # the bundle's alone
    report = json.loads((out / "gpu_check.json").read_text())
    assert result.stdout.endswith((out / "gpu_check.log").read_text())
    assert report["mode"] == "cpu-smoke" and report["all_ok"] is True
    assert set(report["steps"]) == STEPS
    assert all(step["ok"] for step in report["steps"].values()), report["steps"]
    scoring, pipeline = report["steps"]["scoring"], report["steps"]["pipeline"]
    assert scoring["scores_agree"] is True and scoring["padding_share"]["naive"] == 0.0
    assert pipeline["read"] == pipeline["scored"] + pipeline["skipped"] > 0
    assert pipeline["scored"] == pipeline["selected"] + pipeline["rejected"]
    assert pipeline["stages"] == ["report", "score", "select", "thresholds"]
    assert 0 < pipeline["model_seconds"] < pipeline["task_seconds"]
    assert report["steps"]["compile"]["scores_agree"] is True
    assert set(report["targets"]) == {
        "mfu_1p7b_packed",
        "packed_over_engine",
        "outside_model_share",
        "total_minutes",
    }


def test_gpu_check_without_a_gpu_says_so_in_one_line(tmp_path):
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "wheels").mkdir()
    (tmp_path / "bundle" / "manifest.json").write_text("{}")
    result = subprocess.run(
        ["bash", str(CHECK), "--bundle", str(tmp_path / "bundle"), "--out", str(tmp_path / "o")],
        env={**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "no CUDA device is visible; on a machine without a GPU use --cpu-smoke" in result.stdout


def test_gpu_check_without_a_bundle_says_how_to_make_one(tmp_path):
    result = subprocess.run(
        ["bash", str(CHECK), "--bundle", str(tmp_path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"gpu_check.sh: {tmp_path} holds no manifest.json; run make gpu-bundle first"
    )

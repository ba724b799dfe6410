"""Every stage on object storage: the demo pipeline with ``--out s3://bucket/run`` against a
local S3 server (moto, on 127.0.0.1, a free port) selects what a local run selects; the
tokenization, ``hub-folder`` and ``status`` read that remote folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from datasets import load_dataset

from ai_filters.nanotron.data import read_tokenized_folder
from ai_filters.selection.folder import SelectionFolder, read_parquet_columns
from tests.helpers.pipelines import ROOT
from tests.helpers.s3 import local_s3

BUCKET = "bucket"
SETTINGS = ["--demo", "--docs-per-domain", "6", "--max-tokens", "32", "--tasks", "2"]

# every test here runs the selection pipeline or shares its 2-minute local run
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3_env():
    """A local S3 server with the bucket, and the whole environment that points at it."""
    with local_s3(BUCKET):
        yield {**os.environ}


def script(name: str, *args: str, env: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "pipelines" / name), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def selected_ids(folder: SelectionFolder) -> dict[str, set[str]]:
    return {
        domain: {i for path in paths for i in read_parquet_columns(path, ["id"])["id"].to_pylist()}
        for domain, paths in folder.selected_shards().items()
    }


@pytest.fixture(scope="module")
def runs(s3_env, tiny, tmp_path_factory):
    """The same demo run written to the bucket and to a local folder."""
    _, heads = tiny
    model = ["--heads", str(heads), "--model", str(heads.parent / "model")]
    local = tmp_path_factory.mktemp("local_run")
    script("smollm_select.py", "--out", f"s3://{BUCKET}/run", *SETTINGS, *model, env=s3_env)
    script("smollm_select.py", "--out", str(local), *SETTINGS, *model, env=s3_env)
    return SelectionFolder(f"s3://{BUCKET}/run"), SelectionFolder(local)


def test_s3_run_selects_what_a_local_run_selects(runs):
    remote, local = runs
    assert remote.read_thresholds() == local.read_thresholds()
    assert selected_ids(remote) == selected_ids(local) and sum(
        map(len, selected_ids(local).values())
    )
    report = remote.read_report()
    assert report == local.read_report()
    assert all(row["read"] == 6 for row in report["domains"].values())
    assert remote.exists("scorer.json") and remote.exists("heads.json")
    assert len(remote.scored_files()) == len(local.scored_files()) > 0
    assert not os.path.exists("s3:")  # nothing was written to a local folder named after the URL


def test_tokenize_hub_folder_and_status_read_the_bucket(runs, s3_env, tiny, tmp_path):
    remote, _ = runs
    tokenizer = str(tiny[1].parent / "model")
    script("tokenize_for_nanotron.py", "--out", remote.root, "--tokenizer", tokenizer, env=s3_env)
    for name in ("corpus", "selected"):
        files = remote.data.list_files(f"tokenized/{name}", glob_pattern="*.ds")
        assert len(files) == 2, files  # one per task: many files per folder, no merge
        # nanotron-check reads the bucket's folder as nanotron's reader lists an S3 prefix
        folder = read_tokenized_folder(remote.path(f"tokenized/{name}"), scan_tokens=None)
        assert len(folder.files) == 2 and folder.files[0].startswith("s3://")
        assert folder.tokens == sum(remote.data.size(file) for file in files) // 2
    hub = tmp_path / "hub"
    command = [sys.executable, "-m", "ai_filters.cli", "hub-folder", remote.root]
    result = subprocess.run(
        [*command, "--hub-dir", str(hub)], capture_output=True, text=True, env=s3_env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = load_dataset(str(hub), "default", split="train")
    assert len(loaded) == sum(e.documents_selected for e in remote.read_thresholds().values())
    status = subprocess.run(
        [sys.executable, "-m", "ai_filters.cli", "status", remote.root],
        capture_output=True,
        text=True,
        env=s3_env,
    )
    assert status.returncode == 0, status.stderr[-2000:]
    assert "| score | done | 2/2 |" in status.stdout
    assert "| tokenize_selected | done | 2/2 |" in status.stdout
    assert json.loads(remote.data.open("scorer.json").read())["scorer"] == "attention_influence"

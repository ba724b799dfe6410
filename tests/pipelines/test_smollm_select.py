"""The selection pipeline end to end: local, interrupted and rerun, and on a real Slurm cluster;
its output published as a Hub dataset."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ai_filters.engine.numerics import loss_rtol, score_atol
from ai_filters.executors.chain import wait_for_jobs
from ai_filters.selection.run_lock import LOCK_NAME, LockHolder, stale_reason
from tests.helpers.pipelines import (
    DOMAINS,
    MAX_TOKENS,
    documents_under,
    outputs,
    run,
    select_command,
)
from tests.helpers.slurm import job_fields, require_slurm

# every test here runs the selection pipeline or shares its 2-minute local run
pytestmark = pytest.mark.slow


def test_every_document_is_accounted_for(inputs, local_run):
    found = outputs(local_run)
    read_ids = {d["id"] for d in documents_under(inputs / "corpus", "**/*.jsonl")}
    assert set(found["scored"]) | set(found["skipped"]) == read_ids
    assert not set(found["scored"]) & set(found["skipped"])
    assert found["skipped"] == {"web/too-short": "too_short"}
    assert set(found["selected"]) | set(found["rejected"]) == set(found["scored"])
    assert not set(found["selected"]) & set(found["rejected"])
    report = json.loads((local_run / "report.json").read_text())
    for domain in DOMAINS:
        row = report["domains"][domain]
        assert (
            row["read_equals_scored_plus_skipped"] and row["scored_equals_selected_plus_rejected"]
        )


def test_selection_is_exactly_the_top_fraction_of_each_domain(local_run):
    assert_top_fraction(local_run, "attention_influence")


def assert_top_fraction(out: Path, score_key: str) -> None:
    thresholds = json.loads((out / "thresholds.json").read_text())
    selected = documents_under(out / "selected", "data/**/*.parquet")
    rejected = documents_under(out / "rejected", "data/**/*.parquet")
    for domain in DOMAINS:
        kept = [d["metadata"][score_key] for d in selected if d["metadata"]["domain"] == domain]
        dropped = [d["metadata"][score_key] for d in rejected if d["metadata"]["domain"] == domain]
        entry = thresholds[domain]
        assert min(kept) >= entry["threshold"] > max(dropped)
        wanted = math.ceil(0.2 * (len(kept) + len(dropped)))
        assert len(kept) == wanted + entry["tied_extra"] == entry["documents_selected"]
        assert entry["documents"] == len(kept) + len(dropped)
        assert all(
            path.parent.name == domain
            for path in (out / "selected" / "data" / domain).glob("*.parquet")
        )


@pytest.mark.parametrize(
    ("scorer", "score_key"),
    [
        ("perplexity", "perplexity_score"),
        ("random", "random_score"),
        ("zero_ablation", "attention_influence"),
    ],
)
def test_controls_plug_into_the_same_pipeline(
    inputs, local_run, tmp_path, scorer, score_key, embedded_config
):
    """Each control runs through the same stages and selection code as AttentionInfluence."""
    out = tmp_path / scorer
    run(select_command(inputs, out, "--scorer", scorer))
    assert json.loads((out / "scorer.json").read_text()) == {
        "scorer": scorer,
        "score_key": score_key,
        "fraction": 0.2,
    }
    found, method = outputs(out, score_key), outputs(local_run)
    assert found["skipped"] == method["skipped"]  # the same population is scored
    assert found["scored"].keys() == method["scored"].keys()
    assert found["selected"].keys() | found["rejected"].keys() == found["scored"].keys()
    assert_top_fraction(out, score_key)
    report = json.loads((out / "report.json").read_text())
    assert report["scorer"] == scorer
    assert all(row["read_equals_scored_plus_skipped"] for row in report["domains"].values())
    scored = {d["id"]: d["metadata"] for d in documents_under(out / "scored", "**/*.jsonl.gz")}
    method_scored = {
        d["id"]: d["metadata"] for d in documents_under(local_run / "scored", "**/*.jsonl.gz")
    }
    rtol = loss_rtol(embedded_config, MAX_TOKENS)  # one pass instead of a doubled batch
    for doc_id, metadata in scored.items():
        assert metadata["ai_doc_tokens"] == method_scored[doc_id]["ai_doc_tokens"]
        if scorer == "perplexity":  # minus the same base loss the method computes
            assert metadata[score_key] == pytest.approx(
                -method_scored[doc_id]["ai_loss_base"], rel=rtol
            )
        elif scorer == "random":
            assert 0 <= metadata[score_key] < 1
    if scorer == "zero_ablation":  # same base loss, another reference: scores move far
        differing = [  # beyond rounding (1e-3 is about 30 times the score tolerance)
            doc_id
            for doc_id, metadata in scored.items()
            if abs(metadata[score_key] - method_scored[doc_id][score_key]) > 1e-3
        ]
        assert len(differing) > len(scored) / 2


def test_killed_run_resumes_to_the_same_output(inputs, local_run, tmp_path, embedded_config):
    out = tmp_path / "interrupted"
    process = subprocess.Popen(
        select_command(inputs, out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    first_task_done = out / "logs" / "score" / "completions" / "00000"
    deadline = time.monotonic() + 600
    while not first_task_done.exists() and process.poll() is None:
        assert time.monotonic() < deadline, "the first scoring task never completed"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # in the middle of the second scoring task
    process.wait()
    assert not (out / "logs" / "score" / "completions" / "00001").exists()
    first_task = [out / "logs" / "score" / "stats" / "00000.json"]
    first_task.append(out / "logs" / "score" / "logs" / "task_00000.log")
    before = [(path.stat().st_mtime_ns, path.read_bytes()) for path in first_task]
    run(select_command(inputs, out))
    # the completed task was skipped: its stats and log were not written again
    assert [(path.stat().st_mtime_ns, path.read_bytes()) for path in first_task] == before
    assert (out / "logs" / "score" / "stats" / "00001.json").exists()
    resumed, uninterrupted = outputs(out), outputs(local_run)
    assert resumed.keys() == uninterrupted.keys()
    assert resumed["skipped"] == uninterrupted["skipped"]
    rtol = loss_rtol(embedded_config, MAX_TOKENS)  # another process: only rounding may differ
    for kind in ("scored", "selected", "rejected"):
        assert resumed[kind].keys() == uninterrupted[kind].keys(), kind
        for doc_id, value in resumed[kind].items():
            expected = uninterrupted[kind][doc_id]
            assert value == pytest.approx(expected, abs=score_atol(expected, rtol)), (kind, doc_id)


@pytest.mark.parametrize(
    ("stats_file", "broken"),
    [("score/stats/00000.json", "read"), ("select/stats/00001.json", "scored")],
)
def test_report_stage_fails_when_documents_are_not_accounted_for(
    inputs, local_run, tmp_path, stats_file, broken
):
    """A stats file of a completed stage deleted: the counts no longer add up (read = scored +
    skipped, or scored = selected + rejected), and rerunning the report stage fails."""
    out = shutil.copytree(local_run, tmp_path / "out")
    (out / "logs" / stats_file).unlink()
    (out / "logs" / "report" / "completions" / "00000").unlink()
    result = subprocess.run(
        select_command(inputs, out), capture_output=True, text=True, timeout=600
    )
    assert result.returncode != 0
    assert "stage 'report' failed in task 0" in result.stderr
    assert "documents not accounted for in domains" in result.stderr
    report = json.loads((out / "report.json").read_text())
    check = f"{broken}_equals_" + (
        "scored_plus_skipped" if broken == "read" else "selected_plus_rejected"
    )
    assert [row[check] for row in report["domains"].values()].count(False) >= 1
    assert not (out / "logs" / "report" / "completions" / "00000").exists()


def test_slurm_selects_the_same_documents(
    inputs, local_run, tmp_path, measurements, embedded_config
):
    require_slurm()
    out = tmp_path / "slurm"
    started = time.monotonic()
    result = run(
        select_command(
            inputs,
            out,
            "--executor",
            "slurm",
            "--partition",
            "debug",
            "--time",
            "00:20:00",
            "--mem-per-cpu-gb",
            "4",
        )
    )
    # submitted without --wait: read each stage's dependency back while it still waits
    submitted = result.stdout.split("submitted: ", 1)[1].splitlines()[0]
    jobs = dict(entry.split("=") for entry in submitted.split(", "))
    assert list(jobs) == ["score", "thresholds", "select", "report"]
    stages = list(jobs.values())
    for before, after in zip(stages[:-1], stages[1:], strict=True):
        dependency = job_fields(after)["Dependency"]  # e.g. afterok:12_*(unfulfilled)
        assert re.fullmatch(rf"afterok:{before}(_\*)?\(\w+\)", dependency), (after, dependency)
    # the launcher has exited: its lock is the jobs', held until they end
    lock = LockHolder.from_text((out / LOCK_NAME).read_text(), LOCK_NAME)
    assert lock.slurm_jobs == tuple(stages) and stale_reason(lock) is None
    wait_for_jobs(stages)
    assert stale_reason(lock) == "its Slurm jobs are no longer queued or running"
    elapsed = time.monotonic() - started
    measurements.append(
        f"slurm selection pipeline (4 stages, 2-task arrays, {len(outputs(out)['scored'])} "
        f"documents scored): {elapsed:.1f} s wall"
    )
    launch = (out / "logs" / "score" / "launch_script.slurm").read_text()
    assert "#SBATCH --array=0-1" in launch
    assert all((out / "logs" / stage / "completions").is_dir() for stage in jobs)
    on_slurm, local = outputs(out), outputs(local_run)
    assert on_slurm["selected"].keys() == local["selected"].keys()
    assert on_slurm["rejected"].keys() == local["rejected"].keys()
    rtol = loss_rtol(embedded_config, MAX_TOKENS)  # other threads per task: other rounding
    for doc_id, score in on_slurm["scored"].items():
        expected = local["scored"][doc_id]
        assert score == pytest.approx(expected, abs=score_atol(expected, rtol))


def test_unknown_slurm_partition_is_a_one_line_error(inputs, tmp_path):
    require_slurm()
    result = subprocess.run(
        select_command(inputs, tmp_path, "--executor", "slurm", "--partition", "nosuch"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "partition 'nosuch' does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_pipeline_output_becomes_a_loadable_hub_dataset(local_run, tmp_path, monkeypatch):
    from datasets import load_dataset

    from ai_filters.hub.folder import build_hub_folder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = build_hub_folder(local_run, tmp_path / "hub")
    thresholds = json.loads((local_run / "thresholds.json").read_text())
    everything = load_dataset(str(hub), split="train")
    assert len(everything) == sum(entry["documents_selected"] for entry in thresholds.values())
    for domain, entry in thresholds.items():
        rows = load_dataset(str(hub), domain, split="train")
        assert len(rows) == entry["documents_selected"]
        assert set(rows["domain"]) == {domain}  # flat columns
    scores = load_dataset(str(hub), "scores", split="train")
    assert len(scores) == sum(entry["documents"] for entry in thresholds.values())

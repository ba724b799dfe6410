"""``--executor hf-jobs``: the Jobs a dry run prints, the refusal of a local ``--out``, and a run
whose Jobs huggingface_hub would launch, with no Hub: ``run_uv_job`` and ``inspect_job`` are
patched, and the patched launch runs the Job's command (datatrove's ``launch_pickled_pipeline``
on the pickled executor) here, on an ``hf://`` file system kept in a temporary folder."""

from __future__ import annotations

import importlib.util
import os
import shlex
import tempfile
from pathlib import Path
from types import SimpleNamespace

import dill
import huggingface_hub
import pytest
from datatrove.executor import jobs as datatrove_jobs
from datatrove.io import DataFolder, open_file
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem
from fsspec.registry import _registry

from ai_filters.selection.folder import SelectionFolder
from ai_filters.selection.status import run_status
from tests.helpers.pipelines import ROOT, console_log_follows_stderr, load_select_module

TOKEN = "hf_plantedTokenThatMustNotLeak0123456789"
OUT = "hf://buckets/org/b/run"
REQUIREMENT = "ai-filters @ git+https://github.com/ORG/ai-filters"
JOBS = ["--executor", "hf-jobs", "--job-requirements", REQUIREMENT]


def load_tokenize_module():
    """pipelines/tokenize_for_nanotron.py as a module, imported from its file."""
    path = ROOT / "pipelines" / "tokenize_for_nanotron.py"
    spec = importlib.util.spec_from_file_location("tokenize_for_nanotron", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


smollm_select = load_select_module()
tokenize_for_nanotron = load_tokenize_module()


class FolderHubFileSystem(DirFileSystem):
    """``hf://`` paths kept under :attr:`root` (a temporary folder): not a local file system to
    datatrove, so the Jobs executor takes it for a remote folder."""

    protocol = ("hf",)
    cachable = False  # each test its own root
    root = ""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(path=type(self).root, fs=LocalFileSystem())


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The patched Hub: ``hf://`` in ``tmp_path/hub``; each launched Job recorded (flavor,
    timeout, command, secret names) and run here; every Job ends COMPLETED."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(FolderHubFileSystem, "root", str(tmp_path / "hub"))
    monkeypatch.setitem(_registry, "hf", FolderHubFileSystem)
    DataFolder.clear_instance_cache()  # fsspec keeps folders made earlier on the real Hub's
    console_log_follows_stderr()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the Jobs' local task logs
    monkeypatch.setattr(datatrove_jobs, "time", SimpleNamespace(sleep=lambda seconds: None))
    launched: list[dict] = []

    def run_uv_job(script, *, script_args, dependencies, python, env, secrets, **kwargs):
        assert secrets["HF_TOKEN"] == TOKEN  # handed to the Job as a secret, not an env value
        withs = " ".join(f"--with {shlex.quote(d)}" for d in dependencies)
        command = f"uv run {withs} --python {python} {Path(script).name} {script_args[0]}"
        launched.append({**kwargs, "command": command, "secrets": sorted(secrets)})
        saved = dict(os.environ)
        try:
            os.environ.update(env)
            with open_file(script_args[0], "rb") as pickled:  # launch_pickled_pipeline
                dill.load(pickled).run()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return SimpleNamespace(id=f"job{len(launched)}", url="https://huggingface.co/jobs/x")

    def inspect_job(job_id, **kwargs):
        return SimpleNamespace(status=SimpleNamespace(stage="COMPLETED"))

    monkeypatch.setattr(huggingface_hub, "run_uv_job", run_uv_job)
    monkeypatch.setattr(huggingface_hub, "inspect_job", inspect_job)
    yield SimpleNamespace(root=tmp_path / "hub", launched=launched)
    DataFolder.clear_instance_cache()


def test_dry_run_prints_each_stages_jobs(capsys):
    argv = ["--demo", "--scorer", "random", "--out", OUT, "--tasks", "3", "--workers", "2"]
    flavors = ["--gpu-flavor", "a10g-small", "--flavor", "cpu-upgrade"]
    code = smollm_select.main(argv + JOBS + flavors + ["--dry-run"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "stage score: 3 Jobs on a10g-small (3 tasks, up to 2 at once, timeout 24h)" in printed
    assert "stage thresholds: 1 Job on cpu-basic (1 task, all at once" in printed
    assert "stage select: 3 Jobs on cpu-upgrade" in printed
    assert "stage report: 1 Job on cpu-basic" in printed
    pik = f"launch_pickled_pipeline.py {OUT}/logs/report/executor.pik"
    assert f"--with '{REQUIREMENT}' --python" in printed and pik in printed


@pytest.mark.parametrize("script", [smollm_select, tokenize_for_nanotron])
def test_a_local_out_is_refused_in_one_line(script, tmp_path, capsys):
    code = script.main(["--demo", "--out", str(tmp_path / "out"), "--dry-run"] + JOBS)
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1
    assert "is not reachable from Hugging Face Jobs" in error and "hf://buckets/" in error
    assert not (tmp_path / "out").exists()


def test_an_unknown_flavor_is_refused_in_one_line(capsys):
    code = smollm_select.main(["--demo", "--out", OUT, "--flavor", "a10g-huge"] + JOBS)
    error = capsys.readouterr().err.strip()
    assert code == 2 and "flavor 'a10g-huge' is not a Jobs hardware name" in error


def test_a_run_launches_each_stages_jobs_and_leaks_no_token(hub, capfd):
    argv = ["--demo", "--scorer", "random", "--docs-per-domain", "8", "--out", OUT]
    code = smollm_select.main(argv + ["--tasks", "2"] + JOBS + ["--gpu-flavor", "a10g-small"])
    printed = capfd.readouterr()
    assert code == 0, printed.err
    stages = [(job["labels"]["datatrove_job_name"], job["flavor"]) for job in hub.launched]
    assert stages == [
        ("ai_filters_score", "a10g-small"),
        ("ai_filters_score", "a10g-small"),
        ("ai_filters_thresholds", "cpu-basic"),
        ("ai_filters_select", "cpu-basic"),
        ("ai_filters_select", "cpu-basic"),
        ("ai_filters_report", "cpu-basic"),
    ]
    assert all(job["timeout"] == "24h" and job["secrets"] == ["HF_TOKEN"] for job in hub.launched)
    assert hub.launched[-1]["command"].endswith(f"{OUT}/logs/report/executor.pik")
    assert f"--with '{REQUIREMENT}'" in hub.launched[0]["command"]
    assert SelectionFolder(OUT).read_report()  # the Jobs ran every stage
    logged = run_status(OUT)  # 'ai-filters status' reads the run
    assert [stage.name for stage in logged] == ["score", "thresholds", "select", "report"]
    assert all(stage.state == "done" for stage in logged)
    files = [path for path in hub.root.rglob("*") if path.is_file()]
    assert any(path.name == "executor.pik" for path in files)
    assert not [path for path in files if TOKEN.encode() in path.read_bytes()]
    assert TOKEN not in printed.out + printed.err


def test_a_rerun_launches_nothing_that_completed(hub, capfd):
    argv = ["--demo", "--scorer", "random", "--docs-per-domain", "8", "--out", OUT] + JOBS
    assert smollm_select.main(argv) == 0
    first = len(hub.launched)
    assert smollm_select.main(argv) == 0
    assert first == 6 and len(hub.launched) == first


def test_tokenize_runs_on_jobs_after_the_selection(hub, capfd):
    argv = ["--demo", "--scorer", "random", "--docs-per-domain", "8", "--out", OUT] + JOBS
    assert smollm_select.main(argv) == 0
    del hub.launched[:]
    tokenize = ["--demo", "--out", OUT, "--merge", "--one-task-flavor", "cpu-upgrade"] + JOBS
    assert tokenize_for_nanotron.main(tokenize) == 0, capfd.readouterr().err
    names = [(job["labels"]["datatrove_job_name"], job["flavor"]) for job in hub.launched]
    assert names == [
        ("ai_filters_tokenize_corpus", "cpu-basic"),
        ("ai_filters_tokenize_corpus", "cpu-basic"),
        ("ai_filters_merge_corpus", "cpu-upgrade"),
        ("ai_filters_tokenize_selected", "cpu-basic"),
        ("ai_filters_tokenize_selected", "cpu-basic"),
        ("ai_filters_merge_selected", "cpu-upgrade"),
    ]
    for name in ("corpus", "selected"):  # merged: one .ds file each
        assert len(list((hub.root / f"buckets/org/b/run/tokenized/{name}").glob("*.ds"))) == 1

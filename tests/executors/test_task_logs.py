"""A failed task's log keeps its traceback but not the values of its variables, which can hold
credentials (a request's headers), with every executor the stages run on."""

from __future__ import annotations

import os

import pytest
from datatrove.io import get_datafolder

from ai_filters.executors.chain import Stage, chain_executors
from ai_filters.executors.jobs_settings import JobsSettings
from ai_filters.executors.settings import ExecutorSettings, SlurmSettings
from tests.helpers.pipelines import console_log_follows_stderr
from tests.helpers.secrets import SECRETS, leaks, plant

SETTINGS = {
    "local": ExecutorSettings(),
    "slurm": ExecutorSettings(executor="slurm", slurm=SlurmSettings(partition="debug")),
    "ray": ExecutorSettings(executor="ray", ray_address="local"),
    "hf-jobs": ExecutorSettings(executor="hf-jobs", jobs=JobsSettings(requirements=("x",))),
}


def send(headers: dict) -> None:
    raise PermissionError("401 Unauthorized")


def request_with_the_token(data, rank: int = 0, world_size: int = 1):
    """A pipeline step that fails, as a refused request does, with the token in a variable."""
    headers = {"authorization": f"Bearer {os.environ['HF_TOKEN']}"}
    send(headers)
    yield from data


@pytest.mark.parametrize("executor", list(SETTINGS))
def test_a_failed_task_logs_its_traceback_without_values(executor, tmp_path, monkeypatch):
    plant(monkeypatch)
    monkeypatch.setenv("SLURM_NODELIST", "localhost")  # what a Slurm task finds
    # the Jobs executor takes only a remote logging folder: fsspec's in-memory one
    root = f"memory://{tmp_path.name}/logs" if executor == "hf-jobs" else str(tmp_path / "logs")
    stage = Stage([request_with_the_token], 1)
    (task,) = chain_executors(SETTINGS[executor], {"fails": stage}, root)
    with pytest.raises(Exception, match="401 Unauthorized"):
        task._run_for_rank(0)
    console_log_follows_stderr()
    with get_datafolder(root).open("fails/logs/task_00000.log", "rt") as file:
        log = file.read()
    assert "Traceback" in log and "request_with_the_token" in log
    assert SECRETS["HF_TOKEN"][:16] not in log and leaks([tmp_path]) == []

"""The execution options become one validated settings object; a bad value is one line."""

from __future__ import annotations

import argparse

import pytest

from ai_filters.executors.options import add_executor_options, executor_settings_from_options
from ai_filters.executors.settings import ExecutorSettings, SlurmSettings


def settings(*argv: str) -> ExecutorSettings:
    parser = argparse.ArgumentParser()
    add_executor_options(parser)
    return executor_settings_from_options(vars(parser.parse_args(list(argv))))


def test_the_options_defaults_are_the_settings_defaults():
    assert settings() == ExecutorSettings()


def test_sbatch_args_are_read_from_json_once_when_built():
    built = settings("--executor", "slurm", "--partition", "p", "--sbatch-args", '{"account": "a"}')
    assert built.slurm.sbatch_args == {"account": "a"}
    assert built.slurm.partition == "p" and not built.is_local


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sbatch-args", "{account"], "sbatch_args is not JSON"),
        (["--sbatch-args", '["account"]'], "sbatch_args must be a JSON object"),
        (["--env-command", "module load x", "--venv-path", "/v"], "env_command or venv_path"),
        (["--executor", "slurm"], "needs a partition"),
        (["--tasks", "0"], "tasks must be an integer >= 1"),
        (["--workers", "0"], "workers must be an integer >= 1"),
        (["--cpus-per-task", "0"], "cpus_per_task must be an integer >= 1"),
        (["--gpus-per-task", "-1"], "gpus_per_task must be an integer >= 0"),
        (["--max-array-size", "0"], "max_array_size must be an integer >= 1"),
        (["--executor", "ray"], "needs a Ray address"),
        (["--executor", "ray", "--ray-address", "cluster"], "must be auto, local or"),
        (["--executor", "ray", "--ray-address", "a b:1"], "must be auto, local or"),
        (["--ray-address", "auto"], "ray_address is for executor 'ray', not 'local'"),
        (["--executor", "ray", "--ray-address", "auto", "--partition", "p"], "partition is a"),
        (["--executor", "ray", "--ray-address", "auto", "--time", "1:00:00"], "time is a Slurm"),
        (["--executor", "ray", "--ray-address", "auto", "--qos", "high"], "qos is a Slurm"),
        (["--executor", "ray", "--ray-address", "auto", "--wait"], "wait is a Slurm option"),
    ],
)
def test_a_bad_value_is_rejected_in_one_line_when_built(argv, message):
    with pytest.raises(ValueError, match=message) as error:
        settings(*argv)
    assert "\n" not in str(error.value)


def test_the_objects_reject_bad_values_without_the_command_line():
    with pytest.raises(ValueError, match="not both"):
        SlurmSettings(env_command="module load x", venv_path="/v/bin/activate")
    with pytest.raises(ValueError, match="unknown executor 'dask'; choose one of local, slurm"):
        ExecutorSettings(executor="dask")
    with pytest.raises(ValueError, match="needs a Ray address"):
        ExecutorSettings(executor="ray")
    assert SlurmSettings(max_array_size=-1).max_array_size == -1  # no limit


def test_the_ray_address_comes_from_the_option_or_the_environment(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert settings("--executor", "ray").ray_address == "10.0.0.1:6379"
    given = settings("--executor", "ray", "--ray-address", "ray://head:10001")
    assert given.ray_address == "ray://head:10001" and given.finishes_here
    assert settings().ray_address is None  # RAY_ADDRESS alone does not concern a local run
    shared = settings("--executor", "ray", "--cpus-per-task", "4", "--tasks-per-job", "2")
    assert (shared.slurm.cpus_per_task, shared.slurm.tasks_per_job) == (4, 2)

"""Stages become datatrove executors with datatrove's own Slurm controls; --dry-run shows them."""

from __future__ import annotations

import argparse

from datatrove.executor import SlurmPipelineExecutor
from datatrove.pipeline.filters import LambdaFilter

from ai_filters.cli.executor_options import add_executor_options, executor_settings_from_args
from ai_filters.executors.chain import Stage, chain_executors, describe_chain
from ai_filters.executors.settings import ExecutorSettings


def parse(*argv: str) -> ExecutorSettings:
    """The settings the pipeline scripts build from ``argv``."""
    parser = argparse.ArgumentParser()
    add_executor_options(parser)
    return executor_settings_from_args(parser.parse_args(list(argv)))


def stages() -> dict[str, Stage]:
    keep = LambdaFilter(lambda document: True)
    return {
        "score": Stage([keep], 6, gpus=True),
        "thresholds": Stage([keep], 1, one_task=True),
        "select": Stage([keep], 6),
    }


SLURM = ["--executor", "slurm", "--partition", "debug", "--tasks", "6"]


def test_slurm_controls_are_passed_to_datatrove(tmp_path):
    args = parse(
        *SLURM,
        *("--workers", "3", "--tasks-per-job", "2", "--max-array-size", "100"),
        *("--randomize-start", "45", "--gpus-per-task", "1", "--one-task-mem-gb", "12"),
        *("--one-task-cpus", "4", "--one-task-time", "02:00:00", "--venv-path", "/v/bin/activate"),
    )
    score, thresholds, select = chain_executors(args, stages(), str(tmp_path / "logs"))
    assert all(isinstance(executor, SlurmPipelineExecutor) for executor in (score, thresholds))
    assert (score.workers, score.tasks_per_job, score.max_array_size) == (3, 2, 100)
    assert score.randomize_start_duration == 45 and score.venv_path == "/v/bin/activate"
    assert (score.gpus_per_task, select.gpus_per_task, thresholds.gpus_per_task) == (1, 0, 0)
    assert (score.cpus_per_task, score.mem_per_cpu_gb, score.time) == (1, 4, "24:00:00")
    # the one-task stage: 12 GB over 4 CPUs, its own time limit
    assert (thresholds.cpus_per_task, thresholds.mem_per_cpu_gb) == (4, 3)
    assert thresholds.time == "02:00:00" and thresholds.depends is score
    assert str(score.logging_dir.path).endswith("logs/score")


def test_dry_run_prints_the_sbatch_scripts_it_would_submit(tmp_path):
    args = parse(*SLURM, "--workers", "2", "--tasks-per-job", "2")
    plan = stages()
    text = describe_chain(args, plan, chain_executors(args, plan, str(tmp_path / "logs")))
    score, thresholds = text.split("stage thresholds:")[0], text.split("stage thresholds:")[1]
    assert "stage score: 6 tasks, 2 per array job" in score
    assert "#SBATCH --array=0-2%2" in score  # 3 array jobs of 2 tasks, 2 at a time
    assert "#SBATCH --partition=debug" in score and "launch_pickled_pipeline" in score
    assert "runs after 'score' succeeds" in thresholds and "#SBATCH --time=04:00:00" in thresholds
    assert not (tmp_path / "logs" / "score" / "executor.pik").exists()  # nothing submitted


def test_local_stages_and_their_dry_run(tmp_path):
    args = parse("--tasks", "6", "--workers", "2")
    plan = stages()
    score, thresholds, _ = executors = chain_executors(args, plan, str(tmp_path / "logs"))
    assert (score.workers, thresholds.workers, thresholds.world_size) == (2, 1, 1)
    text = describe_chain(args, plan, executors)
    assert "stage score: 6 tasks, 2 at once" in text and "stage thresholds: 1 tasks" in text
    assert not (tmp_path / "logs").exists()

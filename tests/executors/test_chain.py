"""Stages become datatrove executors with datatrove's own Slurm controls; --dry-run shows them."""

from __future__ import annotations

import argparse
import socket

import fsspec
import pytest
from datatrove.executor import SlurmPipelineExecutor
from datatrove.pipeline.filters import LambdaFilter

from ai_filters.executors.chain import Stage, TaskFailed, chain_executors, describe_chain
from ai_filters.executors.options import add_executor_options, executor_settings_from_options
from ai_filters.executors.ray_stages import (
    GIB,
    RayStageExecutor,
    check_placeable,
    check_reachable,
)
from ai_filters.executors.settings import ExecutorSettings


def parse(*argv: str) -> ExecutorSettings:
    """The settings the pipeline scripts build from ``argv``."""
    parser = argparse.ArgumentParser()
    add_executor_options(parser)
    return executor_settings_from_options(vars(parser.parse_args(list(argv))))


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


RAY = ["--executor", "ray", "--ray-address", "127.0.0.1:6379", "--tasks", "6"]


def test_ray_stages_take_the_slurm_meaning_of_the_options(tmp_path):
    resources = ["--cpus-per-task", "2", "--mem-per-cpu-gb", "3", "--gpus-per-task", "1"]
    one_task = ["--one-task-cpus", "2", "--one-task-mem-gb", "5"]
    args = parse(*RAY, "--workers", "3", *resources, *one_task)
    score, thresholds, select = chain_executors(args, stages(), str(tmp_path / "logs"))
    assert all(isinstance(executor, RayStageExecutor) for executor in (score, thresholds, select))
    assert (score.depends, thresholds.depends, select.depends) == (None, score, thresholds)
    resources = [(e.cpus_per_task, e.mem_per_cpu_gb, e.gpus_per_task) for e in (score, select)]
    assert resources == [(2, 3, 1), (2, 3, 0)]  # GPUs only for the scoring stage
    assert (score.workers, score.world_size, thresholds.workers) == (3, 6, 1)
    assert (thresholds.cpus_per_task, thresholds.mem_per_cpu_gb, thresholds.gpus_per_task) == (
        2,
        3,  # 5 GB over 2 CPUs, rounded up, as on Slurm
        0,
    )
    text = describe_chain(args, stages(), [score, thresholds, select])
    assert "stage score: 6 tasks on Ray at 127.0.0.1:6379, 3 at once" in text
    assert "(2 CPUs, 6 GiB, 1 GPUs per task), runs first" in text
    assert "stage select: 6 tasks" in text and "runs after 'thresholds' succeeds" in text
    assert not (tmp_path / "logs").exists()


def test_a_stage_no_ray_node_can_place_is_refused_in_one_line(tmp_path):
    executors = chain_executors(parse(*RAY, "--gpus-per-task", "1"), stages(), str(tmp_path))
    cpu_node = {"Alive": True, "Resources": {"CPU": 8.0, "memory": 16.0 * GIB}}
    gpu_node = {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0, "memory": 16.0 * GIB}}
    check_placeable([cpu_node, gpu_node], list(stages()), executors)
    with pytest.raises(SystemExit, match="stage 'score' asks Ray for 1 GPU per task; the largest"):
        check_placeable([cpu_node, {**gpu_node, "Alive": False}], list(stages()), executors)
    small = {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0, "memory": 2.0 * GIB}}
    with pytest.raises(SystemExit, match=r"asks Ray for 4.0 GiB memory .* has 2.0 GiB$"):
        check_placeable([small], list(stages()), executors)


def test_an_address_where_no_ray_cluster_answers_is_refused_at_once():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        check_reachable(f"127.0.0.1:{port}")
        check_reachable(f"ray://127.0.0.1:{port}")
    with pytest.raises(SystemExit, match=f"no Ray cluster answers at 127.0.0.1:{port} "):
        check_reachable(f"127.0.0.1:{port}")  # closed now: refused, not retried for minutes


def test_a_task_on_a_full_disk_fails_in_one_line_naming_the_file(tmp_path, capsys):
    """Its output and its log file on a full disk (links to /dev/full): loguru's report that it
    cannot write the log stays off the console, and the error names the output file."""
    output = tmp_path / "out.jsonl.gz"
    log = tmp_path / "logs" / "score" / "logs" / "task_00000.log"
    log.parent.mkdir(parents=True)
    for path in (output, log):
        path.symlink_to("/dev/full")

    def write_output(data, rank: int = 0, world_size: int = 1):
        with fsspec.open(str(output), "wt", compression="gzip") as file:
            file.write("x" * 100_000)
        yield from data or []

    executors = chain_executors(
        parse(), {"score": Stage([write_output], 1)}, str(tmp_path / "logs")
    )
    with pytest.raises(TaskFailed) as raised:
        executors[-1].run()
    stderr = capsys.readouterr().err
    assert f"no space left on device writing {output} (full log: " in str(raised.value)
    assert "Logging error" not in stderr and 'File "' not in stderr, stderr[-2000:]

"""Running the project's datatrove pipelines locally or on Slurm, with the same options.

The pipeline scripts in ``pipelines/`` describe stages; this module turns them into chained
datatrove executors (``LocalPipelineExecutor`` or ``SlurmPipelineExecutor``), checks Slurm
options before anything is submitted, and can wait for submitted jobs.

A local task that fails raises :class:`TaskFailed`, whose one-line message names the stage,
the task, the error and the task's log file; without ``--debug`` the traceback stays in that
log file instead of being printed (see :class:`ai_filters.console.OneLineErrors`).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from datatrove.executor import LocalPipelineExecutor, SlurmPipelineExecutor
from datatrove.utils.stats import PipelineStats

from ai_filters.console import error_line

TRACEBACK_HEADER = "Traceback (most recent call last)"


class TaskFailed(RuntimeError):
    """A local pipeline task raised; the message says which task, why, and where its log is."""


class _TracebackFreeStream(io.TextIOBase):
    """Passes text on to ``stream``, except a log record that carries a traceback.

    loguru writes each record, its traceback included, in one ``write`` call, so a write that
    holds a traceback is exactly one failure record: it is left out here (the task's log file
    keeps it) and :class:`TaskFailed` reports the failure in one line.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        if TRACEBACK_HEADER not in text:
            self.stream.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()


class OneLineLocalExecutor(LocalPipelineExecutor):
    """datatrove's local executor whose failed task raises a one-line :class:`TaskFailed`.

    Args (besides ``LocalPipelineExecutor``'s):
        stage: the stage's name, used in the message.
        debug: let the task's own exception and traceback through instead.

    datatrove logs a failed task's traceback to the console and to
    ``<logging_dir>/logs/task_<rank>.log``; without ``debug`` only the file gets it.
    """

    def __init__(self, *args, stage: str, debug: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stage = stage
        self.debug = debug

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1) -> PipelineStats:
        if self.debug:
            return super()._run_for_rank(rank, local_rank, node_rank)
        try:
            with redirect_stderr(_TracebackFreeStream(sys.stderr)):
                return super()._run_for_rank(rank, local_rank, node_rank)
        except Exception as error:
            log = self.logging_dir.resolve_paths(f"logs/task_{rank:05d}.log")
            raise TaskFailed(
                f"stage '{self.stage}' failed in task {rank}: {error_line(error)} (full log: {log})"
            ) from None


@dataclass(frozen=True)
class Stage:
    """One stage of a pipeline script: its datatrove pipeline and how it runs.

    ``one_task`` stages (thresholds, report, merges) see all the data at once and take the
    ``--one-task-*`` resources; ``gpus`` stages (scoring) get ``--gpus-per-task``.
    """

    pipeline: list
    tasks: int
    one_task: bool = False
    gpus: bool = False


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """The execution options every pipeline script shares (datatrove's, passed through)."""
    run = parser.add_argument_group("execution")
    run.add_argument("--executor", choices=["local", "slurm"], default="local")
    run.add_argument("--tasks", type=int, default=2, help="tasks of the parallel stages")
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="tasks run at once: local, default 1; slurm, the array throttle (%%N), default "
        "no limit",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print every stage (tasks, resources, dependency) and, on Slurm, the sbatch script "
        "it would submit; run, write and submit nothing (on Slurm, only the empty folders for "
        "Slurm's own logs are made)",
    )
    run.add_argument(
        "--debug",
        action="store_true",
        help="show tracebacks on errors (default: one line; a local task's traceback is in "
        "its log file, OUT/logs/<stage>/logs/)",
    )
    slurm = parser.add_argument_group("Slurm (with --executor slurm)")
    slurm.add_argument("--partition", default=None, help="partition (required)")
    slurm.add_argument("--time", default="24:00:00", help="time limit of a parallel-stage task")
    slurm.add_argument("--cpus-per-task", type=int, default=1, help="CPUs per parallel task")
    slurm.add_argument("--mem-per-cpu-gb", type=int, default=4, help="memory per CPU (GB)")
    slurm.add_argument(
        "--gpus-per-task", type=int, default=0, help="GPUs per task of the model stages (scoring)"
    )
    slurm.add_argument(
        "--one-task-cpus",
        type=int,
        default=1,
        help="CPUs of the one-task stages (thresholds, report, merges)",
    )
    slurm.add_argument(
        "--one-task-mem-gb",
        type=int,
        default=8,
        help="memory of a one-task stage (GB); thresholds and report hold 8 bytes per document "
        "of the largest domain: 2 GB for 240M documents",
    )
    slurm.add_argument("--one-task-time", default="04:00:00", help="time of a one-task stage")
    slurm.add_argument(
        "--tasks-per-job", type=int, default=1, help="datatrove tasks run by one array job"
    )
    slurm.add_argument(
        "--max-array-size",
        type=int,
        default=1001,
        help="largest job array the cluster accepts (MaxArraySize); more tasks become "
        "several arrays",
    )
    slurm.add_argument(
        "--randomize-start",
        type=int,
        default=0,
        metavar="SECONDS",
        help="delay each task's start by up to this many seconds (spreads the first requests "
        "of thousands of tasks, e.g. against Hub rate limits)",
    )
    slurm.add_argument("--qos", default=None, help="quality of service")
    slurm.add_argument(
        "--sbatch-args",
        default=None,
        help='extra sbatch options as JSON, e.g. \'{"account": "proj"}\'',
    )
    slurm.add_argument(
        "--env-command",
        default=None,
        help="shell command run first in every job to set up the environment (default: "
        "activate the virtualenv running this script)",
    )
    slurm.add_argument(
        "--venv-path",
        default=None,
        help="activate script sourced in every job instead (datatrove's venv_path), e.g. "
        "/fsx/venv/bin/activate",
    )
    slurm.add_argument(
        "--wait", action="store_true", help="wait until the submitted jobs have finished"
    )


def check_slurm_options(args: argparse.Namespace) -> None:
    """Fail in one line, before submitting, when the partition or sbatch args are wrong."""
    if not args.partition:
        raise SystemExit("error: --executor slurm needs --partition")
    try:
        json.loads(args.sbatch_args or "{}")
    except json.JSONDecodeError as error:
        raise SystemExit(f"error: --sbatch-args is not JSON: {error}") from error
    if args.env_command and args.venv_path:
        raise SystemExit("error: give --env-command or --venv-path, not both")
    listing = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True)
    if listing.returncode != 0:
        raise SystemExit(f"error: sinfo failed ({listing.stderr.strip()}); is Slurm reachable?")
    partitions = listing.stdout.split()
    if args.partition not in partitions:
        raise SystemExit(
            f"error: Slurm partition '{args.partition}' does not exist "
            f"(partitions: {', '.join(partitions) or 'none'})"
        )


def chain_executors(args: argparse.Namespace, stages: dict[str, Stage], logging_root: str) -> list:
    """One executor per stage, each depending on the previous; logs in ``logging_root/<stage>``
    (a local folder or a URL)."""
    executors: list = []
    for name, stage in stages.items():
        common = {
            "pipeline": stage.pipeline,
            "tasks": stage.tasks,
            "logging_dir": f"{logging_root.rstrip('/')}/{name}",
            "depends": executors[-1] if executors else None,
            "randomize_start_duration": 0 if stage.one_task else args.randomize_start,
        }
        if args.executor == "local":
            workers = min(args.workers or 1, stage.tasks)
            executor = OneLineLocalExecutor(**common, workers=workers, stage=name, debug=args.debug)
        else:
            executor = SlurmPipelineExecutor(
                **common, **_slurm_resources(args, stage), **_slurm_settings(args, name, stage)
            )
        executors.append(executor)
    return executors


def _slurm_resources(args: argparse.Namespace, stage: Stage) -> dict:
    if stage.one_task:
        return {
            "time": args.one_task_time,
            "cpus_per_task": args.one_task_cpus,
            "mem_per_cpu_gb": -(-args.one_task_mem_gb // args.one_task_cpus),
            "gpus_per_task": 0,
        }
    return {
        "time": args.time,
        "cpus_per_task": args.cpus_per_task,
        "mem_per_cpu_gb": args.mem_per_cpu_gb,
        "gpus_per_task": args.gpus_per_task if stage.gpus else 0,
    }


def _slurm_settings(args: argparse.Namespace, name: str, stage: Stage) -> dict:
    default_env = None if args.venv_path else f"source {Path(sys.prefix) / 'bin' / 'activate'}"
    return {
        "job_name": f"ai_filters_{name}",
        "partition": args.partition,
        "workers": -1 if stage.one_task else args.workers or -1,
        "tasks_per_job": 1 if stage.one_task else args.tasks_per_job,
        "max_array_size": args.max_array_size,
        "qos": args.qos or "",
        "sbatch_args": json.loads(args.sbatch_args or "{}"),
        "env_command": args.env_command or default_env,
        "venv_path": args.venv_path,
        "mail_type": "NONE",
    }


def _sbatch_args_without_folders(executor: SlurmPipelineExecutor, jobs: int) -> dict:
    """datatrove's sbatch directives for ``jobs`` array jobs, without the folder for Slurm's
    logs that computing them creates (a dry run writes nothing)."""
    folder = executor.slurm_logs_folder
    with tempfile.TemporaryDirectory() as scratch:
        executor.slurm_logs_folder = scratch
        try:
            sbatch = executor.get_sbatch_args(jobs)
        finally:
            executor.slurm_logs_folder = folder
    return {k: v.replace(scratch, folder) if isinstance(v, str) else v for k, v in sbatch.items()}


def describe_chain(args: argparse.Namespace, stages: dict[str, Stage], executors: list) -> str:
    """What ``--dry-run`` prints: every stage with its tasks, resources and dependency, and on
    Slurm the sbatch script each stage would submit (as datatrove writes it)."""
    lines = []
    for index, (name, executor) in enumerate(zip(stages, executors, strict=True)):
        after = f"after '{list(stages)[index - 1]}' succeeds" if index else "first"
        if args.executor == "local":
            lines.append(f"stage {name}: {executor.world_size} tasks, {executor.workers} at once")
            lines.append(f"  runs {after}; logs in {executor.logging_dir.path}")
            continue
        jobs = math.ceil(executor.world_size / executor.tasks_per_job)
        if executor.max_array_size != -1:
            jobs = min(jobs, executor.max_array_size)
        sbatch = _sbatch_args_without_folders(executor, jobs)
        resources = (
            f"{executor.cpus_per_task} CPUs x {executor.mem_per_cpu_gb} GB, "
            f"{executor.gpus_per_task} GPUs, time {executor.time}"
        )
        spread = f"; start delayed up to {executor.randomize_start_duration} s"
        lines.append(
            f"stage {name}: {executor.world_size} tasks, {executor.tasks_per_job} per array job "
            f"({resources}{spread if executor.randomize_start_duration else ''}), runs {after}"
        )
        run = f"launch_pickled_pipeline {executor.logging_dir.resolve_paths('executor.pik')}"
        script = executor.get_launch_file_contents(sbatch, f"srun -l -n 1 {run}")
        lines += ["  " + line for line in script.strip().splitlines()]
    return "\n".join(lines)


def run_chain(args: argparse.Namespace, executors: list, stage_names: list[str]) -> None:
    """Run (local) or submit (Slurm) the chain; with ``--wait``, wait for the Slurm jobs."""
    executors[-1].run()
    if args.executor != "slurm":
        return
    jobs = {name: executor.job_id for name, executor in zip(stage_names, executors, strict=True)}
    print("submitted: " + ", ".join(f"{name}={job}" for name, job in jobs.items()))
    if args.wait:
        wait_for_jobs([str(job) for job in jobs.values() if job not in (None, -1)])


def wait_for_jobs(job_ids: list[str], poll_seconds: float = 3.0) -> None:
    """Block until none of ``job_ids`` is pending or running."""
    while job_ids:
        listing = subprocess.run(
            ["squeue", "-h", "-o", "%i", "-j", ",".join(job_ids)], capture_output=True, text=True
        )
        finished = listing.returncode == 0 and not listing.stdout.split()
        if finished or "Invalid job id" in listing.stderr:  # purged jobs are long finished
            return
        time.sleep(poll_seconds)

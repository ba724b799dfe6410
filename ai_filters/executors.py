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
import subprocess
import sys
import time
from contextlib import redirect_stderr
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


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """The execution options every pipeline script shares."""
    run = parser.add_argument_group("execution")
    run.add_argument("--executor", choices=["local", "slurm"], default="local")
    run.add_argument("--tasks", type=int, default=2, help="tasks of the parallel stages")
    run.add_argument("--workers", type=int, default=1, help="local: tasks run at once")
    run.add_argument("--partition", default=None, help="slurm: partition (required)")
    run.add_argument("--time", default="24:00:00", help="slurm: time limit per task")
    run.add_argument("--cpus-per-task", type=int, default=1, help="slurm: CPUs per task")
    run.add_argument("--mem-per-cpu-gb", type=int, default=4, help="slurm: memory per CPU (GB)")
    run.add_argument(
        "--gpus-per-task",
        type=int,
        default=0,
        help="slurm: GPUs per task of the model stages (scoring)",
    )
    run.add_argument("--qos", default=None, help="slurm: quality of service")
    run.add_argument(
        "--sbatch-args",
        default=None,
        help='slurm: extra sbatch options as JSON, e.g. \'{"account": "proj"}\'',
    )
    run.add_argument(
        "--env-command",
        default=None,
        help="slurm: shell command run first in every job to activate the "
        "environment (default: activate the virtualenv running this script)",
    )
    run.add_argument(
        "--wait", action="store_true", help="slurm: wait until the submitted jobs have finished"
    )
    run.add_argument(
        "--debug",
        action="store_true",
        help="show tracebacks on errors (default: one line; a local task's traceback is in "
        "its log file, OUT/logs/<stage>/logs/)",
    )


def check_slurm_options(args: argparse.Namespace) -> None:
    """Fail in one line, before submitting, when the partition or sbatch args are wrong."""
    if not args.partition:
        raise SystemExit("error: --executor slurm needs --partition")
    try:
        json.loads(args.sbatch_args or "{}")
    except json.JSONDecodeError as error:
        raise SystemExit(f"error: --sbatch-args is not JSON: {error}") from error
    listing = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True)
    if listing.returncode != 0:
        raise SystemExit(f"error: sinfo failed ({listing.stderr.strip()}); is Slurm reachable?")
    partitions = listing.stdout.split()
    if args.partition not in partitions:
        raise SystemExit(
            f"error: Slurm partition '{args.partition}' does not exist "
            f"(partitions: {', '.join(partitions) or 'none'})"
        )


def chain_executors(
    args: argparse.Namespace,
    stages: dict[str, tuple[list, int]],
    logging_root: Path,
    gpu_stages: frozenset[str] = frozenset(),
) -> list:
    """One executor per stage, each depending on the previous; logs in ``logging_root/<stage>``."""
    executors: list = []
    for stage, (pipeline, tasks) in stages.items():
        common = {
            "pipeline": pipeline,
            "tasks": tasks,
            "logging_dir": str(logging_root / stage),
            "depends": executors[-1] if executors else None,
        }
        if args.executor == "local":
            executors.append(
                OneLineLocalExecutor(
                    **common,
                    workers=args.workers,
                    stage=stage,
                    debug=getattr(args, "debug", False),
                )
            )
            continue
        executors.append(
            SlurmPipelineExecutor(
                **common,
                job_name=f"ai_filters_{stage}",
                time=args.time,
                partition=args.partition,
                cpus_per_task=args.cpus_per_task,
                mem_per_cpu_gb=args.mem_per_cpu_gb,
                gpus_per_task=args.gpus_per_task if stage in gpu_stages else 0,
                qos=args.qos or "",
                sbatch_args=json.loads(args.sbatch_args or "{}"),
                env_command=args.env_command or f"source {Path(sys.prefix) / 'bin' / 'activate'}",
                mail_type="NONE",
            )
        )
    return executors


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

"""Running the project's datatrove pipelines locally, on Slurm, on Ray or on Hugging Face Jobs,
with the same options.

The pipeline scripts in ``pipelines/`` describe stages; this module turns them into chained
datatrove executors (``LocalPipelineExecutor``, ``SlurmPipelineExecutor``, through
:mod:`ai_filters.executors.ray_stages` ``RayPipelineExecutor``, through
:mod:`ai_filters.executors.jobs` ``JobsPipelineExecutor``), checks before anything starts that
the Slurm partition exists or that the Jobs can reach the output folder, and can wait for
submitted jobs. How they run comes
whole in one :class:`~ai_filters.executors.settings.ExecutorSettings`.

A local task that fails raises :class:`TaskFailed`, whose one-line message names the stage,
the task, the error and the task's log file; without ``debug`` the traceback stays in that
log file instead of being printed (see :class:`ai_filters.console.OneLineErrors`).
"""

from __future__ import annotations

import io
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from datatrove.executor import LocalPipelineExecutor, SlurmPipelineExecutor
from datatrove.utils.stats import PipelineStats

from ai_filters.console import error_line
from ai_filters.executors.jobs import check_completed, describe_jobs, jobs_executor
from ai_filters.executors.jobs_settings import check_shared_folder
from ai_filters.executors.ray_stages import (
    RayStageExecutor,
    describe_ray_stage,
    ray_resources,
    run_on_ray,
)
from ai_filters.executors.secrets import check_no_secret
from ai_filters.executors.settings import ExecutorSettings, SlurmSettings
from ai_filters.executors.task_logs import ValueFreeTracebacks

TRACEBACK_HEADER = "Traceback (most recent call last)"
LOGGING_ERROR_START = "--- Logging error in Loguru Handler"
LOGGING_ERROR_END = "--- End of logging error ---"


class TaskFailed(RuntimeError):
    """A local pipeline task raised; the message says which task, why, and where its log is."""


class _TracebackFreeStream(io.TextIOBase):
    """Passes text on to ``stream``, except a log record that carries a traceback, and loguru's
    reports of a log handler that could not write.

    loguru writes each record, its traceback included, in one ``write`` call, so a write that
    holds a traceback is exactly one failure record: it is left out here (the task's log file
    keeps it) and :class:`TaskFailed` reports the failure in one line. When a handler fails
    (the task's log file on a full disk), loguru reports it on stderr in many writes, from
    ``--- Logging error in Loguru Handler`` to ``--- End of logging error ---``: all are left
    out (the error that filled the disk is the task's own, reported by :class:`TaskFailed`).
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._in_logging_error = False

    def write(self, text: str) -> int:
        if text.startswith(LOGGING_ERROR_START):
            self._in_logging_error = True
        if not self._in_logging_error and TRACEBACK_HEADER not in text:
            self.stream.write(text)
        if self._in_logging_error and LOGGING_ERROR_END in text:
            self._in_logging_error = False
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()


class OneLineLocalExecutor(ValueFreeTracebacks, LocalPipelineExecutor):
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


class SlurmStageExecutor(ValueFreeTracebacks, SlurmPipelineExecutor):
    """datatrove's Slurm executor; its task logs show tracebacks without variable values."""


@dataclass(frozen=True)
class Stage:
    """One stage of a pipeline script: its datatrove pipeline and how it runs.

    ``one_task`` stages (thresholds, report, merges) see all the data at once and take the
    ``one_task_*`` Slurm resources; ``gpus`` stages (scoring) get ``gpus_per_task``.
    """

    pipeline: list
    tasks: int
    one_task: bool = False
    gpus: bool = False


def check_partition(slurm: SlurmSettings) -> None:
    """Fail in one line, before submitting, when Slurm is unreachable or has no such partition."""
    listing = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True)
    if listing.returncode != 0:
        raise SystemExit(f"error: sinfo failed ({listing.stderr.strip()}); is Slurm reachable?")
    partitions = listing.stdout.split()
    if slurm.partition not in partitions:
        raise SystemExit(
            f"error: Slurm partition '{slurm.partition}' does not exist "
            f"(partitions: {', '.join(partitions) or 'none'})"
        )


def check_reachable(settings: ExecutorSettings, out: str) -> None:
    """Before anything is written: that ``out`` holds no credential (it is recorded in every
    stage's executor files); on Slurm, that the partition exists; on Hugging Face Jobs, that
    ``out`` is a folder the Jobs reach too (one line otherwise)."""
    check_no_secret(str(out), "--out")
    if settings.executor == "slurm":
        check_partition(settings.slurm)
    elif settings.executor == "hf-jobs":
        check_shared_folder(str(out), "--out")


def chain_executors(
    settings: ExecutorSettings, stages: dict[str, Stage], logging_root: str
) -> list:
    """One executor per stage, each depending on the previous; logs in ``logging_root/<stage>``
    (a local folder or a URL)."""
    executors: list = []
    slurm = settings.slurm
    for name, stage in stages.items():
        common = {
            "pipeline": stage.pipeline,
            "tasks": stage.tasks,
            "logging_dir": f"{logging_root.rstrip('/')}/{name}",
            "depends": executors[-1] if executors else None,
            "randomize_start_duration": 0 if stage.one_task else slurm.randomize_start,
        }
        if settings.is_local:
            workers = min(settings.workers or 1, stage.tasks)
            executor = OneLineLocalExecutor(
                **common, workers=workers, stage=name, debug=settings.debug
            )
        elif settings.executor == "hf-jobs":
            flavor = settings.jobs.flavor_for(stage.one_task, stage.gpus)
            executor = jobs_executor(settings, name, flavor, common)
        elif settings.executor == "ray":
            resources = ray_resources(settings, stage.one_task, stage.gpus)
            executor = RayStageExecutor(**common, **resources, stage=name)
        else:
            executor = SlurmStageExecutor(
                **common,
                **_slurm_resources(slurm, stage),
                **_slurm_settings(settings, name, stage),
            )
        executors.append(executor)
    return executors


def _slurm_resources(slurm: SlurmSettings, stage: Stage) -> dict:
    if stage.one_task:
        return {
            "time": slurm.one_task_time,
            "cpus_per_task": slurm.one_task_cpus,
            "mem_per_cpu_gb": -(-slurm.one_task_mem_gb // slurm.one_task_cpus),
            "gpus_per_task": 0,
        }
    return {
        "time": slurm.time,
        "cpus_per_task": slurm.cpus_per_task,
        "mem_per_cpu_gb": slurm.mem_per_cpu_gb,
        "gpus_per_task": slurm.gpus_per_task if stage.gpus else 0,
    }


def _slurm_settings(settings: ExecutorSettings, name: str, stage: Stage) -> dict:
    slurm = settings.slurm
    default_env = None if slurm.venv_path else f"source {Path(sys.prefix) / 'bin' / 'activate'}"
    return {
        "job_name": f"ai_filters_{name}",
        "partition": slurm.partition,
        "workers": -1 if stage.one_task else settings.workers or -1,
        "tasks_per_job": 1 if stage.one_task else slurm.tasks_per_job,
        "max_array_size": slurm.max_array_size,
        "qos": slurm.qos or "",
        "sbatch_args": dict(slurm.sbatch_args),
        "env_command": slurm.env_command or default_env,
        "venv_path": slurm.venv_path,
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


def describe_chain(settings: ExecutorSettings, stages: dict[str, Stage], executors: list) -> str:
    """What a dry run prints: every stage with its tasks, resources and dependency, and on
    Slurm the sbatch script each stage would submit (as datatrove writes it)."""
    if settings.executor == "hf-jobs":
        return "\n".join(describe_jobs(list(stages), executors))
    lines = []
    for index, (name, executor) in enumerate(zip(stages, executors, strict=True)):
        after = f"after '{list(stages)[index - 1]}' succeeds" if index else "first"
        if settings.is_local:
            lines.append(f"stage {name}: {executor.world_size} tasks, {executor.workers} at once")
            lines.append(f"  runs {after}; logs in {executor.logging_dir.path}")
            continue
        if settings.executor == "ray":
            lines.append(describe_ray_stage(name, executor, after, settings.ray_address))
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


def run_chain(
    settings: ExecutorSettings,
    executors: list,
    stage_names: list[str],
    on_submitted: Callable[[list[str]], None] | None = None,
) -> None:
    """Run (local, Ray, Hugging Face Jobs: until the last stage's Jobs finish, then fail in
    one line on a stage with incomplete tasks) or submit (Slurm) the chain; on Slurm,
    ``on_submitted`` gets the submitted job ids, then with ``settings.wait`` the jobs are
    waited for."""
    if settings.executor == "ray":
        run_on_ray(settings, executors, stage_names)
        return
    executors[-1].run()
    if settings.executor == "hf-jobs":
        check_completed(stage_names, executors)
    if settings.executor != "slurm":
        return
    jobs = {name: executor.job_id for name, executor in zip(stage_names, executors, strict=True)}
    print("submitted: " + ", ".join(f"{name}={job}" for name, job in jobs.items()))
    submitted = [str(job) for job in jobs.values() if job not in (None, -1)]
    if on_submitted is not None:
        on_submitted(submitted)
    if settings.wait:
        wait_for_jobs(submitted)


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

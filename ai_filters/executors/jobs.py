"""The stages on Hugging Face Jobs: datatrove's (experimental) ``JobsPipelineExecutor``, one per
stage, what a dry run prints for them, and the check that they all completed.

Each Job runs ``launch_pickled_pipeline <logging folder>/executor.pik`` in a uv environment with
datatrove (the version running here) and :attr:`JobsSettings.requirements`; the launching
process stays up until the last stage's Jobs have finished. The token comes from the
environment when the Jobs are launched and is written to no file (datatrove clears it before
pickling the executor).
"""

from __future__ import annotations

import math
from importlib.metadata import version
from pathlib import Path

from datatrove.executor.jobs import JobsPipelineExecutor
from datatrove.tools import launch_pickled_pipeline

from ai_filters.executors.settings import ExecutorSettings
from ai_filters.executors.task_logs import ValueFreeTracebacks


class JobsStageExecutor(ValueFreeTracebacks, JobsPipelineExecutor):
    """datatrove's Jobs executor; its task logs show tracebacks without variable values."""


def jobs_executor(
    settings: ExecutorSettings, name: str, flavor: str, common: dict
) -> JobsPipelineExecutor:
    """The Jobs executor of stage ``name`` on ``flavor``: ``common`` holds the pipeline, tasks,
    logging folder, dependency and start delay; one-task stages run one Job."""
    jobs = settings.jobs
    return JobsStageExecutor(
        **common,
        workers=-1 if common["tasks"] == 1 else settings.workers or -1,
        flavor=flavor,
        timeout=jobs.timeout,
        dependencies=[f"datatrove[io]=={version('datatrove')}", *jobs.requirements],
        job_name=f"ai_filters_{name}",
    )


def job_command(executor: JobsPipelineExecutor) -> str:
    """The command each Job of ``executor`` runs (as ``huggingface_hub.run_uv_job`` builds it)."""
    script = Path(launch_pickled_pipeline.__file__).name
    withs = " ".join(f"--with '{requirement}'" for requirement in executor.dependencies)
    pik = executor.logging_dir.resolve_paths("executor.pik")
    return f"uv run {withs} --python {executor.python} {script} {pik}"


def describe_jobs(names: list[str], executors: list[JobsPipelineExecutor]) -> list[str]:
    """The dry-run lines of each stage: its Jobs (count, flavor, timeout, at once) and their
    command; nothing is asked of the Hub."""
    lines = []
    for index, (name, executor) in enumerate(zip(names, executors, strict=True)):
        count = math.ceil(executor.world_size / executor.tasks_per_job)
        at_once = "all at once" if executor.workers == -1 else f"up to {executor.workers} at once"
        after = f"after '{names[index - 1]}' succeeds" if index else "first"
        jobs, tasks = _count(count, "Job"), _count(executor.world_size, "task")
        lines.append(
            f"stage {name}: {jobs} on {executor.flavor} ({tasks}, {at_once}, timeout "
            f"{executor.timeout}), runs {after}"
        )
        image = executor.image or "huggingface_hub's uv image"
        lines.append(f"  image: {image}; command: {job_command(executor)}")
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def check_completed(names: list[str], executors: list[JobsPipelineExecutor]) -> None:
    """``RuntimeError`` in one line naming the first stage whose tasks did not all complete
    (datatrove logs a Job that failed after its retries and goes on)."""
    for name, executor in zip(names, executors, strict=True):
        executor.logging_dir.fs.invalidate_cache()
        incomplete = executor.get_incomplete_ranks(skip_completed=True)
        if incomplete:
            raise RuntimeError(
                f"stage '{name}': {len(incomplete)} of {executor.world_size} tasks did not "
                f"complete on Jobs (logs in {executor.logging_dir.resolve_paths('logs')}); rerun "
                "the same command to relaunch them"
            )

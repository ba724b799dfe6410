"""The execution options every pipeline script shares, and the settings object they give."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields

from ai_filters.console import OptionTarget
from ai_filters.executors.jobs_settings import JobsSettings, job_flavors
from ai_filters.executors.settings import (
    EXECUTORS,
    ExecutorSettings,
    SlurmSettings,
    sbatch_args_from_json,
)


def add_executor_options(parser: OptionTarget) -> None:
    """The execution options (datatrove's, passed through); read them back with
    :func:`executor_settings_from_options`."""
    run = parser.add_argument_group("execution")
    run.add_argument("--executor", choices=EXECUTORS, default="local")
    run.add_argument("--tasks", type=int, default=2, help="tasks of the parallel stages")
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="tasks run at once: local, default 1; slurm, the array throttle (%%N), default "
        "no limit; ray, default as many as the cluster's resources allow",
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
    _add_slurm_options(
        parser.add_argument_group(
            "Slurm (with --executor slurm; with --executor ray, the resources, --tasks-per-job "
            "and --randomize-start too)"
        )
    )
    _add_jobs_options(parser.add_argument_group("Hugging Face Jobs (with --executor hf-jobs)"))
    ray = parser.add_argument_group("Ray (with --executor ray)")
    ray.add_argument(
        "--ray-address",
        default=None,
        help="the Ray cluster to run on: auto, local or [ray://]host:port (default: "
        "$RAY_ADDRESS); the workers need ai-filters installed and the output folder reachable",
    )


def _add_slurm_options(slurm: OptionTarget) -> None:
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


def _add_jobs_options(jobs: OptionTarget) -> None:
    flavors = ", ".join(job_flavors())
    jobs.add_argument(
        "--flavor", default="cpu-basic", help=f"hardware of the parallel-stage Jobs ({flavors})"
    )
    jobs.add_argument(
        "--gpu-flavor",
        default=None,
        help="hardware of the stages with a model (scoring), e.g. a10g-small (default: --flavor)",
    )
    jobs.add_argument(
        "--one-task-flavor",
        default="cpu-basic",
        help="hardware of the one-task stages (thresholds, report, merges)",
    )
    jobs.add_argument(
        "--timeout", default="24h", help="time limit of each Job (seconds, or e.g. 30m, 24h)"
    )
    jobs.add_argument(
        "--job-requirements",
        nargs="+",
        default=[],
        metavar="REQUIREMENT",
        help="pip requirement(s) installing ai-filters in each Job (required), e.g. "
        "'ai-filters @ git+https://github.com/ORG/ai-filters'; the token is taken from HF_TOKEN "
        "or the saved login and written to no file",
    )


# options whose parsed value a settings field takes converted (the rest are taken as they are)
_CONVERTED = {
    "sbatch_args": sbatch_args_from_json,  # the JSON of --sbatch-args, read here once
    "env_command": lambda text: text or None,
    "venv_path": lambda text: text or None,
}
_RENAMED = {"requirements": "job_requirements"}  # JobsSettings field -> option


def executor_settings_from_options(options: Mapping[str, object]) -> ExecutorSettings:
    """The :class:`ExecutorSettings` the options of :func:`add_executor_options` give; every
    field of the settings has its option. ``ValueError`` in one line naming a bad value."""
    slurm = SlurmSettings(**_fields_from_options(SlurmSettings, options))
    jobs = _fields_from_options(JobsSettings, options)
    jobs["requirements"] = tuple(jobs["requirements"])
    return ExecutorSettings(
        **_fields_from_options(ExecutorSettings, options, skip=("slurm", "jobs", "ray_address")),
        slurm=slurm,
        jobs=JobsSettings(**jobs),
        ray_address=_ray_address(options),
    )


def _fields_from_options(
    settings: type, options: Mapping[str, object], skip: tuple[str, ...] = ()
) -> dict[str, object]:
    """Each field of the dataclass ``settings`` (but ``skip``) from its option, converted."""
    values = {}
    for field in fields(settings):
        if field.name in skip:
            continue
        value = options[_RENAMED.get(field.name, field.name)]
        values[field.name] = _CONVERTED.get(field.name, lambda given: given)(value)
    return values


def _ray_address(options: Mapping[str, object]) -> str | None:
    """``--ray-address``, else with ``--executor ray`` the environment's ``RAY_ADDRESS``."""
    if options["ray_address"] is not None or options["executor"] != "ray":
        return options["ray_address"]
    return os.environ.get("RAY_ADDRESS") or None

"""How a pipeline script runs, in one frozen, validated object: :class:`ExecutorSettings`.

The command line builds it once
(:func:`ai_filters.executors.options.executor_settings_from_options`) and passes it whole to
:mod:`ai_filters.executors.chain`. A bad value fails when the object is
built, in one line, before any stage is made; whether the Slurm partition exists is asked of
Slurm separately, just before submitting (:func:`ai_filters.executors.chain.check_partition`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ai_filters.console import require_integer
from ai_filters.executors.jobs_settings import JobsSettings
from ai_filters.executors.secrets import check_no_secret

EXECUTORS = ("local", "slurm", "ray", "hf-jobs")
# the options only Slurm has (the resources, tasks_per_job and randomize_start also go to Ray)
SLURM_ONLY = (
    "partition",
    "time",
    "one_task_time",
    "max_array_size",
    "qos",
    "sbatch_args",
    "env_command",
    "venv_path",
)
# a Ray cluster's address: auto, local, or [ray://]host:port
RAY_ADDRESS = re.compile(r"auto|local|(ray://)?[A-Za-z0-9_.\-]+:\d{1,5}")


def sbatch_args_from_json(text: str | None) -> dict[str, object]:
    """The extra sbatch options given as a JSON object (``None``: none); ``ValueError`` in one
    line when ``text`` is not a JSON object."""
    try:
        parsed = json.loads(text or "{}")
    except json.JSONDecodeError as error:
        raise ValueError(f"sbatch_args is not JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"sbatch_args must be a JSON object, got {text}")
    return parsed


def _at_least(owner: object, minimum: int, *names: str) -> None:
    for name in names:
        require_integer(name, getattr(owner, name), minimum)


@dataclass(frozen=True)
class SlurmSettings:
    """The Slurm resources and submission options (used with ``executor="slurm"``).

    Parallel-stage tasks take ``time``, ``cpus_per_task``, ``mem_per_cpu_gb`` and, in the model
    stages, ``gpus_per_task``; one-task stages (thresholds, report, merges) take the
    ``one_task_*`` values. ``max_array_size`` is the cluster's MaxArraySize (``-1``: no limit);
    ``randomize_start`` delays each parallel task's start by up to that many seconds.
    ``env_command`` (a shell command run first in every job; default: activate the virtualenv
    running the script) and ``venv_path`` (an activate script sourced instead) exclude each
    other. ``sbatch_args`` are extra sbatch options (:func:`sbatch_args_from_json` reads them).
    The text options end up in the job scripts: one holding a credential is refused
    (:func:`~ai_filters.executors.secrets.check_no_secret`).
    """

    partition: str | None = None
    time: str = "24:00:00"
    cpus_per_task: int = 1
    mem_per_cpu_gb: int = 4
    gpus_per_task: int = 0
    one_task_cpus: int = 1
    one_task_mem_gb: int = 8
    one_task_time: str = "04:00:00"
    tasks_per_job: int = 1
    max_array_size: int = 1001
    randomize_start: int = 0
    qos: str | None = None
    sbatch_args: Mapping[str, object] = field(default_factory=dict)
    env_command: str | None = None
    venv_path: str | None = None

    def __post_init__(self) -> None:
        _at_least(self, 1, "cpus_per_task", "mem_per_cpu_gb", "one_task_cpus", "one_task_mem_gb")
        _at_least(self, 1, "tasks_per_job")
        _at_least(self, 0, "gpus_per_task", "randomize_start")
        if self.max_array_size != -1:
            _at_least(self, 1, "max_array_size")
        if not isinstance(self.sbatch_args, Mapping) or not all(
            isinstance(key, str) for key in self.sbatch_args
        ):
            raise ValueError(f"sbatch_args must map option names to values, got {self.sbatch_args}")
        if self.env_command and self.venv_path:
            raise ValueError("give env_command or venv_path, not both")
        for name in ("partition", "qos", "env_command", "venv_path"):
            check_no_secret(getattr(self, name) or "", name)
        check_no_secret(json.dumps(dict(self.sbatch_args)), "sbatch_args")


@dataclass(frozen=True)
class ExecutorSettings:
    """Where and how the stages run.

    ``executor``: ``local``, ``slurm``, ``ray`` or ``hf-jobs``; ``tasks``: tasks of the parallel
    stages; ``workers``: tasks run at once (local, default 1; Slurm, the array throttle, default
    no limit; Ray, default as many as the cluster's resources allow);
    ``dry_run``: describe the stages, run nothing; ``debug``: show tracebacks; ``wait``: on
    Slurm, wait until the submitted jobs have finished; ``slurm``: the Slurm options (a
    partition is required with ``executor="slurm"``); ``jobs``: the Hugging Face Jobs options
    (``executor="hf-jobs"``); ``ray_address``: the Ray cluster (``auto``, ``local`` or
    ``[ray://]host:port``), required with ``executor="ray"`` and refused with the others. With
    Ray, the resources of ``slurm`` apply (``cpus_per_task``, ``mem_per_cpu_gb``,
    ``gpus_per_task``, the ``one_task_*`` CPUs and memory, ``tasks_per_job``,
    ``randomize_start``); one of :data:`SLURM_ONLY` set, or ``wait``, is refused.
    """

    executor: str = "local"
    tasks: int = 2
    workers: int | None = None
    dry_run: bool = False
    debug: bool = False
    wait: bool = False
    slurm: SlurmSettings = field(default_factory=SlurmSettings)
    jobs: JobsSettings = field(default_factory=JobsSettings)
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(
                f"unknown executor '{self.executor}'; choose one of {', '.join(EXECUTORS)}"
            )
        _at_least(self, 1, "tasks")
        if self.workers is not None:
            _at_least(self, 1, "workers")
        if self.executor == "slurm" and not self.slurm.partition:
            raise ValueError("executor 'slurm' needs a partition")
        if self.executor == "hf-jobs":
            self.jobs.check_complete()
        self._check_ray()

    def _check_ray(self) -> None:
        if self.executor != "ray":
            if self.ray_address is not None:
                raise ValueError(f"ray_address is for executor 'ray', not '{self.executor}'")
            return
        if not self.ray_address:
            raise ValueError("executor 'ray' needs a Ray address (RAY_ADDRESS or ray_address)")
        if not RAY_ADDRESS.fullmatch(self.ray_address):
            raise ValueError(
                f"ray_address must be auto, local or [ray://]host:port, got '{self.ray_address}'"
            )
        defaults = SlurmSettings()
        given = [
            name for name in SLURM_ONLY if getattr(self.slurm, name) != getattr(defaults, name)
        ]
        given += ["wait"] if self.wait else []
        if given:
            raise ValueError(f"{given[0]} is a Slurm option, not for executor 'ray'")

    @property
    def is_local(self) -> bool:
        """Whether the stages run on this machine (and may show progress bars)."""
        return self.executor == "local"

    @property
    def finishes_here(self) -> bool:
        """Whether running the chain returns only when every stage has finished (local, Ray,
        Hugging Face Jobs, Slurm with ``wait``)."""
        return self.executor in ("local", "ray", "hf-jobs") or self.wait

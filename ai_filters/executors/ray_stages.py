"""Running the chained stages on a Ray cluster with datatrove's ``RayPipelineExecutor``.

:mod:`ai_filters.executors.chain` builds one :class:`RayStageExecutor` per stage (with the same
``tasks``, ``workers`` and per-task resources as on Slurm, chained with datatrove's
``depends``) and calls :func:`run_on_ray`, which connects to the cluster, refuses in one line a
stage no node could ever place (Ray would wait for it forever), runs the chain and disconnects.
Ray comes with the ``ai-filters[ray]`` extra; it is imported only here, when a chain runs.

A stage whose tasks did not all complete raises :class:`RayStageFailed` instead of letting the
next stage wait for it (datatrove's Ray executor polls an incomplete dependency every two
minutes, forever); the failed tasks' logs are in ``<logging_dir>/logs/``, as locally.
"""

from __future__ import annotations

import socket
import sys

from datatrove.executor.ray import RayPipelineExecutor
from datatrove.utils.logging import logger, setup_default_logger

from ai_filters.executors.settings import ExecutorSettings
from ai_filters.executors.task_logs import ValueFreeTracebacks

GIB = 1024**3


class RayStageFailed(RuntimeError):
    """Some tasks of a stage did not complete on Ray; the message names them and their logs."""


class RayStageExecutor(ValueFreeTracebacks, RayPipelineExecutor):
    """datatrove's Ray executor for stage ``stage`` of a chain: its run fails in one line when
    a task did not complete (so that the stages after it do not start)."""

    def __init__(self, *args, stage: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stage = stage

    def run(self) -> None:
        super().run()
        incomplete = self.get_incomplete_ranks(range(self.world_size))
        if incomplete:
            tasks = ", ".join(map(str, incomplete[:10])) + (" ..." if len(incomplete) > 10 else "")
            raise RayStageFailed(
                f"stage '{self.stage}': {len(incomplete)} of {self.world_size} tasks did not "
                f"complete on Ray (tasks {tasks}; logs in "
                f"{self.logging_dir.resolve_paths('logs')})"
            )


def ray_resources(settings: ExecutorSettings, one_task: bool, gpus: bool) -> dict:
    """What one task of a stage asks Ray for, and how the stage's tasks are grouped: the Slurm
    meaning of the options (a one-task stage takes the ``one_task_*`` CPUs and memory and no
    GPU; only ``gpus`` stages get ``gpus_per_task``)."""
    slurm = settings.slurm
    if one_task:
        return {
            "cpus_per_task": slurm.one_task_cpus,
            "mem_per_cpu_gb": -(-slurm.one_task_mem_gb // slurm.one_task_cpus),
            "gpus_per_task": 0,
            "workers": -1,
            "tasks_per_job": 1,
        }
    return {
        "cpus_per_task": slurm.cpus_per_task,
        "mem_per_cpu_gb": slurm.mem_per_cpu_gb,
        "gpus_per_task": slurm.gpus_per_task if gpus else 0,
        "workers": settings.workers or -1,
        "tasks_per_job": slurm.tasks_per_job,
    }


def task_needs(executor: RayPipelineExecutor) -> dict[str, float]:
    """The Ray resources one task of ``executor`` reserves, as datatrove asks for them."""
    return {
        "CPU": executor.cpus_per_task,
        "GPU": executor.gpus_per_task,
        "memory": int(executor.mem_per_cpu_gb * executor.cpus_per_task * GIB),
    }


def describe_ray_stage(name: str, executor: RayPipelineExecutor, after: str, address: str) -> str:
    """A dry run's lines for one Ray stage: tasks, concurrency, resources per task, order."""
    needs = task_needs(executor)
    return (
        f"stage {name}: {executor.world_size} tasks on Ray at {address}, {executor.workers} at "
        f"once, {executor.tasks_per_job} per Ray task ({executor.cpus_per_task} CPUs, "
        f"{needs['memory'] / GIB:g} GiB, {executor.gpus_per_task} GPUs per task), runs {after}\n"
        f"  logs in {executor.logging_dir.resolve_paths('')}"
    )


def check_placeable(nodes: list[dict], stage_names: list[str], executors: list) -> None:
    """Refuse in one line a stage whose task asks for more CPUs, GPUs or memory than any alive
    node of the cluster has (``nodes`` as ``ray.nodes()`` gives them)."""
    alive = [node.get("Resources", {}) for node in nodes if node.get("Alive")]
    for name, executor in zip(stage_names, executors, strict=True):
        for resource, amount in task_needs(executor).items():
            largest = max((node.get(resource, 0) for node in alive), default=0)
            if amount > largest:
                unit = (lambda v: f"{v / GIB:.1f} GiB") if resource == "memory" else str
                raise SystemExit(
                    f"error: stage '{name}' asks Ray for {unit(amount)} {resource} per task; the "
                    f"largest node of the cluster has {unit(largest)}"
                )


def check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Refuse in one line a ``[ray://]host:port`` address where nothing accepts connections (Ray
    itself would retry for minutes); ``auto`` and ``local`` are left to Ray."""
    if address in ("auto", "local"):
        return
    host, port = address.removeprefix("ray://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise SystemExit(f"error: no Ray cluster answers at {address} ({error})") from None


def run_on_ray(settings: ExecutorSettings, executors: list, stage_names: list[str]) -> None:
    """Connect to ``settings.ray_address``, check every stage can be placed, run the chain
    (each stage waits for the one before) and disconnect.

    Without ``settings.debug`` the console shows datatrove's INFO records and up, and not the
    tasks' own output: a failed task's traceback (a DEBUG record here) stays in its log file,
    and :class:`RayStageFailed` says which tasks failed in one line."""
    try:
        import ray
    except ImportError:
        raise SystemExit("error: executor 'ray' needs Ray: pip install 'ai-filters[ray]'") from None
    check_reachable(settings.ray_address)
    try:
        ray.init(address=settings.ray_address, log_to_driver=settings.debug)
    except ConnectionError as error:
        raise SystemExit(
            f"error: cannot reach the Ray cluster at {settings.ray_address}: {error}"
        ) from None
    if not settings.debug:
        logger.remove()
        logger.add(sys.stderr, level="INFO")
    try:
        check_placeable(ray.nodes(), stage_names, executors)
        executors[-1].run()
    finally:
        ray.shutdown()
        if not settings.debug:
            setup_default_logger()

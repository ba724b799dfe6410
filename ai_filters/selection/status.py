"""Where is my run? The state of every stage of a pipeline, read from datatrove's own records.

datatrove keeps, per stage, under ``OUT/logs/<stage>/``: ``executor.json`` (the stage's
settings, its task count among them), ``completions/<rank>`` (an empty file per finished
task), ``logs/task_<rank>.log`` (each task's log, an error record included when it fails),
``stats/<rank>.json`` (each finished task's counters) and, on Slurm, ``slurm_logs/``. This
module reads them and nothing else, locally or on object storage, while the run goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from datatrove.io import DataFolder, get_datafolder
from datatrove.utils.stats import MetricStats, PipelineStats

from ai_filters.markdown import markdown_table
from ai_filters.selection.folder import READ_STAT

ERROR_MARK = "| ERROR "  # how loguru writes an error record in a task's log
READ_PREFIX = READ_STAT.split("{")[0]  # documents read, per domain (DomainsReader)
READER_DOCUMENTS = "documents"  # documents read (datatrove's own readers)
TOKEN_STATS = ("tokens_scored", "tokens")  # scorer blocks; datatrove's tokenizer


@dataclass
class StageStatus:
    """One stage: its tasks by state, the logs of the failed ones, the counters so far."""

    name: str
    tasks: int
    done: int
    running: int
    failed: dict[int, str] = field(default_factory=dict)  # rank -> log path
    documents: int = 0  # documents read by the finished tasks
    tokens: int = 0  # tokens scored or tokenized by the finished tasks

    @property
    def pending(self) -> int:
        return self.tasks - self.done - self.running - len(self.failed)

    @property
    def state(self) -> str:
        if self.failed:
            return "failed"
        if self.done == self.tasks:
            return "done"
        return "running" if self.running or self.done else "waiting"


def stage_status(logs: DataFolder, stage: str) -> StageStatus | None:
    """The status of the stage logged under ``logs/<stage>``; ``None`` before it started."""
    if not logs.exists(f"{stage}/executor.json"):
        return None
    with logs.open(f"{stage}/executor.json", "rt") as file:
        tasks = int(json.load(file).get("world_size") or 1)
    done = {int(path.rsplit("/", 1)[-1]) for path in _files(logs, f"{stage}/completions")}
    status = StageStatus(stage, tasks, len(done), 0)
    for path in _files(logs, f"{stage}/logs", "task_*.log"):
        rank = int(path.rsplit("_", 1)[-1].split(".")[0])
        if rank in done:
            continue
        with logs.open(path, "rt") as file:
            failed = ERROR_MARK in file.read()
        if failed:
            status.failed[rank] = logs.resolve_paths(path)
        else:
            status.running += 1
    _add_counters(status, logs, stage)
    return status


def _files(logs: DataFolder, subdirectory: str, glob: str | None = None) -> list[str]:
    if not logs.isdir(subdirectory):
        return []
    return sorted(logs.list_files(subdirectory=subdirectory, glob_pattern=glob))


def _add_counters(status: StageStatus, logs: DataFolder, stage: str) -> None:
    merged = PipelineStats()
    for path in _files(logs, f"{stage}/stats", "*.json"):
        with logs.open(path, "rt") as file:
            merged += PipelineStats.from_json(json.load(file))
    for step in merged.stats:
        for key, metric in step.stats.items():
            if not isinstance(metric, MetricStats):  # one file's stats stay as loaded
                metric = MetricStats.from_dict(metric)
            if key.startswith(READ_PREFIX) or key == READER_DOCUMENTS:
                status.documents += int(metric.total)
            elif key in TOKEN_STATS:
                status.tokens += int(metric.total)


def run_status(out: str) -> list[StageStatus]:
    """Every stage logged under ``out/logs``, in the order they started."""
    logs = get_datafolder(f"{out.rstrip('/')}/logs")
    if not logs.isdir(""):
        raise FileNotFoundError(f"{out} has no logs/ folder: no pipeline has run there yet")
    stages = sorted(
        {path.split("/", 1)[0] for path in logs.list_files(glob_pattern="*/executor.json")},
        key=lambda stage: logs.modified(f"{stage}/executor.json"),
    )
    return [status for stage in stages if (status := stage_status(logs, stage)) is not None]


def format_status(stages: list[StageStatus]) -> str:
    """A table of the stages, then one line per failed task naming its log."""
    header = ["stage", "state", "tasks done", "running", "failed", "waiting"]
    header += ["documents", "tokens"]
    rows = [
        [s.name, s.state, f"{s.done}/{s.tasks}", str(s.running), str(len(s.failed))]
        + [str(s.pending), f"{s.documents:,}", f"{s.tokens:,}"]
        for s in stages
    ]
    lines = [markdown_table(header, rows, align="ll" + "r" * 6)]
    for stage in stages:
        for rank, log in sorted(stage.failed.items()):
            lines.append(f"{stage.name} task {rank} failed: see {log}")
    return "\n".join(lines)

"""``ai-filters status``: stage states, failed tasks with their logs, counters so far."""

from __future__ import annotations

import json

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers import JsonlReader

from ai_filters.cli import main
from ai_filters.selection.status import format_status, run_status


class FailsInTask(PipelineStep):
    """Passes documents on, except that task ``rank`` raises."""

    name = "fails in one task"

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.failing_rank = rank

    def run(self, data, rank: int = 0, world_size: int = 1):
        if rank == self.failing_rank:
            raise RuntimeError("disk full")
        yield from data


def run_stage(out, stage: str, failing_rank: int | None, inputs) -> None:
    steps = [JsonlReader(str(inputs))]
    if failing_rank is not None:
        steps.append(FailsInTask(failing_rank))
    executor = LocalPipelineExecutor(
        steps, tasks=2, workers=1, logging_dir=str(out / "logs" / stage)
    )
    try:
        executor.run()
    except Exception:  # the failed task is what status must report
        pass


def test_status_reports_done_failed_and_counters(tmp_path, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for shard in range(2):
        lines = [json.dumps({"id": f"{shard}-{i}", "text": "a document"}) for i in range(3)]
        (inputs / f"{shard}.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    run_stage(out, "first", None, inputs)
    run_stage(out, "second", 1, inputs)
    first, second = run_status(str(out))
    assert (first.name, first.state, first.done, first.tasks, first.documents) == (
        "first",
        "done",
        2,
        2,
        6,
    )
    assert (second.state, second.done, second.documents) == ("failed", 1, 3)
    assert list(second.failed) == [1] and second.failed[1].endswith("logs/task_00001.log")
    table = format_status([first, second])
    assert "| first | done | 2/2 |" in table
    assert "second task 1 failed: see" in table
    assert main(["status", str(out)]) == 1  # a failed task makes the command fail
    assert "second task 1 failed" in capsys.readouterr().out


def test_status_of_a_folder_without_runs_is_one_line(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    assert "no pipeline has run there yet" in capsys.readouterr().err

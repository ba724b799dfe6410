"""Fault scenario on Slurm: a scoring task killed in the middle of writing its output, requeued.

- ``slurm task killed mid-write``: the selection pipeline submitted to the Slurm cluster of
  this machine (partition ``debug``, as ``.ci/start_slurm.sh`` makes it) with one document per
  scoring batch, so that a scoring task spends a while with its output files open. As soon as
  one of its tasks holds a file of ``OUT/scored``, ``OUT/scores`` or ``OUT/skipped`` open and
  its completion marker is missing, the task's Python process (the job step's) is stopped,
  checked once more, and killed with ``SIGKILL``. Then, as a cluster user would: once Slurm
  has the array task on record as failed, ``scontrol requeue`` of it (Slurm holds a requeued
  job for two minutes; the scenario releases it at once with ``scontrol update
  StartTime=now``), and once the score array has ended, the same launch command again
  (``--wait``), which datatrove answers by submitting only what has no completion marker.

  Checked besides the outcome (the undisturbed run's selected ids, thresholds and counts,
  nothing lost or duplicated): right after the kill, no file under an output name of the folder
  is partial (every ``.jsonl.gz`` and parquet file the later stages would list reads whole,
  none is empty). The ``detail`` says what Slurm did with the killed task, its requeued copy
  and the stages that depended on it (``afterok``), what the rerun submitted, and how long
  each step took.

The killed process is found in ``/proc`` (the cluster is this one machine). A shared module of
``faults.py`` (see ``fault_outcome.py``), never run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fault_outcome import (
    SELECT_SCRIPT,
    FaultInputs,
    ScenarioResult,
    documents,
    failed,
    judged,
    last_line,
    run_script,
)

from ai_filters.documents import read_documents
from ai_filters.selection.folder import SelectionFolder, read_parquet_columns

NAME = "slurm task killed mid-write"
INJECTED = (
    "SIGKILL of a Slurm scoring task with its output files open; scontrol requeue, then the "
    "launch command again"
)
SLURM_ARGS = ("--executor", "slurm", "--partition", "debug", "--time", "00:20:00")
SLURM_ARGS += ("--mem-per-cpu-gb", "4", "--docs-per-batch", "1")
OUTPUTS = ("scored", "scores", "skipped")  # what a scoring task writes
STAGES = ("score", "thresholds", "select", "report")
WAIT_SECONDS = 300.0
CREDENTIAL_MARGIN = 3.0  # seconds after a job ended before its requeued copy may start


@dataclass(frozen=True)
class Killed:
    """The scoring task killed: its process, Slurm array task, rank and the output files it
    held open (relative to the folder)."""

    pid: int
    array_task: str  # <array job id>_<index>
    rank: int
    open_files: tuple[str, ...]
    seconds: float  # from the scenario's start (before the launch command) to the kill


def slurm_reachable() -> None:
    """``RuntimeError`` in one line when no Slurm cluster answers ``sinfo``."""
    try:
        answer = subprocess.run(["sinfo", "-h"], capture_output=True, text=True)
    except FileNotFoundError:
        raise RuntimeError("no Slurm here (no sinfo): start one with .ci/start_slurm.sh") from None
    if answer.returncode != 0:
        raise RuntimeError(
            f"no Slurm cluster reachable ({answer.stderr.strip()}): start one with "
            ".ci/start_slurm.sh"
        )


def job_records(job: str) -> list[dict[str, str]]:
    """``scontrol show job`` of ``job`` (every array task of an array), one dict a record."""
    shown = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", job], capture_output=True, text=True
    )
    return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in shown.stdout.splitlines()]


def wait_until_ended(job: str, timeout: float = WAIT_SECONDS) -> list[dict[str, str]]:
    """The records of ``job`` once none of its tasks is pending, running or completing."""
    deadline = time.monotonic() + timeout
    while True:
        records = job_records(job)
        states = {r.get("JobState") for r in records}
        if records and not states & {"PENDING", "RUNNING", "COMPLETING", "REQUEUED"}:
            return records
        if time.monotonic() > deadline:
            raise RuntimeError(f"Slurm job {job} still {sorted(states)} after {timeout:.0f} s")
        time.sleep(0.5)


def _task_processes(out: Path, job: str) -> dict[int, dict[str, str]]:
    """The Python processes of the scoring stage's job steps: pid -> their Slurm variables."""
    pickled = f"{out}/logs/score/executor.pik".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            if not Path(command[0].decode()).name.startswith("python") or pickled not in command:
                continue
            variables = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):  # gone, or not ours to read
            continue
        slurm = dict(v.decode().split("=", 1) for v in variables if v.startswith(b"SLURM_"))
        if slurm.get("SLURM_ARRAY_JOB_ID") == job:
            found[int(entry.name)] = slurm
    return found


def _open_outputs(pid: int, out: Path) -> tuple[str, ...]:
    """The files under ``out``'s scoring outputs that process ``pid`` holds open."""
    try:
        targets = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return ()
    prefixes = tuple(f"{out}/{name}/" for name in OUTPUTS)
    return tuple(sorted(t[len(str(out)) + 1 :] for t in targets if t.startswith(prefixes)))


def kill_mid_write(out: Path, job: str, started: float) -> Killed:
    """Wait until a task of the scoring array ``job`` holds an output file open before its
    completion marker exists; stop it, check again, and kill it with ``SIGKILL``."""
    completions = out / "logs" / "score" / "completions"
    ranks = json.loads((out / "logs" / "score" / "ranks_to_run.json").read_text())
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        for pid, slurm in _task_processes(out, job).items():
            index = int(slurm["SLURM_ARRAY_TASK_ID"])
            rank = ranks[index]
            if not _open_outputs(pid, out) or (completions / f"{rank:05d}").exists():
                continue
            os.kill(pid, signal.SIGSTOP)  # hold it still while it is checked once more
            held = _open_outputs(pid, out)
            if held and not (completions / f"{rank:05d}").exists():
                os.kill(pid, signal.SIGKILL)
                seconds = round(time.monotonic() - started, 1)
                return Killed(pid, f"{job}_{index}", rank, held, seconds)
            os.kill(pid, signal.SIGCONT)
        if all((completions / f"{rank:05d}").exists() for rank in ranks):
            break
        time.sleep(0.01)
    raise RuntimeError("no scoring task could be caught with its output files open")


def partial_files(out: Path) -> list[str]:
    """Files under an output name of the scoring outputs that do not read whole."""
    folder = SelectionFolder(out)
    names = folder.scored_files() + folder.skipped_files()
    names += [p for paths in folder.score_tables().values() for p in paths]
    partial = []
    for name in names:
        try:
            if name.endswith(".parquet"):
                read_parquet_columns(name, ["id"])
            else:
                for _ in read_documents(name):
                    pass
            if os.path.getsize(name) == 0:  # an empty .jsonl.gz reads as no documents
                partial.append(name)
        except Exception:  # noqa: BLE001  (truncated gzip, parquet without footer, ...)
            partial.append(name)
    return [str(Path(name).relative_to(out)) for name in partial]


def _submitted(stdout: str) -> dict[str, str]:
    """``{stage: job id}`` of the launch command's ``submitted: score=12, ...`` line."""
    line = stdout.split("submitted: ", 1)[1].splitlines()[0]
    return dict(entry.split("=") for entry in line.split(", "))


def requeue(task: str) -> int:
    """Once the killed array task is on record as failed, ``scontrol requeue`` it and release
    the hold Slurm puts on a requeued job; the hold Slurm set, in seconds.

    The hold (two minutes) lets the ended job's credential expire: released within the second
    the job ended, slurmd refuses the restart ("Job credential revoked") and the task fails
    again. It is released once :data:`CREDENTIAL_MARGIN` seconds have passed since then."""
    ended = datetime.fromisoformat(wait_until_ended(task)[0]["EndTime"])
    time.sleep(max(0.0, CREDENTIAL_MARGIN - (datetime.now() - ended).total_seconds()))
    subprocess.run(["scontrol", "requeue", task], check=True, capture_output=True)
    eligible = datetime.fromisoformat(job_records(task)[0]["EligibleTime"])
    hold = round((eligible - datetime.now()).total_seconds())
    update = ["scontrol", "update", f"jobid={task}", "StartTime=now"]
    subprocess.run(update, check=True, capture_output=True)
    return hold


def settled(job: str, seconds: float = 10.0) -> dict[str, str]:
    """The first record of ``job`` once it no longer waits on its dependency, or after
    ``seconds``. A job left pending because its dependency failed (a cluster without
    ``kill_invalid_depend``) is cancelled, as its user would, and its record says so."""
    deadline = time.monotonic() + seconds
    while (record := job_records(job)[0]).get("Reason") == "Dependency":
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if record.get("JobState") == "PENDING" and record.get("Reason") == "DependencyNeverSatisfied":
        subprocess.run(["scancel", job], check=True)
        record = record | {"Cancelled": "by the scenario"}
    return record


def killed_mid_write(work: Path, inputs: FaultInputs) -> ScenarioResult:
    """The scenario (module docstring)."""
    started = time.monotonic()
    slurm_reachable()
    out = work / "out"
    args = [*inputs.select_args, *SLURM_ARGS]
    launch = run_script(SELECT_SCRIPT, out, args)
    if launch.returncode != 0:
        return failed(NAME, INJECTED, documents(inputs.selection), last_line(launch), started)
    jobs = _submitted(launch.stdout)
    killed = kill_mid_write(out, jobs["score"], started)
    visible = partial_files(out)
    hold = requeue(killed.array_task)
    score = wait_until_ended(jobs["score"])
    requeued = next(r for r in score if r.get("ArrayTaskId") == killed.array_task.split("_")[1])
    dependents = {stage: settled(jobs[stage]) for stage in STAGES[1:]}
    requeue_done = round(time.monotonic() - started, 1)
    rerun = run_script(SELECT_SCRIPT, out, [*args, "--wait"])
    if rerun.returncode != 0:
        return failed(NAME, INJECTED, documents(inputs.selection), last_line(rerun), started)
    resubmitted = _submitted(rerun.stdout)
    detail = (
        f"killed rank {killed.rank} ({killed.array_task}, pid {killed.pid}) {killed.seconds} s "
        f"into the scenario with {len(killed.open_files)} output files open "
        f"({', '.join(killed.open_files)}); partial files under output names: {len(visible)}; "
        f"scontrol requeue: held {hold} s by Slurm (released), then "
        f"{requeued.get('JobState')} with Restarts={requeued.get('Restarts')}; dependent jobs: "
        + ", ".join(
            f"{s} {r.get('JobState')} ({r.get('Reason')}, {r.get('Dependency')}"
            + (", then cancelled by the scenario)" if "Cancelled" in r else ")")
            for s, r in dependents.items()
        )
        + f"; score array done {requeue_done} s in; the rerun submitted "
        + ", ".join(f"{s}={j}" for s, j in resubmitted.items())
    )
    result = judged(NAME, INJECTED, inputs.selection, out, detail, started)
    if visible:
        result.survived = False
        result.detail = f"partial files under output names after the kill: {visible}; " + (
            result.detail
        )
    return result


SCENARIOS = {NAME: killed_mid_write}

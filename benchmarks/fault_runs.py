"""Fault scenarios of runs that meet in one output folder: two runs started on the same
``--out`` at once, a killed run's lock, and a resume whose inputs changed.

- *two runs on one --out*: two selection pipelines started together into one folder: exactly
  one is refused in one line (``OUT/run.lock`` is held), the other ends with the undisturbed
  run's outcome.
- *a killed run's lock*: a run killed with SIGKILL in the middle of scoring leaves its lock
  behind; the rerun of the same command takes it over (one line on stderr) and ends with the
  undisturbed outcome.
- *inputs changed before a resume*: after a run, a resume with another heads file, another
  model or another ``--fraction`` is refused in one line naming the option (``OUT/run.json``),
  and leaves every file of the folder as it was; the original command's resume still ends
  with the undisturbed outcome.

A module of scenarios (``SCENARIOS``) for ``faults.py`` and ``tests/faults/test_runs.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

from fault_outcome import (
    SELECT_SCRIPT,
    FaultInputs,
    ScenarioResult,
    judged,
    last_line,
    run_script,
    script_command,
)

REFUSED_HELD = "is in use by another run"
REFUSED_CHANGED = "was started with other inputs"
TAKEN_OVER = "taking over "


def _finished(process: subprocess.Popen, timeout: float = 900) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=timeout)
    lines = [line for line in stderr.splitlines() if line.strip()]
    return process.returncode, lines[-1] if lines else ""


def two_runs_on_one_out(work: Path, inputs: FaultInputs) -> ScenarioResult:
    """Two selection pipelines started at the same moment into ``work/out``."""
    started = time.monotonic()
    out = work / "out"
    command = script_command(SELECT_SCRIPT, out, inputs.select_args)
    runs = [
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    ends = [_finished(process) for process in runs]
    refused = [line for code, line in ends if code != 0 and REFUSED_HELD in line]
    completed = [code for code, _ in ends if code == 0]
    detail = f"refused: {refused[0]}" if refused else f"exit codes and last lines: {ends}"
    result = judged(
        "two runs on one --out",
        "two selection pipelines started at once on the same --out",
        inputs.selection,
        out,
        detail,
        started,
    )
    ok = len(refused) == 1 and len(completed) == 1 and not (out / "run.lock").exists()
    return replace(result, survived=result.survived and ok)


def killed_run_lock(work: Path, inputs: FaultInputs) -> ScenarioResult:
    """A run killed with SIGKILL after its first scoring task completed, then rerun."""
    started = time.monotonic()
    out = work / "out"
    process = subprocess.Popen(
        script_command(SELECT_SCRIPT, out, inputs.select_args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    first_task_done = out / "logs" / "score" / "completions" / "00000"
    deadline = time.monotonic() + 900
    while not first_task_done.exists() and process.poll() is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    killed = process.poll() is None
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    stale = (out / "run.lock").exists()
    rerun = run_script(SELECT_SCRIPT, out, inputs.select_args)
    takeover = [line for line in rerun.stderr.splitlines() if line.startswith(TAKEN_OVER)]
    detail = f"killed mid-scoring: {killed}; lock left: {stale}; rerun exit {rerun.returncode}" + (
        f"; {takeover[0]}" if takeover else f"; no takeover line ({last_line(rerun)})"
    )
    result = judged(
        "a killed run's lock",
        "SIGKILL in the middle of scoring leaves OUT/run.lock; the same command rerun",
        inputs.selection,
        out,
        detail,
        started,
    )
    ok = killed and stale and rerun.returncode == 0 and len(takeover) == 1
    return replace(result, survived=result.survived and ok)


def option_value(args: tuple[str, ...], name: str) -> str | None:
    """The value of option ``name`` in ``args`` (``None`` when absent)."""
    return args[args.index(name) + 1] if name in args else None


def with_option(args: tuple[str, ...], name: str, value: str) -> list[str]:
    """``args`` with option ``name`` set to ``value`` (replaced, or added at the end)."""
    if name not in args:
        return [*args, name, value]
    index = args.index(name)
    return [*args[: index + 1], value, *args[index + 2 :]]


def other_heads(heads: Path, target: Path) -> Path:
    """A copy of a heads file that selects other heads (the first one of the model's layers
    swapped for the last)."""
    data = json.loads(heads.read_text())
    first = data["selected"][0]
    data["selected"] = [[data["num_layers"] - 1 - first[0], first[1]], *data["selected"][1:]]
    target.write_text(json.dumps(data))
    return target


def other_model(model: str, target: Path) -> Path:
    """Another model: the files of ``model``'s folder (linked) with another ``rms_norm_eps``."""
    from ai_filters.engine.models import resolve_model_path

    source = Path(resolve_model_path(model))
    target.mkdir()
    for path in source.iterdir():
        if path.name != "config.json":
            (target / path.name).symlink_to(path.resolve())
    config = json.loads((source / "config.json").read_text())
    config["rms_norm_eps"] = 2 * config.get("rms_norm_eps", 1e-6)
    (target / "config.json").write_text(json.dumps(config))
    return target


def files_of(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: its size and modification time."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def changed_inputs(work: Path, inputs: FaultInputs) -> ScenarioResult:
    """A run, then resumes with another heads file, model and ``--fraction``, then the
    original command again."""
    started = time.monotonic()
    out = work / "out"
    args = inputs.select_args
    first = run_script(SELECT_SCRIPT, out, args)
    heads = Path(option_value(args, "--heads") or out / "heads.json")
    model = option_value(args, "--model") or json.loads(heads.read_text())["model"]
    changes = {
        "--heads": with_option(args, "--heads", str(other_heads(heads, work / "other.json"))),
        "--model": with_option(args, "--model", str(other_model(model, work / "other_model"))),
        "--fraction": with_option(args, "--fraction", "0.35"),
    }
    before = files_of(out)
    refusals = {}
    for option, changed in changes.items():
        resume = run_script(SELECT_SCRIPT, out, changed)
        line = last_line(resume)
        named = resume.returncode != 0 and REFUSED_CHANGED in line and f"{option} (" in line
        refusals[option] = (named, line)
    unchanged = files_of(out) == before
    resume = run_script(SELECT_SCRIPT, out, args)
    wrong = [option for option, (named, _) in refusals.items() if not named]
    detail = (
        f"first run exit {first.returncode}; refused: "
        + " | ".join(line for _, line in refusals.values())
        + f"; folder unchanged: {unchanged}; original resume exit {resume.returncode}"
        + (f"; not refused by name: {', '.join(wrong)}" if wrong else "")
    )
    result = judged(
        "inputs changed before a resume",
        "a resume with another heads file, another model, another --fraction",
        inputs.selection,
        out,
        detail,
        started,
    )
    ok = first.returncode == 0 and not wrong and unchanged and resume.returncode == 0
    return replace(result, survived=result.survived and ok)


SCENARIOS = {
    "two runs on one --out": two_runs_on_one_out,
    "a killed run's lock": killed_run_lock,
    "inputs changed before a resume": changed_inputs,
}

"""Fault scenarios: the output disk fills up mid-run, then space is freed and the run resumed.

Each scenario writes ``--out`` onto a tmpfs of its own mounted under its work folder (root is
needed: ``mount -t tmpfs``; a refused mount fails the scenario with that reason, it is never
skipped), sized from the undisturbed run's files so that the disk runs out halfway through one
stage: tmpfs charges every file whole pages, so the space the stages before it took plus half
of the stage's own pages is free when the stage starts. The run must stop with a one-line error
naming the file it could not write (``no space left on device writing PATH``), exit non-zero
and print no traceback; then space is freed (the tmpfs remounted bigger, or a filler file the
scenario placed deleted) and the same command must run to the undisturbed outcome, the failed
task's partial files not taken as complete. The scenarios also check that no spill folder of
the Hub shard writer (``ai-filters-shard-*`` in the temporary folder, which the runs get a
folder of their own for) is left behind.

Scenarios: ``full disk: scoring`` and ``full disk: selecting`` (the selection pipeline; freed by
remounting), ``full disk: tokenizing`` (the tokenization after a complete selection; freed by
deleting a filler file).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fault_outcome import (
    SELECT_SCRIPT,
    TOKENIZE_SCRIPT,
    FaultInputs,
    Scenario,
    ScenarioResult,
    judged,
    last_line,
    run_script,
)

PAGE = os.sysconf("SC_PAGE_SIZE")  # tmpfs charges each file whole pages
ROOMY = 256 * 2**20  # the size a full disk is remounted to: far more than a run needs
# The order in which the pipelines fill the output folder; "before" is what the selection
# writes before its first stage (the demo corpus, heads.json, scorer.json).
STAGES = ("before", "score", "thresholds", "select", "report", "tokenize_corpus")
STAGE_OUTPUTS = {
    "scored": "score",
    "scores": "score",
    "skipped": "score",
    "thresholds.json": "thresholds",
    "selected": "select",
    "rejected": "select",
    "report.md": "report",
    "report.json": "report",
}


def stage_of(relative: Path) -> str:
    """The stage that writes the file at ``relative`` (a path inside the output folder)."""
    parts = relative.parts
    if parts[0] == "logs":
        return parts[1]
    if parts[0] == "tokenized":
        return f"tokenize_{parts[1]}"
    return STAGE_OUTPUTS.get(parts[0], "before")


def pages_by_stage(root: Path) -> dict[str, int]:
    """The pages each stage's files take on a tmpfs, from a finished run's folder ``root``."""
    pages: dict[str, int] = {}
    for path in root.rglob("*"):
        if path.is_file():
            stage = stage_of(path.relative_to(root))
            pages[stage] = pages.get(stage, 0) + -(-path.stat().st_size // PAGE)
    return pages


def room_until_halfway(root: Path, stage: str) -> int:
    """Bytes of a disk that runs out halfway through ``stage`` (``STAGES``) when the run
    starts on it empty: what the stages before it wrote plus half of what it writes."""
    pages = pages_by_stage(root)
    before = sum(pages.get(earlier, 0) for earlier in STAGES[: STAGES.index(stage)])
    return (before + max(1, pages.get(stage, 0) // 2)) * PAGE


@contextmanager
def small_disk(folder: Path, size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes mounted on ``folder`` for the block, unmounted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], folder)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True, capture_output=True)


def grow(folder: Path, size: int) -> str:
    """Remount the tmpfs on ``folder`` with ``size`` bytes (its files stay); says so."""
    _mount(["-o", f"remount,size={size}", str(folder)], folder)
    return f"remounted with {size // 2**20} MiB"


def _mount(arguments: list[str], folder: Path) -> None:
    result = subprocess.run(["mount", *arguments], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"the disk-full scenarios need to mount a small tmpfs on {folder} (as root): "
            f"'mount {' '.join(arguments)}' failed: {result.stderr.strip() or result.returncode}"
        )


def fill_leaving(folder: Path, room: int) -> Callable[[], str]:
    """Place a filler file in ``folder`` that leaves ``room`` bytes of its filesystem free;
    returns what deletes it (and says so)."""
    stats = os.statvfs(folder)
    filler = folder / "filler"
    with filler.open("wb") as file:
        os.posix_fallocate(file.fileno(), 0, max(PAGE, stats.f_bavail * stats.f_frsize - room))

    def delete() -> str:
        filler.unlink()
        return "filler deleted"

    return delete


def one_line_failure(result: subprocess.CompletedProcess, prog: str, disk: Path) -> str:
    """What is wrong with a run that should have stopped on the full ``disk`` with one line
    (``""`` when nothing is)."""
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"{prog}: error: ")]
    if result.returncode == 0:
        return "the disk did not fill: the run completed"
    if len(errors) != 1 or errors[0] != last_line(result):
        return f"not one error line at the end of stderr: {last_line(result)!r}"
    if "Traceback" in result.stderr or "Exception ignored" in result.stderr:
        return "a traceback on the console"
    if f"no space left on device writing {disk}/" not in errors[0]:
        return f"the error does not name the file on the full disk: {errors[0]!r}"
    return ""


def spills_left(temporary: Path) -> list[str]:
    """Spill folders of the Hub shard writer left in ``temporary``."""
    return sorted(path.name for path in temporary.glob("ai-filters-shard-*"))


def named_file(line: str) -> Path | None:
    """The file a full-disk error line names."""
    match = re.search(r"no space left on device writing (\S+)", line)
    return Path(match.group(1)) if match else None


@dataclass
class Attempt:
    """A command run on a disk that fills, then again once space is freed."""

    script: Path
    out: Path
    args: tuple[str, ...]
    environment: dict[str, str]
    full: Path  # the mount point that fills
    steps: list[str] = field(default_factory=list)  # what happened, in order
    problems: list[str] = field(default_factory=list)  # each check that failed

    def fail_then_resume(self, free: Callable[[], str]) -> None:
        """Run until the disk fills (one line naming a file on ``full`` expected), ``free()``
        space (it says how), run again to the end. A file the error named must have been
        written again by the rerun, not kept from the failed run."""
        failed = run_script(self.script, self.out, self.args, self.environment)
        self.steps.append(last_line(failed))
        self._check(one_line_failure(failed, self.script.name, self.full))
        self.steps.append(free())
        resumed = time.time()
        rerun = run_script(self.script, self.out, self.args, self.environment)
        self.steps.append(f"rerun exit {rerun.returncode}")
        self._check(f"the rerun failed: {last_line(rerun)}" if rerun.returncode else "")
        partial = named_file(last_line(failed))
        if partial is not None and partial.exists() and partial.stat().st_mtime < resumed:
            self._check(f"{partial}, written when the disk filled, was kept by the rerun")
        left = spills_left(Path(self.environment["TMPDIR"]))
        self._check(f"spill folders left: {left}" if left else "")

    def _check(self, problem: str) -> None:
        if problem:
            self.problems.append(problem)

    def verdict(self, result: ScenarioResult) -> ScenarioResult:
        """``result`` with the attempt's own checks: survived only if none failed."""
        parts = (*self.steps, *self.problems, result.detail)
        result.detail = "; ".join(part for part in parts if part)
        result.survived = result.survived and not self.problems
        return result


def _environment(temporary: Path) -> dict[str, str]:
    temporary.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "TMPDIR": str(temporary)}


def selection_fills_disk(stage: str, name: str) -> Scenario:
    """The scenario ``name``: the selection's disk runs out halfway through ``stage``;
    remounted bigger, the same command finishes."""

    def scenario(work: Path, inputs: FaultInputs) -> ScenarioResult:
        started = time.monotonic()
        room = room_until_halfway(inputs.root, stage)
        with small_disk(work / "disk", room) as disk:
            environment = _environment(work / "tmp")
            attempt = Attempt(SELECT_SCRIPT, disk / "out", inputs.select_args, environment, disk)
            attempt.fail_then_resume(lambda: grow(disk, ROOMY))
            injected = f"the output disk ({room // 1024} KiB tmpfs) fills during the {stage} stage"
            result = judged(name, injected, inputs.selection, attempt.out, "", started)
        return attempt.verdict(result)

    return scenario


def tokenization_fills_disk(work: Path, inputs: FaultInputs) -> ScenarioResult:
    """The scenario: after a complete selection, the disk runs out halfway through the
    tokenization of the corpus; with the filler deleted, the same command finishes."""
    started = time.monotonic()
    room = max(1, pages_by_stage(inputs.root).get("tokenize_corpus", 0) // 2) * PAGE
    with small_disk(work / "disk", ROOMY) as disk:
        environment = _environment(work / "tmp")
        selection = run_script(SELECT_SCRIPT, disk / "out", inputs.select_args, environment)
        if selection.returncode != 0:
            raise RuntimeError(
                f"the selection before the tokenization failed: {last_line(selection)}"
            )
        attempt = Attempt(TOKENIZE_SCRIPT, disk / "out", inputs.tokenize_args, environment, disk)
        attempt.fail_then_resume(fill_leaving(disk, room))
        injected = f"the output disk fills during the tokenization ({room // 1024} KiB free)"
        result = judged(
            "full disk: tokenizing", injected, inputs.tokenized, attempt.out, "", started
        )
    return attempt.verdict(result)


def temporary_folder_fills(work: Path, inputs: FaultInputs) -> ScenarioResult:
    """The scenario: the temporary folder (``TMPDIR``, where the Hub shard writer spills its
    batches) has two pages free; remounted bigger, the same command finishes."""
    started = time.monotonic()
    with small_disk(work / "tmp", 2 * PAGE) as temporary:
        attempt = Attempt(
            SELECT_SCRIPT, work / "out", inputs.select_args, _environment(temporary), temporary
        )
        attempt.fail_then_resume(lambda: grow(temporary, ROOMY))
        injected = f"the temporary folder ({2 * PAGE // 1024} KiB tmpfs) fills"
        result = judged(
            "full temporary folder", injected, inputs.selection, attempt.out, "", started
        )
    return attempt.verdict(result)


SCENARIOS: dict[str, Scenario] = {
    "full disk: scoring": selection_fills_disk("score", "full disk: scoring"),
    "full disk: selecting": selection_fills_disk("select", "full disk: selecting"),
    "full disk: tokenizing": tokenization_fills_disk,
    "full temporary folder": temporary_folder_fills,
}

"""What a fault scenario compares: the outcome of a selection run, and one scenario's result.

Every scenario of ``benchmarks/faults.py`` runs the selection pipeline (and, where it says so,
the tokenization and ``hub-folder``) under one fault, then reads the run's folder with
:func:`read_outcome` and compares it with an undisturbed run of the same input
(:func:`compare_outcomes`). A shared module: imported by ``faults.py``, the scenario modules
(``fault_*.py``) and the tests in ``tests/faults/``, never run.

The outcome holds every document id each output holds, as lists, so that an id written twice
(by a killed task and by its retry, say) counts as a duplicate, and a document in the
undisturbed run that the faulted run lacks counts as lost.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ai_filters.documents import read_documents
from ai_filters.nanotron.data import read_tokenized_folder
from ai_filters.selection.folder import SelectionFolder, read_parquet_columns

ROOT = Path(__file__).resolve().parents[1]
SELECT_SCRIPT = ROOT / "pipelines" / "smollm_select.py"
TOKENIZE_SCRIPT = ROOT / "pipelines" / "tokenize_for_nanotron.py"
OUTPUTS = ("scored", "skipped", "selected", "rejected")
TOKENIZED = ("corpus", "selected")


@dataclass
class Outcome:
    """What one selection folder holds: the ids of every output (one entry per copy), the
    thresholds and report counts, and the documents and tokens of each tokenized folder."""

    ids: dict[str, list[str]]  # output name (OUTPUTS) -> every id it holds, one per copy
    thresholds: dict[str, dict]  # domain -> thresholds.json entry
    counts: dict[str, dict]  # domain -> report.json counts
    tokenized: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> docs, tokens


@dataclass
class ScenarioResult:
    """One scenario of the fault suite, as ``faults.py`` writes it.

    ``survived``: the run (or its resume, after a one-line error) ends with the undisturbed
    run's selected ids, thresholds and counts, and loses and duplicates nothing.
    """

    name: str
    injected: str  # the fault, in words
    survived: bool
    documents_lost: int
    duplicated_ids: int
    detail: str = ""  # what happened: the one-line error, the retries seen, the resume
    seconds: float = 0.0

    def as_json(self) -> dict:
        return asdict(self)


def read_outcome(root: str | Path) -> Outcome:
    """The outcome of the selection folder ``root`` (a local path or a URL); a missing output
    reads as empty, a missing thresholds.json or report.json as ``{}``."""
    folder = SelectionFolder(root)
    files = {
        "scored": folder.scored_files(),
        "skipped": folder.skipped_files(),
        "selected": [p for paths in folder.selected_shards().values() for p in paths],
        "rejected": [p for paths in folder.rejected_shards().values() for p in paths],
    }
    ids = {name: [i for path in paths for i in _ids(path)] for name, paths in files.items()}
    thresholds = (
        {d: vars(t) for d, t in folder.read_thresholds().items()}
        if folder.exists("thresholds.json")
        else {}
    )
    counts = folder.read_report().get("domains", {}) if folder.exists("report.json") else {}
    return Outcome(ids, thresholds, counts, _tokenized(folder))


def _ids(path: str) -> list[str]:
    if path.endswith(".parquet"):
        return [str(i) for i in read_parquet_columns(path, ["id"])["id"].to_pylist()]
    return [str(d["id"]) for d in read_documents(path)]


def _tokenized(folder: SelectionFolder) -> dict[str, dict[str, int]]:
    """Documents (entries of the ``.ds.index`` files: one 8-byte end offset per document) and
    tokens (as nanotron's reader counts them) of each tokenized folder."""
    counts = {}
    for name in TOKENIZED:
        relative = f"tokenized/{name}"
        if not folder.data.isdir(relative):
            continue
        indexes = folder.data.list_files(relative, glob_pattern="*.ds.index")
        documents = sum(folder.data.size(index) // 8 for index in indexes)
        tokens = read_tokenized_folder(folder.path(relative), scan_tokens=None).tokens
        counts[name] = {"documents": documents, "tokens": tokens}
    return counts


def duplicated_ids(outcome: Outcome) -> int:
    """Extra copies of an id within one output, and ids both selected and rejected."""
    extra = sum(n - 1 for ids in outcome.ids.values() for n in Counter(ids).values() if n > 1)
    both = set(outcome.ids["selected"]) & set(outcome.ids["rejected"])
    return extra + len(both)


def compare_outcomes(baseline: Outcome, run: Outcome) -> tuple[bool, int, int, str]:
    """``(same, documents_lost, duplicated_ids, differences)`` of ``run`` against ``baseline``.

    Lost: ids the baseline scored or skipped that the run neither scored nor skipped, plus
    selected or rejected ids of the baseline the run lacks there, plus tokenized documents
    short of the baseline's. Duplicated: :func:`duplicated_ids`, plus tokenized documents over
    the baseline's. ``same``: every output holds the baseline's ids, and the thresholds, the
    report counts and the tokenized folders are the baseline's.
    """
    read = set(run.ids["scored"]) | set(run.ids["skipped"])
    lost = len((set(baseline.ids["scored"]) | set(baseline.ids["skipped"])) - read)
    for name in ("selected", "rejected"):
        lost += len(set(baseline.ids[name]) - set(run.ids[name]))
    duplicated = duplicated_ids(run)
    for name, expected in baseline.tokenized.items():
        documents = run.tokenized.get(name, {}).get("documents", 0)
        lost += max(0, expected["documents"] - documents)
        duplicated += max(0, documents - expected["documents"])
    differences = [
        f"{name} ids differ"
        for name in OUTPUTS
        if sorted(run.ids[name]) != sorted(baseline.ids[name])
    ]
    for name, mine, theirs in (
        ("thresholds", run.thresholds, baseline.thresholds),
        ("report counts", run.counts, baseline.counts),
        ("tokenized folders", run.tokenized, baseline.tokenized),
    ):
        if mine != theirs:
            differences.append(f"{name} differ")
    return not differences, lost, duplicated, "; ".join(differences)


def judged(
    name: str, injected: str, baseline: Outcome, run_root: str | Path, detail: str, started: float
) -> ScenarioResult:
    """The result of a scenario whose run (or resume) ended in ``run_root``."""
    same, lost, duplicated, differences = compare_outcomes(baseline, read_outcome(run_root))
    detail = "; ".join(part for part in (detail, differences) if part)
    return ScenarioResult(
        name,
        injected,
        survived=same and lost == 0 and duplicated == 0,
        documents_lost=lost,
        duplicated_ids=duplicated,
        detail=detail,
        seconds=round(time.monotonic() - started, 1),
    )


def documents(outcome: Outcome) -> int:
    """The documents a run read: those it scored and those it skipped."""
    return len(outcome.ids["scored"]) + len(outcome.ids["skipped"])


def failed(name: str, injected: str, expected: int, error: str, started: float) -> ScenarioResult:
    """A scenario whose run should have completed and did not (``error``, one line): each of
    the ``expected`` documents it should have delivered counts as lost."""
    return ScenarioResult(
        name,
        injected,
        survived=False,
        documents_lost=expected,
        duplicated_ids=0,
        detail=f"the run failed: {error}",
        seconds=round(time.monotonic() - started, 1),
    )


def script_command(script: Path, out: str | Path, args: Sequence[str]) -> list[str]:
    """The command line of a pipeline script writing to ``out``."""
    return [sys.executable, str(script), "--out", str(out), *args]


def run_script(
    script: Path,
    out: str | Path,
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess:
    """Run a pipeline script to its end (any exit code: the caller judges it)."""
    return subprocess.run(
        script_command(script, out, args),
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
        timeout=timeout,
    )


def last_line(result: subprocess.CompletedProcess) -> str:
    """The last non-empty line of a run's stderr (its one-line error when it failed)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@dataclass(frozen=True)
class FaultInputs:
    """What every scenario gets: the arguments of a small run and its undisturbed outcome.

    ``select_args`` and ``tokenize_args`` are the pipeline scripts' arguments but ``--out``
    (the demo corpus or a domains file, a heads file and model; the tokenizer). ``selection``
    is the undisturbed run's outcome after the selection pipeline, ``tokenized`` after the
    tokenization as well; ``root`` is its folder.
    """

    select_args: tuple[str, ...]
    tokenize_args: tuple[str, ...]
    root: Path
    selection: Outcome
    tokenized: Outcome


def undisturbed_run(root: Path, select_args: Sequence[str], tokenize_args: Sequence[str]):
    """Run the selection and the tokenization into ``root`` without faults; their inputs."""
    outcomes = []
    for script, args in ((SELECT_SCRIPT, select_args), (TOKENIZE_SCRIPT, tokenize_args)):
        result = run_script(script, root, args)
        if result.returncode != 0:
            raise RuntimeError(f"the undisturbed run failed: {last_line(result)}")
        outcomes.append(read_outcome(root))
    return FaultInputs(tuple(select_args), tuple(tokenize_args), root, *outcomes)


Scenario = Callable[[Path, FaultInputs], ScenarioResult]
"""A scenario: ``(an empty work folder of its own, the inputs) -> its result``. Each
``fault_*.py`` module lists its scenarios in ``SCENARIOS: dict[str, Scenario]``."""

"""Does a test fail when a core rule breaks? Break each rule in a scratch copy and see.

Each mutation is one small text substitution in one file of a scratch copy of the repository
(the tracked files and the untracked ones git does not ignore), applied alone; the tests that
guard that rule (only those test files or ids, so a run takes minutes, not the whole suite) run
against the mutated copy. A mutation is *caught* when at least one of them fails, *survived*
when they all pass. A pattern that is not found exactly once is an error, never "caught": the
mutation no longer applies to the code and must be updated.

    nice python benchmarks/mutation_check.py --json benchmarks/results/mutation_check.json
    python benchmarks/mutation_check.py --only tie-rule,loss-shift --json /tmp/m.json

Not run in CI (each mutation runs its tests in a fresh pytest process). Exit status 1 when a
mutation survived or could not be applied.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    """``old`` replaced by ``new`` in ``path``; ``tests`` are the pytest ids that guard it."""

    name: str
    rule: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


PIPELINE = "tests/pipelines/test_smollm_select.py"
MUTATIONS = (
    Mutation(
        "tie-rule",
        "documents tied with the threshold are all selected (score >= threshold)",
        "ai_filters/selection/thresholds.py",
        "selected = scores >= threshold",
        "selected = scores > threshold",
        ("tests/selection/test_thresholds.py",),
    ),
    Mutation(
        "per-domain-thresholds",
        "each document is held to its own domain's threshold",
        "ai_filters/blocks/threshold_filter.py",
        "if score >= self.thresholds[domain]:",
        "if score >= min(self.thresholds.values()):",
        ("tests/blocks/test_threshold_filter.py",),
    ),
    Mutation(
        "threshold-filter-key",
        "the filter reads the score of its scorer's score_key",
        "ai_filters/blocks/threshold_filter.py",
        "score = doc.metadata.get(self.score_key)",
        "score = doc.metadata.get(SCORE_KEY)",
        ("tests/blocks/test_threshold_filter.py",),
    ),
    Mutation(
        "skip-accounting",
        "every skipped document is counted: read = scored + skipped",
        "ai_filters/engine/score_files.py",
        "summary.skipped[domain, reason] += 1",
        "summary.skipped[domain, reason] += reason != SKIP_UNREADABLE",
        (
            "tests/engine/test_score_files.py::test_every_broken_record_is_scored_or_skipped_with_its_reason",
        ),
    ),
    Mutation(
        "completed-task-skipping",
        "a rerun skips the tasks that completed",
        "ai_filters/executors/chain.py",
        '"randomize_start_duration": 0 if stage.one_task else slurm.randomize_start,',
        '"randomize_start_duration": 0 if stage.one_task else slurm.randomize_start,\n'
        '            "skip_completed": False,',
        (f"{PIPELINE}::test_killed_run_resumes_to_the_same_output",),
    ),
    Mutation(
        "slurm-dependency",
        "a Slurm stage starts only after the previous one succeeded (afterok)",
        "ai_filters/executors/chain.py",
        '"mail_type": "NONE",',
        '"mail_type": "NONE",\n        "run_on_dependency_fail": True,',
        (f"{PIPELINE}::test_slurm_selects_the_same_documents",),
    ),
    Mutation(
        "slurm-partition-check",
        "an unknown Slurm partition is a one-line error before anything is submitted",
        "ai_filters/executors/chain.py",
        "if slurm.partition not in partitions:",
        "if slurm.partition not in partitions + [slurm.partition]:",
        (f"{PIPELINE}::test_unknown_slurm_partition_is_a_one_line_error",),
    ),
    Mutation(
        "report-conservation",
        "the report stage fails when read = scored + skipped or scored = selected + rejected "
        "breaks",
        "ai_filters/selection/report.py",
        'return row["read_equals_scored_plus_skipped"] and row[',
        'return row["read_equals_scored_plus_skipped"] or row[',
        (f"{PIPELINE}::test_report_stage_fails_when_documents_are_not_accounted_for",),
    ),
    Mutation(
        "heldout-split",
        "the distilled model is fitted on the training documents only",
        "ai_filters/distill/folder.py",
        "model = fit(training, settings)",
        "model = fit(documents, settings)",
        ("tests/distill/",),
    ),
    Mutation(
        "uniform-vs-zero-masking",
        "uniform masking zeroes the query rows, zero masking the outputs",
        "ai_filters/engine/masking.py",
        "(plan.query_heads if mode == UNIFORM else plan.output_heads)",
        "(plan.output_heads if mode == UNIFORM else plan.query_heads)",
        ("tests/engine/test_masking.py",),
    ),
    Mutation(
        "loss-shift",
        "the loss predicts the next token",
        "ai_filters/engine/forward.py",
        "targets=input_ids[row_index, column_index + 1],",
        "targets=input_ids[row_index, column_index],",
        ("tests/engine/test_scoring.py::test_losses_match_huggingface_labels_loss",),
    ),
    Mutation(
        "packed-per-document-mask",
        "documents packed into one row do not see each other (positions restart per document)",
        "ai_filters/engine/forward.py",
        "positions[row, start : start + length] = torch.arange(length)",
        "positions[row, start : start + length] = torch.arange(start, start + length)",
        ("tests/engine/test_scoring.py::test_packed_documents_score_as_unpacked",),
    ),
    Mutation(
        "shared-prefix-start",
        "only the layers below the first masked head are shared by plain and masked rows",
        "ai_filters/engine/prefix.py",
        "return min(int(layer) for layer, _ in heads)",
        "return min(int(layer) for layer, _ in heads) + 1",
        ("tests/engine/test_scoring.py::test_layers_below_the_first_masked_head_run_once",),
    ),
    Mutation(
        "score-formula-sign",
        "AttentionInfluence = (L_ref - L_base) / L_base",
        "ai_filters/engine/scoring.py",
        "return (self.loss_ref - self.loss_base) / self.loss_base",
        "return (self.loss_base - self.loss_ref) / self.loss_base",
        ("tests/engine/test_scoring.py::test_score_metadata_fields",),
    ),
    Mutation(
        "heads-fingerprint-check",
        "a heads file made on other weights is refused (strict fingerprint)",
        "ai_filters/engine/heads_file.py",
        "if strict_fingerprint and self.model_fingerprint != loaded.fingerprint():",
        "if strict_fingerprint and self.model_fingerprint[:7] != loaded.fingerprint()[:7]:",
        ("tests/engine/test_heads.py::test_heads_file_round_trip_and_errors",),
    ),
    Mutation(
        "requeue",
        "the launch script requeues its job on Slurm's USR1",
        "ai_filters/nanotron/writer.py",
        'scontrol requeue "$SLURM_JOB_ID"',
        'scontrol show job "$SLURM_JOB_ID" > /dev/null',
        ("tests/nanotron/test_launch.py::test_usr1_requeues_the_job_on_the_cluster",),
    ),
    Mutation(
        "fields-repaired",
        "a lone surrogate in the id or metadata is flagged fields_repaired",
        "ai_filters/blocks/readers.py",
        'return {**fields, "fields_repaired": True, **text}',
        "return {**fields, **text}",
        ("tests/blocks/test_readers.py",),
    ),
    Mutation(
        "original-text",
        "`score` keeps a non-string text as original_text",
        "ai_filters/engine/score_files.py",
        'document["metadata"]["original_text"] = repr(document["text"])[:1000]',
        "pass",
        (
            "tests/engine/test_score_files.py::test_skipped_non_string_text_keeps_its_value_as_original_text",
        ),
    ),
    Mutation(
        "refused-credentials",
        "HTTP 401 and 403 are not retried and name the token variable",
        "ai_filters/hub/push.py",
        "            if status in (401, 403):\n                raise _refused(error, what,",
        "            if status == 401:\n                raise _refused(error, what,",
        ("tests/hub/test_push.py",),
    ),
    Mutation(
        "push-token-check",
        "a folder holding the access token is not pushed",
        "ai_filters/hub/push.py",
        "    if token is None:\n        return\n",
        "    if token is None or token:\n        return\n",
        ("tests/hub/test_push.py",),
    ),
)


def scratch_copy(target: Path) -> None:
    """The repository's tracked files and the untracked ones git does not ignore."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    for name in listing.stdout.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def apply(mutation: Mutation, root: Path) -> str:
    """Apply ``mutation`` in ``root``; returns the original text. ``ValueError`` unless the
    pattern occurs exactly once."""
    path = root / mutation.path
    original = path.read_text()
    found = original.count(mutation.old)
    if found != 1:
        raise ValueError(f"{mutation.path}: pattern found {found} times, not once")
    path.write_text(original.replace(mutation.old, mutation.new))
    return original


def junit_results(report: Path) -> dict[str, list[str]]:
    """Test ids of a junit XML report by outcome (failed, skipped, passed)."""
    outcomes: dict[str, list[str]] = {"failed": [], "skipped": [], "passed": []}
    if not report.is_file():
        return outcomes
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None or case.find("error") is not None:
            outcomes["failed"].append(name)
        elif case.find("skipped") is not None:
            outcomes["skipped"].append(name)
        else:
            outcomes["passed"].append(name)
    return outcomes


def run_tests(mutation: Mutation, root: Path, timeout: float) -> dict:
    """The guarding tests on the mutated copy: caught, survived or error, and which failed."""
    report = root / ".mutation-junit.xml"
    report.unlink(missing_ok=True)
    env = os.environ | {"PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += [f"--junitxml={report}", *mutation.tests]
    started = time.monotonic()
    try:
        result = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"status": "error", "detail": f"tests ran past {timeout:.0f} s", "failed": []}
    outcomes = junit_results(report)
    seconds = round(time.monotonic() - started, 1)
    if outcomes["failed"]:
        status = "caught"
    elif result.returncode == 0 and outcomes["passed"] and not outcomes["skipped"]:
        status = "survived"
    else:
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        return {"status": "error", "detail": " | ".join(tail), "failed": [], "seconds": seconds}
    return {"status": status, "failed": outcomes["failed"], "seconds": seconds}


def check(mutation: Mutation, root: Path, timeout: float) -> dict:
    """Apply one mutation, run its tests, restore the file."""
    record = {"name": mutation.name, "rule": mutation.rule, "mutation": asdict(mutation)}
    try:
        original = apply(mutation, root)
    except ValueError as error:
        return record | {"status": "error", "detail": str(error), "failed": []}
    try:
        return record | run_tests(mutation, root, timeout)
    finally:
        (root / mutation.path).write_text(original)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", required=True, type=Path, help="where to write the results")
    parser.add_argument("--only", default=None, help="comma-separated mutation names")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per mutation")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if args.only is None or m.name in args.only.split(",")]
    unknown = set(args.only.split(",") if args.only else []) - {m.name for m in MUTATIONS}
    if unknown:
        parser.error(f"unknown mutations: {', '.join(sorted(unknown))}")
    results = []
    with tempfile.TemporaryDirectory(prefix="mutation-check-") as scratch:
        root = Path(scratch)
        scratch_copy(root)
        for mutation in chosen:
            result = check(mutation, root, args.timeout)
            results.append(result)
            failed = ", ".join(result["failed"][:3]) or result.get("detail", "")
            print(f"{result['status']:8} {mutation.name}: {failed}", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"mutations": results}, indent=2) + "\n")
    return 0 if all(r["status"] == "caught" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

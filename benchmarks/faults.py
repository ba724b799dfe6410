"""The fault suite: the demo pipeline under each fault, compared with an undisturbed run.

Runs the selection pipeline and the tokenization once undisturbed (the demo corpus, a few
documents per domain, the embedded model and its retrieval heads), then every scenario of the
``fault_*.py`` modules, each in a folder of its own, and writes per scenario: the fault
injected, whether the run survived it (the same selected ids, thresholds and counts as the
undisturbed run, directly or after a one-line error and a resume), the documents lost and the
ids duplicated in scored/selected/rejected/tokenized. Exit status 0 when every scenario
survived with nothing lost or duplicated, 1 otherwise.

    python benchmarks/faults.py --json benchmarks/results/faults_cpu.json
    python benchmarks/faults.py --scenarios "fields first met late" --docs-per-domain 2

Some scenarios need the machine's help: the disk scenario mounts a small tmpfs (root), the
Slurm scenario a reachable Slurm cluster (``.ci/start_slurm.sh`` starts a one-node one), the
object-storage scenario moto's server (``pip install ai-filters[test]``). A scenario that cannot
run says why in its ``detail`` and counts as not survived. ``tests/faults/`` runs the same
scenarios on a tiny model.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import tempfile
import time
import traceback
from pathlib import Path

from common import (
    EMBEDDED,
    EMBEDDED_HEADS,
    RESULTS_DIR,
    base_parser,
    report_head,
    write_heads_file,
    write_json,
)
from fault_outcome import (
    FaultInputs,
    Scenario,
    ScenarioResult,
    documents,
    failed,
    undisturbed_run,
)

MODULES = ("fault_inputs", "fault_runs", "fault_object_storage", "fault_disk", "fault_slurm")


def all_scenarios() -> dict[str, Scenario]:
    """Every scenario of :data:`MODULES`, by name, in module order."""
    scenarios: dict[str, Scenario] = {}
    for module in MODULES:
        scenarios.update(importlib.import_module(module).SCENARIOS)
    return scenarios


def prepare(work: Path, docs_per_domain: int) -> FaultInputs:
    """The undisturbed run of the selection and the tokenization in ``work/undisturbed``."""
    from ai_filters.engine.models import load_model

    loaded = load_model(EMBEDDED, device="cpu", dtype="float32")
    heads = write_heads_file(loaded, EMBEDDED_HEADS, work / "heads.json")
    select_args = [
        "--demo",
        "--docs-per-domain",
        str(docs_per_domain),
        "--max-tokens",
        "192",
        "--tasks",
        "2",
        "--heads",
        str(heads),
        "--model",
        EMBEDDED,
    ]
    tokenize_args = ["--demo", "--tasks", "2"]
    return undisturbed_run(work / "undisturbed", select_args, tokenize_args)


def run_scenario(name: str, scenario: Scenario, work: Path, inputs: FaultInputs):
    """One scenario in its own folder; an exception in the scenario is a failed result."""
    folder = work / re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    folder.mkdir(parents=True)
    started = time.monotonic()
    try:
        return scenario(folder, inputs)
    except Exception as error:  # the suite goes on: the result records why this one failed
        raised = traceback.format_exception_only(error)[-1].strip()
        return failed(name, "", documents(inputs.selection), f"raised {raised}", started)


def markdown_table(results: list[ScenarioResult]) -> str:
    """The README's reliability table: one row per scenario, then the totals."""
    rows = [
        "| scenario | fault injected | survived | documents lost | duplicated ids |",
        "|---|---|---|---:|---:|",
    ]
    for result in results:
        survived = "yes" if result.survived else "**no**"
        rows.append(
            f"| {result.name} | {result.injected} | {survived} | {result.documents_lost} "
            f"| {result.duplicated_ids} |"
        )
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = base_parser(__doc__, raw=True)
    parser.add_argument("--json", type=Path, default=None, help="result file to write")
    parser.add_argument(
        "--scenarios", nargs="+", default=None, metavar="NAME", help="run only these scenarios"
    )
    parser.add_argument(
        "--docs-per-domain", type=int, default=4, help="demo corpus size of every run"
    )
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: tmp)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios = all_scenarios()
    chosen = args.scenarios or list(scenarios)
    unknown = sorted(set(chosen) - set(scenarios))
    if unknown:
        raise SystemExit(f"error: no scenario {unknown}; scenarios: {', '.join(scenarios)}")
    load_start = os.getloadavg()
    work = args.work or Path(tempfile.mkdtemp(prefix="faults_"))
    started = time.monotonic()
    inputs = prepare(work, args.docs_per_domain)
    results = []
    for name in chosen:
        print(f"[faults] {name} ...", flush=True)
        results.append(run_scenario(name, scenarios[name], work, inputs))
        print(f"[faults] {name}: survived={results[-1].survived} ({results[-1].detail})")
    table = markdown_table(results)
    print(table)
    report = report_head("faults", "cpu", load_start=load_start)
    report |= {
        "docs_per_domain": args.docs_per_domain,
        "documents": documents(inputs.selection),
        "scenarios": [result.as_json() for result in results],
        "tried": len(results),
        "survived": sum(result.survived for result in results),
        "documents_lost": sum(result.documents_lost for result in results),
        "duplicated_ids": sum(result.duplicated_ids for result in results),
        "seconds": round(time.monotonic() - started, 1),
        "markdown": table,
    }
    path = write_json(report, args.json or RESULTS_DIR / "faults_cpu.json")
    print(f"wrote {path}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    survived = all(r.survived and r.documents_lost == r.duplicated_ids == 0 for r in results)
    return 0 if survived else 1


if __name__ == "__main__":
    raise SystemExit(main())

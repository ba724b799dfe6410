"""Memory and speed of the selection's one-task stages (thresholds, report) at corpus scale.

For each ``--docs N`` this script writes the score tables of N synthetic scored documents over
the SmolLM corpus's four domains (in the corpus's proportions: FineWeb-Edu-dedup 78.2 %,
Cosmopedia-v2 16.1 %, Python-Edu 3.2 %, OpenWebMath 2.6 % of 243M documents), streaming, file
by file, with the per-task stats the scoring and selection stages would have recorded; then
runs the pipeline's own ``thresholds`` and ``report`` stages on them with datatrove's local
executor, each in a fresh process, and records their wall time and peak resident memory.

The baseline, measured in the same run on the smallest size, is the previous implementation's
way: every (domain, score, tokens) row in Python lists, then the same rule
(``ai_filters.selection.thresholds.compute_thresholds``).

    python benchmarks/bench_selection.py --docs 5000000 25000000 \\
        --json benchmarks/results/selection_cpu.json

The JSON holds, per size, ``docs``, ``seconds``, ``docs_per_s`` and ``peak_rss_mib`` of each
stage; the bytes of peak memory per document (the slope between the two largest sizes); the
speed ratio against the baseline; and the extrapolation to 240M documents. Peak memory is the
high-water mark of the stage alone, reset once the imports are done (Linux only).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from common import (
    MIB,
    RESULTS_DIR,
    base_parser,
    peak_memory,
    report_head,
    result_path,
    run_python,
    write_json,
)

from ai_filters.blocks.score_table import table_schema
from ai_filters.fields import (
    DOCUMENT_TOKENS_KEY,
    ENGINE_FIELDS,
    LOSS_BASE_KEY,
    LOSS_REF_KEY,
    SCORE_KEY,
    SCORED_TOKENS_KEY,
)
from ai_filters.selection.folder import (
    KEPT_STAT,
    READ_STAT,
    REJECTED_STAT,
    SKIPPED_STAT,
    ScorerRecord,
    SelectionFolder,
)

SHARES = {"web": 0.782, "textbook": 0.161, "code": 0.032, "math": 0.026}  # of 243.3M documents
ROWS_PER_FILE = 2_000_000
SKIPPED_SHARE = 0.001
FULL_CORPUS = 240_000_000
TARGET_BYTES_PER_DOC = 16
TARGET_DOCS_PER_S = 1_000_000

# Peak resident memory of the measured work alone: the process's high-water mark is reset
# (Linux: /proc/self/clear_refs) once everything is imported, so the imports' own peak (torch,
# transformers: about 600 MiB) does not hide what the stage holds.
PEAK = """
def reset_peak():
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
def peak_mib():
    with open("/proc/self/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    return kb / 1024
"""

STAGE_SCRIPT = (
    PEAK
    + """
import json, sys, time
from datatrove.executor import LocalPipelineExecutor
from ai_filters.blocks import ThresholdFinder, SelectionReport
out, stage = sys.argv[1], sys.argv[2]
step = ThresholdFinder(out, 0.2) if stage == "thresholds" else SelectionReport(out)
executor = LocalPipelineExecutor([step], tasks=1, logging_dir=f"{out}/logs/{stage}")
reset_peak()
started = time.perf_counter()
executor.run()
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_mib()}))
"""
)

BASELINE_SCRIPT = (
    PEAK
    + """
import json, sys, time
import pyarrow.parquet as pq
from ai_filters.selection.folder import SelectionFolder
from ai_filters.selection.thresholds import compute_thresholds
folder = SelectionFolder(sys.argv[1])
reset_peak()
started = time.perf_counter()
rows = []  # the previous implementation: every row as Python objects
for domain, files in folder.score_tables().items():
    for path in files:
        table = pq.read_table(path, columns=["attention_influence", "ai_doc_tokens"])
        scores, tokens = table.column(0).to_pylist(), table.column(1).to_pylist()
        rows += [(domain, s, t) for s, t in zip(scores, tokens)]
compute_thresholds(rows, 0.2)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_mib()}))
"""
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = base_parser(
        "Peak memory and speed of the selection's thresholds and report stages on "
        "synthetic score tables of N documents (see the module docstring)."
    )
    parser.add_argument(
        "--docs",
        type=int,
        nargs="+",
        default=[2_000_000, 10_000_000],
        help="document counts to measure (two or more give the memory slope)",
    )
    parser.add_argument("--json", type=Path, default=None, help="result file to write")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: tmp)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic scores")
    parser.add_argument("--skip-baseline", action="store_true", help="do not run the baseline")
    args = parser.parse_args(argv)
    if min(args.docs) < 1000:
        parser.error("--docs must be at least 1000")
    return args


def domain_counts(docs: int) -> dict[str, int]:
    counts = {domain: int(docs * share) for domain, share in SHARES.items()}
    counts["web"] += docs - sum(counts.values())
    return counts


def write_tables(folder: SelectionFolder, docs: int, seed: int) -> dict[str, int]:
    """Score tables of ``docs`` synthetic documents, one file of at most ROWS_PER_FILE rows at a
    time; returns documents per domain. Scores are rounded to 4 decimals, so ties exist."""
    rng = np.random.default_rng(seed)
    schema = table_schema(ENGINE_FIELDS)
    counts = domain_counts(docs)
    for domain, count in counts.items():
        for rank, start in enumerate(range(0, count, ROWS_PER_FILE)):
            rows = min(ROWS_PER_FILE, count - start)
            loss = rng.gamma(4.0, 0.6, rows) + 0.5
            doc_tokens = rng.lognormal(np.log(600), 1.0, rows).astype(np.int64) + 2
            columns = {
                "id": pa.array(np.arange(start, start + rows)).cast(pa.string()),
                "domain": pa.array([domain] * 1, pa.string()).take(np.zeros(rows, np.int64)),
                SCORE_KEY: (rng.normal(0.2, 0.1, rows) - 0.02 * loss).round(4),
                LOSS_BASE_KEY: loss,
                LOSS_REF_KEY: loss * 1.2,
                SCORED_TOKENS_KEY: np.minimum(doc_tokens, 4096),
                DOCUMENT_TOKENS_KEY: doc_tokens,
            }
            path = Path(folder.path(f"scores/{domain}/{rank:05d}.parquet"))
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table(columns, schema=schema), path)
    return counts


def write_stage_stats(folder: SelectionFolder, stage: str, counters: dict[str, int]) -> None:
    """A stats file as a finished task of ``stage`` leaves it, holding ``counters``."""
    from datatrove.utils.stats import PipelineStats, Stats

    stats = Stats(f"synthetic {stage} counters")
    for key, value in counters.items():
        stats.stats[key].update(value)
    path = Path(folder.logs(stage)) / "stats" / "00000.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PipelineStats([stats]).to_json())


def run_stage(script: str, *arguments: str) -> dict:
    """Run ``script`` in a fresh interpreter and read the JSON it prints last."""
    printed = run_python(["-c", script, *arguments], capture=True)
    return json.loads(printed.strip().splitlines()[-1])


def measure(work: Path, docs: int, seed: int) -> dict:
    """Write the tables of ``docs`` documents and run the thresholds and report stages."""
    folder = SelectionFolder(work / f"docs_{docs}")
    started = time.perf_counter()
    counts = write_tables(folder, docs, seed)
    generated = time.perf_counter() - started
    folder.write_scorer(ScorerRecord("attention_influence", "attention_influence", 0.2))
    skipped = {domain: max(1, int(count * SKIPPED_SHARE)) for domain, count in counts.items()}
    scoring = {READ_STAT.format(domain=d): counts[d] + skipped[d] for d in counts}
    scoring |= {SKIPPED_STAT.format(domain=d, reason="too_short"): skipped[d] for d in counts}
    write_stage_stats(folder, "score", scoring)
    thresholds = run_stage(STAGE_SCRIPT, folder.root, "thresholds")
    selecting = {}
    for domain, entry in folder.read_thresholds().items():
        selecting[KEPT_STAT.format(domain=domain)] = entry.documents_selected
        selecting[REJECTED_STAT.format(domain=domain)] = entry.documents - entry.documents_selected
    write_stage_stats(folder, "select", selecting)
    report = run_stage(STAGE_SCRIPT, folder.root, "report")
    conserved = all(
        row["read_equals_scored_plus_skipped"] and row["scored_equals_selected_plus_rejected"]
        for row in folder.read_report()["domains"].values()
    )
    seconds = thresholds["seconds"] + report["seconds"]
    return {
        "docs": docs,
        "docs_per_domain": counts,
        "generate_seconds": round(generated, 2),
        "seconds": seconds,
        "docs_per_s": docs / seconds,
        "peak_rss_mib": max(thresholds["peak_rss_mib"], report["peak_rss_mib"]),
        "stages": {"thresholds": thresholds, "report": report},
        "report_conserved": conserved,
    }


def summarize(sizes: list[dict], baseline: dict | None) -> dict:
    """Slope of peak memory per document, speed, the baseline ratio, the 240M extrapolation."""
    ordered = sorted(sizes, key=lambda size: size["docs"])
    summary: dict = {"targets": {"bytes_per_doc": TARGET_BYTES_PER_DOC}}
    summary["targets"]["docs_per_s"] = TARGET_DOCS_PER_S
    # speed at the largest size: smaller ones are dominated by the stages' fixed start-up
    at_scale = ordered[-1]["docs_per_s"]
    summary["docs_per_s_largest"] = at_scale
    if len(ordered) >= 2:
        small, large = ordered[-2], ordered[-1]
        slope = (
            (large["peak_rss_mib"] - small["peak_rss_mib"]) * MIB / (large["docs"] - small["docs"])
        )
        base = large["peak_rss_mib"] * MIB - slope * large["docs"]
        summary["bytes_per_doc"] = slope
        summary["rss_intercept_mib"] = base / MIB
        summary["extrapolated_240m"] = {
            "peak_rss_gib": (base + slope * FULL_CORPUS) / 2**30,
            "seconds": FULL_CORPUS / large["docs_per_s"],
        }
        summary["meets_targets"] = slope <= TARGET_BYTES_PER_DOC and at_scale >= TARGET_DOCS_PER_S
    if baseline is not None:
        same = next(size for size in ordered if size["docs"] == baseline["docs"])
        summary["baseline"] = baseline
        summary["speedup_thresholds_vs_baseline"] = (
            baseline["seconds"] / same["stages"]["thresholds"]["seconds"]
        )
        summary["memory_ratio_baseline_vs_thresholds"] = (
            baseline["peak_rss_mib"] / same["stages"]["thresholds"]["peak_rss_mib"]
        )
    return summary


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_selection."))
    try:
        sizes = []
        for docs in sorted(args.docs):
            print(f"measuring {docs:,} documents ...", flush=True)
            sizes.append(measure(work, docs, args.seed))
            size = sizes[-1]
            print(
                f"  {size['seconds']:.1f} s ({size['docs_per_s']:,.0f} docs/s), peak RSS "
                f"{size['peak_rss_mib']:,.0f} MiB, conserved: {size['report_conserved']}"
            )
        baseline = None
        if not args.skip_baseline:
            docs = min(args.docs)
            print(f"baseline (Python lists) on {docs:,} documents ...", flush=True)
            baseline = {"docs": docs, **run_stage(BASELINE_SCRIPT, str(work / f"docs_{docs}"))}
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    result = {
        **report_head("selection", "cpu"),
        "sizes": sizes,
        "summary": summarize(sizes, baseline),
        "peak_rss_mib_this_process": peak_memory("cpu")["peak_rss_mib"],
    }
    print(json.dumps(result["summary"], indent=1))
    path = write_json(result, args.json or result_path(RESULTS_DIR, "selection", "cpu"))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Fault scenarios of bad input: broken files in the middle of a domain, and metadata fields
that first appear late in a file.

- ``broken files mid-domain``: the undisturbed run's corpus again, with a truncated
  ``.jsonl.gz`` between the two files of one domain and a corrupt parquet between the two
  (parquet) files of another. Each broken file must be one skipped record with the reason
  ``unreadable``; every other document is scored and selected as in the undisturbed run.
- ``fields first met late``: a 2,500-document jsonl file (the random scorer: no model) whose
  documents 2,400 on carry a field the others lack, and 2,450 on a struct field. Every parquet
  file the pipeline writes (selected, rejected) and ``hub-folder``'s data files must hold both
  as columns, their values where the document has them and null elsewhere.

A shared module of ``faults.py`` (see ``fault_outcome.py``), never run.
"""

from __future__ import annotations

import copy
import gzip
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from fault_outcome import (
    SELECT_SCRIPT,
    FaultInputs,
    Outcome,
    ScenarioResult,
    compare_outcomes,
    documents,
    failed,
    last_line,
    read_outcome,
    run_script,
)

from ai_filters.documents import read_documents
from ai_filters.selection.folder import SelectionFolder, parquet_file

GZIP_DOMAIN = "web"  # gets a truncated .jsonl.gz between its two files
PARQUET_DOMAIN = "math"  # rewritten as parquet, with a corrupt parquet between its two files
LATE_DOCUMENTS = 2_500
LATE_FIELD_FROM = 2_400
STRUCT_FIELD_FROM = 2_450


def _pipeline_args(select_args: tuple[str, ...], domains_file: Path) -> list[str]:
    """``select_args`` reading ``domains_file`` instead of the demo corpus (they must give
    ``--max-tokens``: without ``--demo`` its default is another)."""
    args = list(select_args)
    if "--max-tokens" not in args:
        raise ValueError("the fault inputs must give --max-tokens")
    if "--demo" in args:
        args.remove("--demo")
        at = args.index("--docs-per-domain")
        del args[at : at + 2]
    return [*args, "--domains", str(domains_file)]


def write_broken_corpus(source: Path, target: Path) -> dict[str, str]:
    """Copy the demo corpus at ``source`` to ``target`` with the two broken files added;
    returns the domains file's specs and writes it as ``target/domains.json``."""
    specs = {}
    for domain_folder in sorted(p for p in source.iterdir() if p.is_dir()):
        domain = domain_folder.name
        copy = target / domain
        copy.mkdir(parents=True)
        if domain == PARQUET_DOMAIN:
            for path in sorted(domain_folder.glob("*.jsonl.gz")):
                rows = list(read_documents(path))
                flat = [{"id": r["id"], "text": r["text"], **r["metadata"]} for r in rows]
                pq.write_table(pa.Table.from_pylist(flat), copy / f"{_stem(path)}.parquet")
            corrupt = copy / "00000_broken.parquet"
            pq.write_table(pa.table({"id": ["x"] * 50, "text": ["lost"] * 50}), corrupt)
            corrupt.write_bytes(corrupt.read_bytes()[:120])
            specs[domain] = {"reader": "parquet", "path": str(copy)}
            continue
        for path in domain_folder.glob("*.jsonl.gz"):
            shutil.copy(path, copy / path.name)
        if domain == GZIP_DOMAIN:
            line = json.dumps({"id": "never-read", "text": "cut before its end " * 20})
            (copy / "00000_broken.jsonl.gz").write_bytes(gzip.compress(line.encode())[:30])
        specs[domain] = {"reader": "jsonl", "path": str(copy)}
    (target / "domains.json").write_text(json.dumps(specs))  # JSON is valid YAML
    return specs


def _stem(path: Path) -> str:
    return path.name.split(".")[0]


def broken_files_mid_domain(work: Path, inputs: FaultInputs) -> ScenarioResult:
    started = time.monotonic()
    name = "broken files mid-domain"
    injected = f"a truncated .jsonl.gz in {GZIP_DOMAIN}, a corrupt parquet in {PARQUET_DOMAIN}"
    write_broken_corpus(inputs.root / "corpus", work / "corpus")
    out = work / "out"
    args = _pipeline_args(inputs.select_args, work / "corpus" / "domains.json")
    result = run_script(SELECT_SCRIPT, out, args)
    if result.returncode != 0:
        return failed(name, injected, documents(inputs.selection), last_line(result), started)
    broken = {
        d["id"]: d["metadata"]
        for path in SelectionFolder(out).skipped_files()
        for d in read_documents(path)
        if d["id"] not in inputs.selection.ids["skipped"]
    }
    reasons = Counter((m["domain"], m["filter_reason"]) for m in broken.values())
    expected = _with_skipped(inputs.selection, broken)
    same, lost, duplicated, differences = compare_outcomes(expected, read_outcome(out))
    wanted = Counter({(GZIP_DOMAIN, "unreadable"): 1, (PARQUET_DOMAIN, "unreadable"): 1})
    detail = f"skipped: {dict(reasons)}" + (f"; {differences}" if differences else "")
    return ScenarioResult(
        name,
        injected,
        survived=same and reasons == wanted and lost == 0 and duplicated == 0,
        documents_lost=lost,
        duplicated_ids=duplicated,
        detail=detail,
        seconds=round(time.monotonic() - started, 1),
    )


def _with_skipped(outcome: Outcome, records: dict[str, dict]) -> Outcome:
    """``outcome`` with ``records`` (id -> metadata) read and skipped as well."""
    expected = copy.deepcopy(outcome)
    expected.ids["skipped"] += list(records)
    for metadata in records.values():
        counts = expected.counts[metadata["domain"]]
        counts["read"] += 1
        counts["skipped"] += 1
        reasons = counts["skipped_by_reason"]
        reasons[metadata["filter_reason"]] = reasons.get(metadata["filter_reason"], 0) + 1
    return expected


def write_late_field_corpus(folder: Path) -> Path:
    """One domain, one jsonl file of :data:`LATE_DOCUMENTS` documents; from document
    :data:`LATE_FIELD_FROM` on they carry ``late`` (text), from :data:`STRUCT_FIELD_FROM` on
    ``nested`` (a struct). Returns the domains file."""
    (folder / "web").mkdir(parents=True)
    with open(folder / "web" / "part.jsonl", "w") as part:
        for document in _late_documents():
            part.write(json.dumps(document) + "\n")
    domains = folder / "domains.json"
    domains.write_text(json.dumps({"web": {"reader": "jsonl", "path": str(folder / "web")}}))
    return domains


def _late_documents():
    for index in range(LATE_DOCUMENTS):
        document = {"id": f"late/{index}", "text": f"Document number {index} of a web dump."}
        if index >= LATE_FIELD_FROM:
            document["late"] = f"first met at {LATE_FIELD_FROM}: {index}"
        if index >= STRUCT_FIELD_FROM:
            document["nested"] = {"rank": index, "source": "crawl"}
        yield document


def late_field_losses(files: list[str]) -> tuple[Counter, list[str]]:
    """Every id in the parquet ``files`` (with its copies), and one line per file that lacks a
    late column or per document whose late value is not the one it was written with."""
    ids: Counter = Counter()
    problems = []
    written = {d["id"]: d for d in _late_documents()}
    for path in files:
        table = parquet_file(path).read()
        missing = {"late", "nested"} - set(table.column_names)
        if missing:
            problems.append(f"{path}: no column {sorted(missing)}")
            continue
        for row in table.select(["id", "late", "nested"]).to_pylist():
            ids[row["id"]] += 1
            source = written[row["id"]]
            if row["late"] != source.get("late") or row["nested"] != source.get("nested"):
                problems.append(f"{path}: {row['id']} has late={row['late']!r}")
    return ids, problems


def fields_first_met_late(work: Path, inputs: FaultInputs) -> ScenarioResult:
    started = time.monotonic()
    name = "fields first met late"
    injected = (
        f"a field first in document {LATE_FIELD_FROM} of {LATE_DOCUMENTS}, a struct field "
        f"first in document {STRUCT_FIELD_FROM} (random scorer)"
    )
    domains = write_late_field_corpus(work / "corpus")
    out, hub = work / "out", work / "hub"
    args = ["--scorer", "random", "--domains", str(domains), "--tasks", "1"]
    result = run_script(SELECT_SCRIPT, out, args)
    if result.returncode == 0:
        command = [sys.executable, "-m", "ai_filters.cli", "hub-folder", str(out)]
        result = subprocess.run([*command, "--hub-dir", str(hub)], capture_output=True, text=True)
    if result.returncode != 0:
        return failed(name, injected, LATE_DOCUMENTS, last_line(result), started)
    folder = SelectionFolder(out)
    written = [
        *(p for paths in folder.selected_shards().values() for p in paths),
        *(p for paths in folder.rejected_shards().values() for p in paths),
    ]
    ids, problems = late_field_losses(written)
    hub_ids, hub_problems = late_field_losses(sorted(str(p) for p in hub.glob("data/**/*.parquet")))
    scored = Counter(i for path in folder.scored_files() for i in _document_ids(path))
    lost = LATE_DOCUMENTS - len(ids) + LATE_DOCUMENTS - len(scored)
    duplicated = sum(n - 1 for counter in (ids, hub_ids, scored) for n in counter.values())
    problems += hub_problems
    if set(hub_ids) != {i for i in ids if i in _selected(folder)}:
        problems.append("hub-folder's data files do not hold exactly the selected documents")
    detail = "; ".join(problems[:3]) or (
        f"late and nested columns in {len(written)} selection files and the hub folder's "
        f"{len(list(hub.glob('data/**/*.parquet')))}"
    )
    return ScenarioResult(
        name,
        injected,
        survived=not problems and lost == 0 and duplicated == 0,
        documents_lost=lost,
        duplicated_ids=duplicated,
        detail=detail,
        seconds=round(time.monotonic() - started, 1),
    )


def _document_ids(path: str) -> list[str]:
    return [d["id"] for d in read_documents(path)]


def _selected(folder: SelectionFolder) -> set[str]:
    return {
        row["id"]
        for paths in folder.selected_shards().values()
        for path in paths
        for row in parquet_file(path).read(columns=["id"]).to_pylist()
    }


SCENARIOS = {
    "broken files mid-domain": broken_files_mid_domain,
    "fields first met late": fields_first_met_late,
}

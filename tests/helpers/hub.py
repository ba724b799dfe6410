"""A finished selection folder as the pipeline leaves it, for the Hub tests (no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ai_filters.blocks.registry import SCORERS

RANDOM_CONTROL = {"scorer": "random", "score_key": "random_score", "fraction": 0.2}
METHOD_RECORD = {
    "scorer": "attention_influence",
    "score_key": "attention_influence",
    "fraction": 0.2,
}
TOKEN = "hf_" + "S3cr3tT0kenValueForTests" * 2
# domain -> (rows per selected shard, rejected rows, extra metadata field of the domain)
DOMAINS = {"web": ([3, 2], 12, None), "code": ([2], 6, "repo")}


def rows_of(
    domain: str,
    count: int,
    start: int,
    score: float,
    extra: str | None,
    score_key: str = "attention_influence",
) -> list[dict]:
    rows = []
    for index in range(start, start + count):
        metadata = {
            "domain": domain,
            "file_path": f"/home/someone/corpus/{domain}/00000.jsonl.gz",
            score_key: score + 0.01 * index,
            "ai_doc_tokens": 100 + index,
        }
        if score_key == "attention_influence":  # the model scorers' losses
            metadata |= {"ai_loss_base": 2.0, "ai_loss_ref": 2.5, "ai_n_tokens": 100 + index}
        if extra:
            metadata[extra] = f"{extra}-{index}"
        rows.append(
            {"text": f"{domain} document {index}", "id": f"{domain}/{index}", "metadata": metadata}
        )
    return rows


def write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def table_rows(rows: list[dict], score_key: str) -> list[dict]:
    """Score-table rows (id, domain, the scorer's fields) of documents with nested metadata."""
    scorer = next(entry for entry in SCORERS.values() if entry.score_key == score_key)
    return [
        {"id": row["id"], "domain": row["metadata"]["domain"]}
        | {name: row["metadata"][name] for name in scorer.table_fields}
        for row in rows
    ]


def make_out(out: Path, scorer: dict | None = None) -> Path:
    """A selection output folder as pipelines/smollm_select.py leaves it, for DOMAINS, with
    shards in the older layout (a nested ``metadata`` struct) and score tables.

    Without ``scorer``, the method's folder (its heads.json); with ``scorer`` (a scorer.json
    record of a control), that control's folder: its score field in the metadata, and no
    heads.json.
    """
    score_key = scorer["score_key"] if scorer else "attention_influence"
    thresholds, report = {}, {"domains": {}, "statistics": {}}
    for domain, (shards, rejected, extra) in DOMAINS.items():
        start, scored = 0, []
        for rank, count in enumerate(shards):
            rows = rows_of(domain, count, start, 0.5, extra, score_key)
            write_rows(out / "selected" / "data" / domain / f"{rank:05d}.parquet", rows)
            scored += rows
            start += count
        rows = rows_of(domain, rejected, 100, -1.5, extra, score_key)  # below 0.5
        write_rows(out / "rejected" / "data" / domain / "00000.parquet", rows)
        write_rows(out / "scores" / domain / "00000.parquet", table_rows(scored + rows, score_key))
        selected = sum(shards)
        thresholds[domain] = {
            "threshold": 0.5,
            "fraction": 0.2,
            "documents": selected + rejected,
            "tokens": 1000 * (selected + rejected),
            "documents_selected": selected,
            "tokens_selected": 1500 * selected,
            "tied_extra": 0,
        }
        report["domains"][domain] = {"read": selected + rejected + 1, "skipped": 1}
        report["statistics"][domain] = {
            "documents": selected + rejected,
            "mean_tokens": 110.0,
            "score_mean": 0.2,
            "score_p20": 0.1,
            "score_median": 0.2,
            "score_p80": 0.5,
            "loss_base_mean": 2.0,
            "spearman_score_loss": -0.5,
            "spearman_score_tokens": 0.4,
            "ppl_overlap": 0.25,
            "selected_mean_tokens": 150.0,
        }
    heads = {
        "model": "smollm2-135m",
        "model_fingerprint": "sha256:feedbeef",
        "num_layers": 30,
        "num_heads": 9,
        "num_kv_heads": 3,
        "scores": [[0.0] * 9] * 30,
        "selected": [[18, 6], [17, 3]],
        "settings": {"num_probes": 800, "max_tokens": 4096, "top_fraction": 0.05, "seed": 0},
    }
    records = {"thresholds": thresholds, "report": report}
    records |= {"scorer": scorer} if scorer else {"scorer": METHOD_RECORD, "heads": heads}
    for name, content in records.items():
        (out / f"{name}.json").write_text(json.dumps(content))
    return out

"""The learning curve of distillation: agreement with AttentionInfluence against training size.

``make distill`` runs it. Steps, each skipped when its output is there (a rerun resumes; the
scoring pipeline resumes its own completed tasks):

1. a local four-domain corpus bigger than the demo's: ``local_corpus(docs_per_domain, seed,
   chunk_chars)`` in smaller pieces -> ``OUT/corpus/<domain>/*.jsonl.gz``, ``OUT/domains.yaml``;
2. the embedded model's retrieval heads, detected and checked as the demo does ->
   ``OUT/heads.json``;
3. the AttentionInfluence selection of that corpus (``pipelines/smollm_select.py``) ->
   ``OUT/attention_influence/``;
4. for each training size, ``ai_filters.distill`` on the first N held-in documents (nested
   sets; the same held-out documents for all) -> ``OUT/models/n<N>/`` (``OUT/models/largest``
   links to the last), and the held-out agreement: top-fraction Jaccard per domain and
   overall, Spearman. Whole groups are held out (``--group-key``, default ``source_text``:
   the text a piece was cut from), so no held-out piece shares its text with a training
   piece; ``--group-key none`` gives the split by id of earlier runs (same-source figures);
5. the selection with the largest model (``--scorer distilled``) -> ``OUT/distilled/``, and
   ``ai-filters compare --only-ids`` of the two selections on the held-out ids, each selection
   made again among them (thresholds from the held-out documents alone) -> ``OUT/compare/``;
6. ``OUT/curve.json`` and ``OUT/curve.png``, copied to ``benchmarks/results/``.

``--split-only`` prints the held-out split of the corpus alone (documents and groups on each
side, held-out pieces sharing a source text with a training piece; by ``--group-key`` and by
id), in seconds: no model, no scores.

``curve.json`` holds the settings, the corpus, every size's agreement, each step's wall time
(``null`` for a step skipped because its output was there) and the load average of the machine
at the start and the end (this machine is shared: the scoring step's time depends on it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from common import RESULTS_DIR, ROOT, base_parser, report_head, result_path, run_python

from ai_filters.demo.corpus import DOMAINS, local_corpus
from ai_filters.distill import (
    DEFAULT_GROUP_KEY,
    NO_GROUPS,
    ScoredDocument,
    TrainingSettings,
    distill,
    group_counts,
    group_of,
    holdout_key,
    read_scored,
    read_teacher,
    save,
    split,
)
from ai_filters.documents import DocumentWriter
from ai_filters.engine.models import DEFAULT_MODEL
from ai_filters.fields import SOURCE_TEXT_KEY
from ai_filters.selection.folder import SelectionFolder

SHARDS_PER_DOMAIN = 16  # one datatrove task per shard: a killed run loses at most one shard


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = base_parser(__doc__, raw=True)
    parser.add_argument("--out", type=Path, default=Path("out/distill"), help="output folder")
    parser.add_argument(
        "--docs-per-domain", type=int, default=680, help="corpus size per domain (math has 698)"
    )
    parser.add_argument("--chunk-chars", type=int, default=300, help="corpus piece length")
    parser.add_argument("--seed", type=int, default=0, help="corpus sample")
    parser.add_argument("--max-tokens", type=int, default=192, help="tokens scored per document")
    parser.add_argument(
        "--sizes",
        default="100,300,1000,all",
        help="training sizes, comma-separated; 'all': every held-in document",
    )
    parser.add_argument("--heldout-share", type=float, default=0.2, help="share held out")
    parser.add_argument(
        "--group-key",
        default=DEFAULT_GROUP_KEY,
        help="held out together (ai-filters distill --group-key); 'none': the split by id",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="copies go here")
    parser.add_argument(
        "--split-only",
        action="store_true",
        help="print the held-out split of the corpus (by --group-key and by id) and stop: "
        "no model, no scores",
    )
    return parser.parse_args(argv)


def write_corpus(out: Path, docs_per_domain: int, seed: int, chunk_chars: int) -> None:
    """The corpus as ``SHARDS_PER_DOMAIN`` jsonl.gz shards per domain and its domains file."""
    documents = local_corpus(docs_per_domain, seed, chunk_chars=chunk_chars)
    specs = {}
    for domain in DOMAINS:
        in_domain = [d for d in documents if d["metadata"]["domain"] == domain]
        for shard in range(SHARDS_PER_DOMAIN):
            path = out / "corpus" / domain / f"{shard:05d}.jsonl.gz"
            with DocumentWriter(path) as writer:
                for document in in_domain[shard::SHARDS_PER_DOMAIN]:
                    writer.write(document)
        specs[domain] = {"reader": "jsonl", "path": str((out / "corpus" / domain).resolve())}
    (out / "domains.yaml").write_text(json.dumps(specs, indent=1) + "\n")  # JSON is YAML


def select(out: Path, selection: Path, max_tokens: int, *extra: str) -> None:
    """Run ``pipelines/smollm_select.py`` on the corpus (it resumes what completed)."""
    command = [str(ROOT / "pipelines" / "smollm_select.py")]
    command += ["--domains", str(out / "domains.yaml"), "--out", str(selection)]
    command += ["--max-tokens", str(max_tokens), "--tasks", str(SHARDS_PER_DOMAIN), *extra]
    run_python(command)


def training_sizes(text: str) -> list[int | None]:
    """``"100,300,all"`` -> ``[100, 300, None]`` (``None``: every held-in document)."""
    return [None if size == "all" else int(size) for size in text.split(",")]


def sharing_a_source(sources: dict[str, str], training_ids: list[str], heldout: list) -> int:
    """Held-out documents whose source (``sources``: id -> source text, the corpus's
    ``source_text``) is also that of a training document: what a split by source leaves at 0."""
    trained = {sources[i] for i in training_ids}
    return sum(sources[d.id] in trained for d in heldout)


def split_statistics(
    documents: list[dict], sizes: list[int | None], heldout_share: float, group_key: str
) -> list[dict]:
    """Per group key (``group_key``, then ``none``: the split by id) and training size: the
    documents and groups on each side and the held-out documents that share a source text with
    a training document. The split needs no scores."""
    sources = {d["id"]: d["metadata"][SOURCE_TEXT_KEY] for d in documents}
    rows = []
    for key in dict.fromkeys((group_key, NO_GROUPS)):
        scored = [
            ScoredDocument(
                d["id"], d["metadata"]["domain"], d["text"], 0.0, group_of(d["metadata"], key)
            )
            for d in documents
        ]
        for size in sizes:
            settings = TrainingSettings(heldout_share=heldout_share, max_train=size, group_key=key)
            training, heldout = split(scored, settings)
            rows.append(
                {
                    "group_key": key,
                    "train_documents": len(training),
                    "heldout_documents": len(heldout),
                    **group_counts(training, heldout),
                    "heldout_sharing_a_source_text": sharing_a_source(
                        sources, [d.id for d in training], heldout
                    ),
                }
            )
    return rows


def learning_curve(
    selection: Path, models: Path, sizes: list[int | None], heldout_share: float, group_key: str
) -> list[dict]:
    """Distil at every size; per size the record's counts, groups, agreement, training time and
    the held-out documents that share a source text with a training document."""
    folder = SelectionFolder(selection)
    score_key = read_teacher(folder).score_key
    documents = read_scored(folder, score_key, group_key)
    sources = {d.id: holdout_key(d) for d in read_scored(folder, score_key, SOURCE_TEXT_KEY)}
    points = []
    for size in sizes:
        settings = TrainingSettings(
            heldout_share=heldout_share, max_train=size, group_key=group_key
        )
        result = distill(selection, settings, documents=documents)
        save(result, models / f"n{result.record['training']['documents']}")
        measured, holdout = result.record["heldout_agreement"], result.record["holdout"]
        points.append(
            {
                "train_documents": result.record["training"]["documents"],
                "heldout_documents": holdout["documents"],
                "group_key": group_key,
                "training_groups": holdout["training_groups"],
                "heldout_groups": holdout["heldout_groups"],
                "heldout_sharing_a_source_text": sharing_a_source(
                    sources, result.training_ids, result.heldout
                ),
                "training_seconds": result.record["training"]["seconds"],
                "model": str(models / f"n{result.record['training']['documents']}"),
                **measured,
            }
        )
        print(
            f"{points[-1]['train_documents']:>5} training documents "
            f"({holdout['training_groups']} groups), {holdout['documents']} held out "
            f"({holdout['heldout_groups']} groups): held-out top-"
            f"{measured['fraction']:g} Jaccard {measured['jaccard']:.3f}, mean Spearman "
            f"{measured['mean_spearman']:+.3f}",
            flush=True,
        )
    return points


def plot_curve(points: list[dict], path: Path) -> None:
    """Held-out Jaccard (overall and per domain, chance dashed) and Spearman against size."""
    from matplotlib.figure import Figure

    sizes = [point["train_documents"] for point in points]
    figure = Figure(figsize=(10, 4), layout="constrained")
    jaccard_axis, spearman_axis = figure.subplots(1, 2)
    for domain in points[-1]["domains"]:
        jaccard_axis.plot(
            sizes, [p["domains"][domain]["jaccard"] for p in points], "o-", label=domain
        )
        spearman_axis.plot(
            sizes, [p["domains"][domain]["spearman"] for p in points], "o-", label=domain
        )
    jaccard_axis.plot(sizes, [p["jaccard"] for p in points], "ks-", linewidth=2, label="all")
    chance = [p["domains"][d]["chance_jaccard"] for p in points[-1:] for d in p["domains"]]
    jaccard_axis.axhline(sum(chance) / len(chance), color="grey", linestyle="--", label="chance")
    jaccard_axis.axhline(0.5, color="red", linestyle=":", label="target 0.5")
    spearman_axis.plot(
        sizes, [p["mean_spearman"] for p in points], "ks-", linewidth=2, label="mean"
    )
    fraction = points[-1]["fraction"]
    for axis, title in (
        (jaccard_axis, f"held-out top-{fraction:.0%} Jaccard with AttentionInfluence"),
        (spearman_axis, "held-out Spearman with AttentionInfluence"),
    ):
        axis.set_xscale("log")
        axis.set_xticks(sizes, [f"{size:,}" for size in sizes])
        axis.minorticks_off()
        axis.set_xlabel("training documents (scored by the selector)")
        axis.set_title(title, fontsize="medium")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    jaccard_axis.set_ylim(0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def heldout_comparison(out: Path, model: Path) -> dict:
    """``ai-filters compare`` of the two selections on the held-out ids; per domain its pair
    and the thresholds of each selection among the held-out documents."""
    from ai_filters.cli import main as cli_main

    arguments = ["compare", f"attention_influence={out / 'attention_influence'}"]
    arguments += [f"distilled={out / 'distilled'}", "--only-ids", str(model)]
    if cli_main([*arguments, "--out", str(out / "compare")]) != 0:
        raise RuntimeError("ai-filters compare failed")
    result = json.loads((out / "compare" / "compare.json").read_text())
    thresholds = result["only_ids"]["thresholds"]
    return {
        domain: {
            **part["pairs"][0],
            "thresholds": {name: by_domain.get(domain) for name, by_domain in thresholds.items()},
        }
        for domain, part in result["domains"].items()
    }


class Steps:
    """Wall time of each step that ran (``None`` for a step skipped: its output was there)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float | None] = {}

    def run(self, name: str, done: bool, action) -> None:
        if done:
            self.seconds[name] = None
            print(f"{name}: already done, skipped", flush=True)
            return
        started = time.monotonic()
        action()
        self.seconds[name] = round(time.monotonic() - started, 1)
        print(f"{name}: {self.seconds[name]:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.split_only:
        documents = local_corpus(args.docs_per_domain, args.seed, chunk_chars=args.chunk_chars)
        sizes, share = training_sizes(args.sizes), args.heldout_share
        for row in split_statistics(documents, sizes, share, args.group_key):
            print(json.dumps(row))
        return 0
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    load_start, started, steps = os.getloadavg(), time.monotonic(), Steps()
    steps.run(
        "corpus",
        (out / "domains.yaml").is_file(),
        lambda: write_corpus(out, args.docs_per_domain, args.seed, args.chunk_chars),
    )

    def detect_heads() -> None:
        from ai_filters.demo.steps import detect_and_check

        detect_and_check(out, DEFAULT_MODEL)

    steps.run("heads", (out / "heads.json").is_file(), detect_heads)
    ai, distilled = out / "attention_influence", out / "distilled"
    steps.run(
        "scoring",
        (ai / "report.json").is_file(),
        lambda: select(out, ai, args.max_tokens, "--heads", str(out / "heads.json")),
    )
    points: list[dict] = []
    steps.run(
        "curve",
        False,
        lambda: points.extend(
            learning_curve(
                ai, out / "models", training_sizes(args.sizes), args.heldout_share, args.group_key
            )
        ),
    )
    largest = Path(points[-1]["model"])
    link = out / "models" / "largest"
    link.unlink(missing_ok=True)
    link.symlink_to(largest.name)
    if distilled.exists():  # the largest model may have changed: select again
        shutil.rmtree(distilled)
    steps.run(
        "distilled_selection",
        False,
        lambda: select(
            out,
            distilled,
            args.max_tokens,
            "--scorer",
            "distilled",
            "--distilled-model",
            str(largest),
        ),
    )
    compared: dict = {}
    steps.run("compare", False, lambda: compared.update(heldout_comparison(out, largest)))
    result = {
        **report_head("distill_curve", "cpu", load_start=load_start),
        "settings": {
            "docs_per_domain": args.docs_per_domain,
            "chunk_chars": args.chunk_chars,
            "seed": args.seed,
            "max_tokens": args.max_tokens,
            "heldout_share": args.heldout_share,
            "group_key": args.group_key,
            "selector": DEFAULT_MODEL,
        },
        "step_seconds": steps.seconds,
        "this_run_seconds": round(time.monotonic() - started, 1),
        "curve": points,
        "compare_heldout": {
            "note": "ai-filters compare --only-ids: the two selections made again among the "
            "held-out documents (each scorer's top fraction of each domain's held-out documents, "
            "thresholds from them alone)",
            "model": str(largest),
            "domains": compared,
        },
    }
    (out / "curve.json").write_text(json.dumps(result, indent=1) + "\n")
    plot_curve(points, out / "curve.png")
    copy = result_path(args.results_dir, "distill_curve", "cpu")
    shutil.copy(out / "curve.json", copy)
    shutil.copy(out / "curve.png", copy.with_suffix(".png"))
    print(f"wrote {out / 'curve.json'}, {out / 'curve.png'} and their copies in {args.results_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

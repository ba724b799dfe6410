"""``ai-filters distill``: train a fast text model on a selection's scores."""

from __future__ import annotations

import argparse
from pathlib import Path

from ai_filters.cli.common import HelpFormatter
from ai_filters.distill.groups import DEFAULT_GROUP_KEY, NO_GROUPS

DISTILL_HELP = """\
Train a fast text model to rank documents as a selection's scorer ranked them, so that the
'distilled' scorer of pipelines/smollm_select.py can select from a whole corpus at CPU speed
after the selector scored only a sample of it.

SCORED_OUT is an output folder of pipelines/smollm_select.py (its scored/<domain>/*.jsonl.gz,
scorer.json and, for AttentionInfluence, heads.json). A share of its documents is held out,
whole groups at a time: documents from one source (pieces of one text, pages of one site)
share words and names, so a model measured on pieces of texts it trained on is measured on
documents it has nearly seen. --group-key KEY names the group of a document:

  source_text  (default) the metadata field of that name: the text a piece of the local
               corpus (ai_filters/demo/corpus.py, the demo's) was cut from
  url_host     the host of metadata['url'] (web data such as FineWeb), as urllib.parse
               gives it: lower-cased, www.example.org and example.org are two groups
  none         no groups: every document is held out or not on its own
  any other    the metadata field of that name, its value as a string

A document without the key (missing, null or empty; for url_host no URL with a host) is its
own group. A group is held out when a hash of it (salt and group; its id for a document of
its own) is below --heldout-share: the same groups on every run, so the share is a share of
groups. From the others the model learns their rank within their domain: per domain, a
ridge regression on hashed word 1-2-grams and a few statistics of the text (scikit-learn),
and a pooled one for documents of domains it has no model for.

Writes MODEL_DIR/distilled.json (the record: scorer, selector and heads fingerprint,
documents per domain, fraction, held-out rule, group key and the groups on each side, library
and version, settings, and the held-out agreement: top-fraction Jaccard and Spearman per
domain), weights.npy, heldout_ids.txt, training_ids.txt (the ids the model was fitted on) and
heldout.parquet (held-out id, domain, score, prediction).

Then: python pipelines/smollm_select.py --scorer distilled --distilled-model MODEL_DIR ...
and:  ai-filters compare ai=SCORED_OUT distilled=OUT --only-ids MODEL_DIR --out DIR"""


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Register ``distill`` (``args.run(args)`` runs it)."""
    parser = commands.add_parser(
        "distill",
        formatter_class=HelpFormatter,
        help="train a fast text model on a selection's scores",
        description=DISTILL_HELP,
    )
    parser.add_argument("selection", metavar="SCORED_OUT", help="selection output folder")
    parser.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder to write")
    parser.add_argument(
        "--fraction",
        type=float,
        default=None,
        help="top fraction per domain of the held-out agreement (None: the selection's)",
    )
    parser.add_argument("--heldout-share", type=float, default=0.2, help="share of groups held out")
    parser.add_argument(
        "--group-key",
        default=DEFAULT_GROUP_KEY,
        metavar="KEY",
        help="what holds documents together: a metadata field, 'url_host' or 'none' (above)",
    )
    parser.add_argument("--salt", default="heldout", help="salt of the held-out hash")
    parser.add_argument(
        "--max-train",
        type=int,
        default=None,
        metavar="N",
        help="train on at most N held-in documents (None: all of them)",
    )
    parser.add_argument(
        "--alpha", type=float, default=1.0, help="regularisation strength of the linear model"
    )
    parser.add_argument(
        "--pooled-only",
        action="store_true",
        help="one model for all domains instead of one per domain",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a model already in MODEL_DIR"
    )
    parser.set_defaults(run=run_distill)


def run_distill(args: argparse.Namespace) -> int:
    from ai_filters.distill import RECORD_FILE, TrainingSettings, distill, save

    out = Path(args.out)
    if (out / RECORD_FILE).exists() and not args.overwrite:
        raise ValueError(f"{out} already holds a distilled model; give --overwrite to replace it")
    if args.fraction is not None and not 0 < args.fraction <= 1:
        raise ValueError(f"--fraction must be in (0, 1], got {args.fraction}")
    settings = TrainingSettings(
        alpha=args.alpha,
        per_domain=not args.pooled_only,
        heldout_share=args.heldout_share,
        salt=args.salt,
        group_key=args.group_key,
        max_train=args.max_train,
    )
    result = distill(args.selection, settings, args.fraction)
    save(result, out)
    print(summary(result.record, out))
    return 0


def summary(record: dict, out: Path) -> str:
    """What was trained on what, and the held-out agreement, in a few lines."""
    measured, trained = record["heldout_agreement"], record["trained_on"]
    holdout = record["holdout"]
    lines = [
        f"distilled {trained['scorer']} ({trained['selection']}) into {out}: "
        f"{record['training']['documents']} training documents "
        f"({holdout['training_groups']} groups by '{holdout['group_key']}'), "
        f"{holdout['documents']} held out ({holdout['heldout_groups']} groups), "
        f"{len(record['model']['domains'])} models "
        f"({', '.join(record['model']['domains'])}), {record['training']['seconds']:.1f} s",
        f"held-out agreement, top {measured['fraction']:g} of each domain "
        "(Jaccard, chance, Spearman):",
    ]
    for domain, row in measured["domains"].items():
        correlation = "n/a" if row["spearman"] is None else f"{row['spearman']:+.3f}"
        lines.append(
            f"  {domain}: {row['jaccard']:.3f} (chance {row['chance_jaccard']:.3f}), "
            f"{correlation} over {row['documents']} documents"
        )
    overall = "n/a" if measured["jaccard"] is None else f"{measured['jaccard']:.3f}"
    mean = "n/a" if measured["mean_spearman"] is None else f"{measured['mean_spearman']:+.3f}"
    lines.append(f"  all domains: Jaccard {overall}, mean Spearman {mean}")
    without = holdout["documents_without_group"]
    if without and holdout["group_key"] != NO_GROUPS:
        total = holdout["documents"] + record["training"]["documents"]
        lines.append(
            f"note: {without} of {total} documents have no '{holdout['group_key']}': each is "
            "its own group, held out or not alone (--group-key names another field)"
        )
    return "\n".join(lines)

"""The dataset card of a published selection: YAML configs and the text of
``templates/dataset_card.md``, filled in from the selection folder.

The card names the scorer that made the selection (the method or a control, from
``scorer.json``) and its score field, shows the documents and tokens kept per domain, the score
statistics, the selector (model, fingerprint and heads, for the scorers that mask heads), the
commands that made it, how to load it, and what it does not show.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from importlib.resources import files
from pathlib import Path
from string import Template

from huggingface_hub import DatasetCard, DatasetCardData

from ai_filters.blocks.registry import SCORERS
from ai_filters.engine.heads_file import RetrievalHeads
from ai_filters.fields import (
    DOCUMENT_TOKENS_KEY,
    LOSS_BASE_KEY,
    LOSS_REF_KEY,
    PERPLEXITY_SCORE_KEY,
    RANDOM_SCORE_KEY,
    SCORE_KEY,
    SCORED_TOKENS_KEY,
)
from ai_filters.markdown import markdown_table
from ai_filters.selection.folder import ScorerRecord, SelectionFolder
from ai_filters.selection.report import format_table

TOKEN_ENV = "HF_TOKEN"
METHOD = "attention_influence"  # the scorer of the paper; the others are its controls
HISTOGRAM = "figures/score_histogram.png"
PLACEHOLDER_REPO = "ORG/NAME"
LANGUAGES = ["en"]
TAGS = ["attention-influence", "data-selection", "pretraining", "datatrove"]
TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{20,}")
SIZE_CATEGORIES = [
    (10**3, "n<1K"),
    (10**4, "1K<n<10K"),
    (10**5, "10K<n<100K"),
    (10**6, "100K<n<1M"),
    (10**7, "1M<n<10M"),
    (10**8, "10M<n<100M"),
    (10**9, "100M<n<1B"),
    (10**10, "1B<n<10B"),
    (10**11, "10B<n<100B"),
    (10**12, "100B<n<1T"),
]
FIELD_MEANINGS = {
    "domain": "the document's domain",
    SCORE_KEY: "the score, `(ai_loss_ref - ai_loss_base) / ai_loss_base`",
    PERPLEXITY_SCORE_KEY: "the score, `-ai_loss_base`",
    RANDOM_SCORE_KEY: "the score, uniform in [0, 1) from a hash of the seed and the id",
    LOSS_BASE_KEY: "mean next-token loss of the selector",
    LOSS_REF_KEY: "the same with the retrieval heads masked",
    SCORED_TOKENS_KEY: "tokens scored",
    DOCUMENT_TOKENS_KEY: "tokens of the whole document",
}


def size_category(documents: int) -> str:
    """The Hub's ``size_categories`` label for ``documents`` rows."""
    return next((label for limit, label in SIZE_CATEGORIES if documents < limit), "n>1T")


def _config(name: str, path: str) -> dict:
    return {"config_name": name, "data_files": [{"split": "train", "path": path}]}


def card_data(
    domains: list[str], documents: int, scored: int, license: str, pretty_name: str
) -> DatasetCardData:
    """The card's YAML: a config per domain, ``default`` with every domain, and ``scores`` with
    the score of every scored document (``scored`` rows; the size category counts them)."""
    configs = [_config(name, f"data/{name}/*.parquet") for name in domains]
    configs.append(_config("default", "data/*/*.parquet"))
    configs.append(_config("scores", "scores/*/*.parquet"))
    return DatasetCardData(
        license=license,
        language=LANGUAGES,
        task_categories=["text-generation"],
        tags=TAGS,
        size_categories=[size_category(max(documents, scored))],
        pretty_name=pretty_name,
        configs=configs,
    )


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def numbers_table(thresholds: dict, report: dict, rows: dict[str, int]) -> str:
    """Documents and tokens per domain before and after selection, thresholds, ties."""
    header = ["domain", "read", "skipped", "scored", "selected", "documents kept"]
    header += ["tokens scored", "tokens selected", "tokens kept", "threshold", "ties added"]
    total = {"read": 0, "skipped": 0, "documents": 0, "selected": 0, "tokens": 0, "kept": 0}
    lines = []
    for domain, entry in thresholds.items():
        counts = report.get("domains", {}).get(domain, {})
        row = {
            "read": counts.get("read", entry.documents),
            "skipped": counts.get("skipped", 0),
            "documents": entry.documents,
            "selected": rows.get(domain, 0),
            "tokens": entry.tokens,
            "kept": entry.tokens_selected,
        }
        total = {key: total[key] + value for key, value in row.items()}
        lines.append(_table_row(domain, row, f"{entry.threshold:.4f}", str(entry.tied_extra)))
    lines.append(_table_row("**all**", total, "-", "-"))
    return markdown_table(header, lines, align="l" + "r" * (len(header) - 1))


def _table_row(name: str, row: dict[str, int], threshold: str, ties: str) -> list[str]:
    return [
        name,
        f"{row['read']:,}",
        f"{row['skipped']:,}",
        f"{row['documents']:,}",
        f"{row['selected']:,}",
        _share(row["selected"], row["documents"]),
        f"{row['tokens']:,}",
        f"{row['kept']:,}",
        _share(row["kept"], row["tokens"]),
        threshold,
        ties,
    ]


def scoring_settings(folder: SelectionFolder) -> dict | None:
    """The scorer block's settings as datatrove recorded them in the scoring stage's
    ``executor.json`` (the step after the reader), if the file is there."""
    record = "logs/score/executor.json"
    if not folder.exists(record):
        return None
    with folder.open(record) as file:
        steps = json.load(file).get("pipeline", [])
    if len(steps) < 2:
        return None
    settings = steps[1].get("config") or steps[1]
    return {key: value for key, value in settings.items() if not key.startswith("_")}


def selector_section(heads: RetrievalHeads | None, settings: dict | None) -> str:
    """Markdown list: the selector model, its fingerprint and heads (when the scorer masks
    heads), and the scorer's settings."""
    lines = []
    if heads is not None:
        selected = ", ".join(f"({layer}, {head})" for layer, head in heads.selected)
        probes = ", ".join(f"`{key}={value}`" for key, value in sorted(heads.settings.items()))
        lines += [
            f"- model: `{heads.model}` ({heads.num_layers} layers x {heads.num_heads} query "
            f"heads, {heads.num_kv_heads} KV heads)",
            f"- weights fingerprint: `{heads.model_fingerprint}`",
            f"- retrieval heads masked (layer, head), best first: {selected}",
            f"- head detection (retrieval probes): {probes}",
        ]
    if settings:
        scored = ", ".join(
            f"`{key}={value}`" for key, value in sorted(settings.items()) if _plain(value)
        )
        lines.append(f"- scoring: {scored}")
    return "\n".join(lines) or "- not recorded"


def _plain(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def columns_text(columns: list[str]) -> str:
    """The columns of the published documents, known ones with their meaning."""
    described = [
        f"`{name}` ({FIELD_MEANINGS[name]})" if name in FIELD_MEANINGS else f"`{name}`"
        for name in columns
        if name not in ("text", "id")
    ]
    return ", ".join(described) + " (datatrove's local `file_path` is removed)"


def default_commands(
    folder: SelectionFolder,
    out_dir: str | Path,
    hub_dir: str | Path,
    repo_id: str | None,
    scorer: str,
    fraction: float,
) -> list[str]:
    """The commands that make this folder with the pipeline's defaults.

    ``--demo`` is added when OUT holds the demo corpus, ``--scorer`` for a control,
    ``--fraction`` when it is not 0.2; other pipeline options are not recorded in OUT, so pass
    the exact commands when they differed.
    """
    out = shlex.quote(str(out_dir))
    hub = shlex.quote(str(hub_dir))
    repo = repo_id or PLACEHOLDER_REPO
    select = f"python pipelines/smollm_select.py --out {out}"
    if folder.exists("corpus"):
        select += " --demo"
    if scorer != METHOD:
        select += f" --scorer {scorer}"
    if fraction != 0.2:
        select += f" --fraction {fraction:g}"
    return [
        select,
        f"ai-filters hub-folder {out} --hub-dir {hub} --repo {repo}",
        f"ai-filters push {hub} --repo {repo}",
    ]


def check_no_token(text: str, token_env: str = TOKEN_ENV) -> None:
    """Raise ``ValueError`` if ``text`` holds a Hugging Face token (``hf_...`` or the value of
    ``token_env``); the error never quotes it."""
    secret = os.environ.get(token_env) or ""
    if TOKEN_PATTERN.search(text) or (len(secret) >= 8 and secret in text):
        raise ValueError(
            "the dataset card would contain a Hugging Face token (in the commands?); "
            f"pass tokens through the {token_env} environment variable, never on a command line"
        )


def render_card(values: dict[str, str], data: DatasetCardData) -> DatasetCard:
    """The card: ``data`` as YAML, then the template filled with ``values``; raises
    ``ValueError`` if it would hold a token."""
    template = Template(files("ai_filters").joinpath("templates/dataset_card.md").read_text())
    content = f"---\n{data.to_yaml()}\n---\n\n{template.substitute(values)}"
    check_no_token(content)
    return DatasetCard(content)


def caveats(record: ScorerRecord, statistics: dict, fraction: str, token_share: str) -> list[str]:
    """The card's caveats for a selection by ``record``'s scorer."""
    lines = [
        "Scores are comparable only *within* a domain: losses of code, math, textbooks and web "
        "text differ, so each domain has its own threshold. Do not rank documents of different "
        "domains against each other.",
        f"The top {fraction} of documents holds {token_share} of the tokens: compare subsets "
        "by tokens, not by documents.",
    ]
    if statistics:
        lines.append(
            f"The score `{record.score_key}` moves with the base loss and with length (the "
            "`spearman_` columns); `ppl_overlap` shows how much of the selection a plain "
            "perplexity filter would also pick."
        )
    if record.name == METHOD:
        lines.append(
            "The paper has no random-subset control: its model trains on the full corpus plus "
            "the selected subset against the full corpus alone, so part of the gain may come "
            "from up-sampling any subset. Before crediting the selection, train the same recipe "
            "with the controls: a random subset of the same size per domain and a "
            "perplexity-filter subset (lowest `ai_loss_base`), both drawn from the pipeline's "
            "`scored/` documents (`pipelines/smollm_select.py --scorer random` and `--scorer "
            "perplexity`); for the heads, a selector with as many random heads masked."
        )
    else:
        lines.append(
            f"This is a control selection (`{record.name}`): it answers whether "
            "AttentionInfluence's subset helps more than this one when trained on with the "
            "same recipe (corpus + subset of the same size per domain)."
        )
    lines.append("The license of the source corpora applies to the documents.")
    return lines


def card_values(
    selection, rows: dict[str, int], columns: list[str], commands: list[str], repo_id: str
) -> dict[str, str]:
    """What the template's placeholders become, for ``selection`` (a
    :class:`ai_filters.hub.folder.Selection`) whose shards hold ``rows`` per domain in
    ``columns``."""
    record = selection.scorer
    thresholds = selection.thresholds
    fraction = " / ".join(f"{f:.0%}" for f in sorted({e.fraction for e in thresholds.values()}))
    tokens = sum(e.tokens for e in thresholds.values())
    kept = sum(e.tokens_selected for e in thresholds.values())
    statistics = selection.report.get("statistics") or {}
    domains = list(rows)
    scorer = SCORERS.get(record.name)
    return {
        "pretty_name": selection.pretty_name(repo_id),
        "fraction": fraction,
        "domains": ", ".join(domains),
        "scorer_text": scorer.card_text if scorer else f"the score `{record.score_key}`.",
        "columns": columns_text(columns),
        "score_columns": ", ".join(f"`{name}`" for name in selection.fields),
        "scored": f"{sum(e.documents for e in thresholds.values()):,}",
        "pipeline_fraction": f"{min(e.fraction for e in thresholds.values()):g}",
        "caveats": "\n".join(
            f"- {line}" for line in caveats(record, statistics, fraction, _share(kept, tokens))
        ),
        "numbers_table": numbers_table(thresholds, selection.report, rows),
        "score_key": record.score_key,
        "histogram": HISTOGRAM,
        "statistics": (
            "Score statistics of the scored documents. `spearman_score_loss` / "
            "`spearman_score_tokens`: rank correlation of the score with the base loss and "
            f"with length; `ppl_overlap`: share of the top {fraction} that a lowest-loss "
            "perplexity filter of the same size also picks.\n\n" + format_table(statistics)
            if statistics
            else ""
        ),
        "selector": selector_section(selection.heads, selection.scoring_settings),
        "commands": "\n".join(commands),
        "example": domains[0],
        "repo_id": repo_id,
    }

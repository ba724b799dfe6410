"""Publish a selection on the Hugging Face Hub: a Hub-layout folder with its card, and the push.

:func:`build_hub_folder` turns the output folder ``OUT`` of ``pipelines/smollm_select.py`` into
what a dataset repository holds::

    DIR/README.md                                      the dataset card
    DIR/data/<domain>/train-00000-of-00002.parquet     the selected documents
    DIR/figures/score_histogram.png                    scores per domain, threshold marked

The card's YAML declares one config per domain plus ``default`` (every domain), so
``load_dataset("ORG/NAME", "web")`` loads one domain. :func:`push_folder` uploads the folder
(``create_repo``, ``create_branch``, ``upload_folder``) and retries when the Hub is busy.
Tokens only travel through :class:`huggingface_hub.HfApi`; nothing here writes or prints one.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard, DatasetCardData, HfApi
from huggingface_hub.errors import HfHubHTTPError

from ai_filters.report import format_table

TOKEN_ENV = "HF_TOKEN"
HISTOGRAM = "figures/score_histogram.png"
PLACEHOLDER_REPO = "ORG/NAME"
LANGUAGES = ["en"]
TAGS = ["attention-influence", "data-selection", "pretraining", "datatrove"]
# datatrove's readers record the local file a document came from; it means nothing on the Hub
DROPPED_METADATA = ("file_path",)
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
CITATION = """\
```bibtex
@article{hua2025attentioninfluence,
  title   = {AttentionInfluence: Adopting Attention Head Influence for Weak-to-Strong
             Pretraining Data Selection},
  author  = {Hua, Kai and Wu, Steven and Zhang, Ge and Shen, Ke},
  journal = {arXiv preprint arXiv:2505.07293},
  year    = {2025}
}
```"""

T = TypeVar("T")


class HubPushError(RuntimeError):
    """The Hub refused the push or stayed unavailable; the message says what to do next."""


@dataclass(frozen=True)
class Selection:
    """What the selection pipeline left in its output folder."""

    out_dir: Path
    thresholds: dict[str, dict]
    report: dict
    heads: dict
    shards: dict[str, list[Path]]  # the selected parquet shards of each domain, sorted


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: run pipelines/smollm_select.py to completion first"
        )
    return json.loads(path.read_text())


def load_selection(out_dir: str | Path) -> Selection:
    """Read ``thresholds.json``, ``report.json``, ``heads.json`` and the selected shards.

    Raises ``FileNotFoundError`` when a file is missing and ``ValueError`` when there is no
    domain, a domain has selected shards but no threshold, or one is named ``default`` (the
    config of all domains).
    """
    out = Path(out_dir)
    thresholds = _read_json(out / "thresholds.json")
    report = _read_json(out / "report.json")
    heads = _read_json(out / "heads.json")
    shards: dict[str, list[Path]] = {}
    for path in sorted((out / "selected" / "data").glob("*/*.parquet")):
        shards.setdefault(path.parent.name, []).append(path)
    unknown = sorted(set(shards) - set(thresholds))
    if unknown:
        raise ValueError(f"selected shards of domains {unknown} have no threshold in {out}")
    if not thresholds:
        raise ValueError(f"{out / 'thresholds.json'} lists no domain")
    if "default" in thresholds:
        raise ValueError("a domain may not be named 'default': that config holds every domain")
    return Selection(out, thresholds, report, heads, shards)


# --- data ----------------------------------------------------------------------------------------


def _without_dropped(field: pa.Field) -> pa.Field:
    if field.name != "metadata" or not pa.types.is_struct(field.type):
        return field
    kept = [child for child in field.type if child.name not in DROPPED_METADATA]
    return pa.field(field.name, pa.struct(kept), nullable=field.nullable)


def unified_schema(paths: list[Path]) -> pa.Schema:
    """One schema for every shard: fields of all shards (struct fields merged), minus
    ``metadata.file_path``. Shards of different domains often carry different metadata."""
    merged = pa.unify_schemas(
        [pq.read_schema(path).remove_metadata() for path in paths], promote_options="permissive"
    )
    return pa.schema([_without_dropped(field) for field in merged])


def _conform(array: pa.Array, target: pa.DataType) -> pa.Array:
    """``array`` cast to ``target``; struct fields it lacks become nulls, extra ones are dropped."""
    if not pa.types.is_struct(target) or not pa.types.is_struct(array.type):
        return array.cast(target)
    names = {child.name for child in array.type}
    children = [
        _conform(array.field(child.name), child.type)
        if child.name in names
        else pa.nulls(len(array), child.type)
        for child in target
    ]
    return pa.StructArray.from_arrays(children, fields=list(target), mask=array.is_null())


def _conformed_batches(path: Path, schema: pa.Schema):
    for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
        columns = [
            _conform(batch.column(field.name), field.type)
            if field.name in batch.schema.names
            else pa.nulls(batch.num_rows, field.type)
            for field in schema
        ]
        yield pa.RecordBatch.from_arrays(columns, schema=schema)


def copy_domain(paths: list[Path], schema: pa.Schema, folder: Path) -> int:
    """Rewrite ``paths`` as ``folder/train-0000i-of-0000n.parquet`` in ``schema``; rows written."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = 0
    for index, path in enumerate(paths):
        target = folder / f"train-{index:05d}-of-{len(paths):05d}.parquet"
        with pq.ParquetWriter(target, schema) as writer:
            for batch in _conformed_batches(path, schema):
                writer.write_batch(batch)
                rows += batch.num_rows
    return rows


def copy_shards(selection: Selection, data_dir: Path) -> dict[str, int]:
    """Copy every domain's selected shards under ``data_dir/<domain>/``; rows per domain.

    Raises ``ValueError`` when a domain's row count differs from its ``documents_selected``
    in ``thresholds.json`` (an unfinished select stage must not be published).
    """
    schema = unified_schema([path for paths in selection.shards.values() for path in paths])
    rows = {
        domain: copy_domain(paths, schema, data_dir / domain)
        for domain, paths in selection.shards.items()
    }
    for domain, threshold in selection.thresholds.items():
        if rows.get(domain, 0) != threshold["documents_selected"]:
            raise ValueError(
                f"{domain}: the selected shards hold {rows.get(domain, 0)} documents, "
                f"thresholds.json says {threshold['documents_selected']}: rerun the select stage"
            )
    return rows


# --- figure --------------------------------------------------------------------------------------


def read_scores(out_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """``{domain: {"selected": scores, "rejected": scores}}`` from OUT's parquet shards."""
    scores: dict[str, dict[str, list[np.ndarray]]] = {}
    for kind in ("selected", "rejected"):
        for path in sorted((out_dir / kind / "data").glob("*/*.parquet")):
            column = pq.read_table(path, columns=["metadata.attention_influence"]).column(0)
            values = column.to_numpy(zero_copy_only=False).astype(np.float64)
            scores.setdefault(path.parent.name, {}).setdefault(kind, []).append(values)
    return {
        domain: {
            kind: np.concatenate(parts.get(kind) or [np.empty(0)])
            for kind in ("selected", "rejected")
        }
        for domain, parts in sorted(scores.items())
    }


def plot_score_histograms(
    scores: dict[str, dict[str, np.ndarray]], thresholds: dict[str, dict], path: Path
) -> None:
    """One panel per domain: stacked histogram of selected and rejected scores, threshold line."""
    from matplotlib.figure import Figure

    columns = min(len(scores), 2)
    rows = -(-len(scores) // columns)
    figure = Figure(figsize=(5.0 * columns, 3.4 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, (domain, parts) in zip(axes, scores.items(), strict=False):
        values = np.concatenate([parts["rejected"], parts["selected"]])
        bins = np.histogram_bin_edges(values, bins=min(60, max(20, int(np.sqrt(len(values))))))
        axis.hist(
            [parts["rejected"], parts["selected"]],
            bins=bins,
            stacked=True,
            color=["#b0b0b0", "#d62728"],
            label=["rejected", "selected"],
        )
        axis.axvline(
            thresholds[domain]["threshold"], color="black", linestyle="--", label="threshold"
        )
        axis.set_title(f"{domain} ({len(parts['selected'])} of {len(values)} selected)")
        axis.set_xlabel("AttentionInfluence")
        axis.set_ylabel("documents")
        axis.legend(fontsize="small")
    for axis in axes[len(scores) :]:
        axis.set_visible(False)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


# --- card ----------------------------------------------------------------------------------------


def size_category(documents: int) -> str:
    """The Hub's ``size_categories`` label for ``documents`` rows."""
    return next((label for limit, label in SIZE_CATEGORIES if documents < limit), "n>1T")


def card_data(
    domains: list[str], documents: int, license: str, pretty_name: str
) -> DatasetCardData:
    """The card's YAML: a config per domain plus ``default`` with every domain."""
    configs = [
        {"config_name": name, "data_files": [{"split": "train", "path": f"data/{name}/*.parquet"}]}
        for name in domains
    ]
    configs.append(
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/*/*.parquet"}]}
    )
    return DatasetCardData(
        license=license,
        language=LANGUAGES,
        task_categories=["text-generation"],
        tags=TAGS,
        size_categories=[size_category(documents)],
        pretty_name=pretty_name,
        configs=configs,
    )


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def numbers_table(selection: Selection, rows: dict[str, int]) -> str:
    """Markdown table: documents and tokens per domain before and after selection, thresholds."""
    lines = [
        "| domain | read | skipped | scored | selected | documents kept | tokens scored "
        "| tokens selected | tokens kept | threshold | ties added |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    total = {"read": 0, "skipped": 0, "documents": 0, "selected": 0, "tokens": 0, "kept": 0}
    for domain, entry in selection.thresholds.items():
        counts = selection.report.get("domains", {}).get(domain, {})
        row = {
            "read": counts.get("read", entry["documents"]),
            "skipped": counts.get("skipped", 0),
            "documents": entry["documents"],
            "selected": rows.get(domain, 0),
            "tokens": entry["tokens"],
            "kept": entry["tokens_selected"],
        }
        total = {key: total[key] + value for key, value in row.items()}
        lines.append(_table_row(domain, row, f"{entry['threshold']:.4f}", str(entry["tied_extra"])))
    lines.append(_table_row("**all**", total, "-", "-"))
    return "\n".join(lines)


def _table_row(name: str, row: dict[str, int], threshold: str, ties: str) -> str:
    cells = [
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
    return "| " + " | ".join(cells) + " |"


def scoring_settings(out_dir: Path) -> dict | None:
    """The scorer's settings as datatrove recorded them (``logs/score/executor.json``), if any."""
    path = out_dir / "logs" / "score" / "executor.json"
    if not path.is_file():
        return None
    steps = json.loads(path.read_text()).get("pipeline", [])
    return next(
        (step["config"] for step in steps if "heads_path" in step and "config" in step), None
    )


def selector_section(heads: dict, scoring: dict | None) -> str:
    """Markdown: the selector model, its fingerprint, selected heads, probe and scoring settings."""
    selected = ", ".join(f"({layer}, {head})" for layer, head in heads["selected"])
    settings = ", ".join(f"`{key}={value}`" for key, value in sorted(heads["settings"].items()))
    lines = [
        f"- model: `{heads['model']}` ({heads['num_layers']} layers x {heads['num_heads']} "
        f"query heads, {heads['num_kv_heads']} KV heads)",
        f"- weights fingerprint: `{heads.get('model_fingerprint', 'not recorded')}`",
        f"- retrieval heads masked (layer, head), best first: {selected}",
        f"- head detection (retrieval probes): {settings}",
    ]
    if scoring:
        scored = ", ".join(f"`{key}={value}`" for key, value in sorted(scoring.items()))
        lines.append(f"- scoring: {scored}")
    return "\n".join(lines)


def default_commands(
    out_dir: str | Path, hub_dir: str | Path, repo_id: str | None, selection: Selection
) -> list[str]:
    """The commands that make this folder with the pipeline's defaults.

    ``--demo`` is added when OUT holds the demo corpus, ``--fraction`` when it is not 0.2; other
    pipeline options are not recorded in OUT, so pass the exact commands when they differed.
    """
    out = shlex.quote(str(out_dir))
    hub = shlex.quote(str(hub_dir))
    repo = repo_id or PLACEHOLDER_REPO
    select = f"python pipelines/smollm_select.py --out {out}"
    if (Path(out_dir) / "corpus").is_dir():
        select += " --demo"
    fractions = {entry["fraction"] for entry in selection.thresholds.values()}
    if fractions and fractions != {0.2}:
        select += f" --fraction {min(fractions):g}"
    return [
        select,
        f"ai-filters hub-folder {out} --hub-dir {hub} --repo {repo}",
        f"ai-filters push {hub} --repo {repo}",
    ]


def _token_share(selection: Selection) -> str:
    entries = selection.thresholds.values()
    return _share(sum(e["tokens_selected"] for e in entries), sum(e["tokens"] for e in entries))


def _fraction(selection: Selection) -> str:
    fractions = sorted({entry["fraction"] for entry in selection.thresholds.values()})
    return " / ".join(f"{fraction:.0%}" for fraction in fractions)


def card_body(
    selection: Selection, rows: dict[str, int], commands: list[str], repo_id: str, pretty_name: str
) -> str:
    """The card's markdown below the YAML (see the module docstring for what it states)."""
    fraction = _fraction(selection)
    domains = list(rows)
    example = domains[0]
    statistics = selection.report.get("statistics") or {}
    scoring = scoring_settings(selection.out_dir)
    sections = [
        f"# {pretty_name}",
        f"The top {fraction} of the documents of each domain ({', '.join(domains)}) by "
        "**AttentionInfluence** ([arXiv 2505.07293](https://arxiv.org/abs/2505.07293)). "
        "A small pretrained language model, the *selector*, reads every document twice: "
        "as it is, and with its retrieval heads masked (their attention spread uniformly "
        "over the visible prefix). The score is the relative rise of the mean next-token "
        "loss, `(loss_ref - loss_base) / loss_base`; the paper reads a higher score as a "
        "more reasoning-intensive document. Each domain is a config; `default` holds "
        "all of them.",
        "Columns: `text`, `id` and `metadata` with `domain`, `attention_influence`, "
        "`ai_loss_base` / `ai_loss_ref` (the two losses), `ai_n_tokens` (tokens scored) and "
        "`ai_doc_tokens` (tokens of the whole document), plus the source's own fields "
        "(datatrove's local `file_path` is removed).",
        "## Selection",
        "Documents and tokens (the selector's tokenizer, whole documents) per domain before "
        "and after selection. A document is kept when its score reaches its domain's "
        "threshold; documents tied with the threshold are all kept (`ties added`).",
        numbers_table(selection, rows),
        f"![AttentionInfluence per domain]({HISTOGRAM})",
    ]
    if statistics:
        sections += [
            "Score statistics of the scored documents. `spearman_score_loss` / "
            "`spearman_score_tokens`: rank correlation of the score with the base loss and with "
            f"length; `ppl_overlap`: share of the top {fraction} that a lowest-loss "
            "perplexity filter of the same size also picks.",
            format_table(statistics),
        ]
    sections += [
        "## Selector",
        selector_section(selection.heads, scoring),
        "## How it was made",
        "```bash\n" + "\n".join(commands) + "\n```",
        "## Usage",
        "```python\nfrom datasets import load_dataset\n\n"
        f'{example} = load_dataset("{repo_id}", "{example}", split="train")\n'
        f'everything = load_dataset("{repo_id}", split="train")  # config "default"\n```',
        "The paper pretrains on the full corpus *plus* this subset (selected documents are "
        "seen twice), not on the subset alone.",
        "## Caveats",
        caveats(fraction, _token_share(selection)),
        "## Citation",
        CITATION,
    ]
    return "\n\n".join(sections) + "\n"


def caveats(fraction: str, token_share: str) -> str:
    """Markdown list of what the selection does and does not show."""
    return "\n".join(
        [
            "- Scores are comparable only *within* a domain: losses of code, math, textbooks "
            "and web text differ, so each domain has its own threshold. Do not rank documents "
            "of different domains against each other.",
            f"- The top {fraction} of documents holds {token_share} of the tokens: compare "
            "subsets by tokens, not by documents.",
            "- The score falls with the base loss and moves with length (the `spearman_` "
            "columns); `ppl_overlap` shows how much of the selection a plain perplexity "
            "filter would also pick.",
            "- The paper has no random-subset control: its model trains on the full corpus "
            "plus the selected subset against the full corpus alone, so part of the gain may "
            "come from up-sampling any subset. Before crediting the selection, train the same "
            "recipe with the controls: a random subset of the same size per domain and a "
            "perplexity-filter subset (lowest `ai_loss_base`), both drawn from the pipeline's "
            "`scored/` documents; for the heads, a selector with as many random heads masked.",
            "- The license of the source corpora applies to the documents.",
        ]
    )


def check_no_token(text: str, token_env: str = TOKEN_ENV) -> None:
    """Raise ``ValueError`` if ``text`` holds a Hugging Face token (``hf_...`` or the value of
    ``token_env``); the error never quotes it."""
    secret = os.environ.get(token_env) or ""
    if TOKEN_PATTERN.search(text) or (len(secret) >= 8 and secret in text):
        raise ValueError(
            "the dataset card would contain a Hugging Face token (in the commands?); "
            f"pass tokens through the {token_env} environment variable, never on a command line"
        )


def render_card(
    selection: Selection,
    rows: dict[str, int],
    commands: list[str],
    license: str,
    repo_id: str | None,
) -> DatasetCard:
    """The dataset card (YAML + markdown); raises ``ValueError`` if it would hold a token."""
    name = repo_id.split("/")[-1] if repo_id else "AttentionInfluence selection"
    pretty_name = f"{name} (AttentionInfluence selection)" if repo_id else name
    data = card_data(list(rows), sum(rows.values()), license, pretty_name)
    body = card_body(selection, rows, commands, repo_id or PLACEHOLDER_REPO, pretty_name)
    content = f"---\n{data.to_yaml()}\n---\n\n{body}"
    check_no_token(content)
    return DatasetCard(content)


# --- folder --------------------------------------------------------------------------------------


def _write_folder(
    selection: Selection, folder: Path, commands: list[str], license: str, repo_id: str | None
) -> None:
    rows = copy_shards(selection, folder / "data")
    plot_score_histograms(read_scores(selection.out_dir), selection.thresholds, folder / HISTOGRAM)
    render_card(selection, rows, commands, license, repo_id).save(folder / "README.md")


def _replace(staging: Path, target: Path) -> None:
    """Move ``staging`` to ``target``; an existing ``target`` is removed only once replaced."""
    if not target.exists():
        staging.rename(target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    target.rename(old)
    try:
        staging.rename(target)
    except OSError:
        old.rename(target)
        raise
    shutil.rmtree(old)


def build_hub_folder(
    out_dir: str | Path,
    hub_dir: str | Path,
    commands: list[str] | None = None,
    license: str = "odc-by",
    repo_id: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the Hub folder of the selection in ``out_dir`` to ``hub_dir``; returns ``hub_dir``.

    ``commands`` are shown in the card as the commands that produced the dataset (default:
    :func:`default_commands`). Everything is built in a staging folder beside ``hub_dir`` and
    renamed at the end, so a failure leaves no partial folder. An existing ``hub_dir`` raises
    ``FileExistsError`` unless ``overwrite``; ``hub_dir`` may not contain ``out_dir``.
    """
    selection = load_selection(out_dir)
    hub = Path(hub_dir).resolve()
    if Path(out_dir).resolve().is_relative_to(hub.resolve()):
        raise ValueError(f"--hub-dir {hub} would contain the pipeline output {out_dir}")
    if hub.exists() and not overwrite:
        raise FileExistsError(f"{hub} exists; choose another --hub-dir or pass --overwrite")
    commands = commands or default_commands(out_dir, hub_dir, repo_id, selection)
    hub.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{hub.name}.", suffix=".staging", dir=hub.parent))
    try:
        _write_folder(selection, staging, commands, license, repo_id)
        staging.chmod(0o755)
        _replace(staging, hub)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return hub


# --- push ----------------------------------------------------------------------------------------


def _status(error: HfHubHTTPError) -> int | None:
    return getattr(error.response, "status_code", None)


def _retry_delay(error: HfHubHTTPError, attempt: int, backoff_seconds: float) -> float:
    """Exponential backoff, or the server's ``Retry-After`` when that is longer."""
    delay = backoff_seconds * 2**attempt
    retry_after = getattr(error.response, "headers", {}).get("retry-after", "")
    return max(delay, float(retry_after)) if retry_after.isdigit() else delay


def call_with_retries(
    call: Callable[[], T],
    what: str,
    repo_id: str,
    max_retries: int,
    backoff_seconds: float,
    sleep: Callable[[float], None],
    token_env: str,
) -> T:
    """Run ``call``; retry HTTP 429 and 5xx up to ``max_retries`` times with exponential backoff.

    HTTP 401/403 and exhausted retries raise :class:`HubPushError`; other errors propagate.
    """
    attempt = 0
    while True:
        try:
            return call()
        except HfHubHTTPError as error:
            status = _status(error)
            if status in (401, 403):
                raise HubPushError(
                    f"the Hub refused the credentials (HTTP {status}) to {what} {repo_id}: set "
                    f"{token_env} to a token with write access to that namespace "
                    "(https://huggingface.co/settings/tokens) or run `hf auth login`"
                ) from error
            if status is None or not (status == 429 or status >= 500):
                raise
            if attempt == max_retries:
                raise HubPushError(
                    f"could not {what} {repo_id}: HTTP {status} after {max_retries + 1} tries; "
                    "the Hub is busy or down, run the same command later (uploads resume)"
                ) from error
            delay = _retry_delay(error, attempt, backoff_seconds)
            attempt += 1
            print(
                f"HTTP {status} trying to {what} {repo_id}; retry {attempt}/{max_retries} "
                f"in {delay:.0f} s",
                file=sys.stderr,
            )
            sleep(delay)


def _check_folder(folder: Path, token: str | None) -> None:
    if not (folder / "README.md").is_file():
        raise FileNotFoundError(f"{folder} has no README.md: build it with `ai-filters hub-folder`")
    if token is None:
        return
    for path in folder.rglob("*"):
        if path.suffix in (".md", ".json", ".txt", ".yaml", ".yml") and token in path.read_text():
            raise HubPushError(f"{path} contains the access token; remove it before pushing")


def push_folder(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    max_retries: int = 5,
    backoff_seconds: float = 2.0,
    token_env: str = TOKEN_ENV,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Upload ``folder`` to the dataset repo ``repo_id`` and return the commit URL.

    Creates the repo (``private`` only applies to a new one) and the branch ``revision`` if
    missing, then uploads the folder with ``upload_folder`` (which commits a big folder in
    parts and resumes when re-run). ``token=None`` uses the cached login.
    Busy or failing Hub (429, 5xx): retried, see :func:`call_with_retries`; ``token_env`` is
    the variable named in authentication errors; ``sleep`` is injectable for tests.
    """
    folder = Path(folder)
    _check_folder(folder, token)
    api = HfApi(token=token)

    def retry(what: str, call: Callable[[], T]) -> T:
        return call_with_retries(
            call, what, repo_id, max_retries, backoff_seconds, sleep, token_env
        )

    retry(
        "create",
        lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True),
    )
    if revision:
        retry(
            f"create branch {revision} of",
            lambda: api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True),
        )
    commit = retry(
        "upload to",
        lambda: api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=str(folder),
            revision=revision,
            commit_message="Upload AttentionInfluence selection",
        ),
    )
    return commit.commit_url


def hf_upload_command(
    folder: str, repo_id: str, private: bool, revision: str | None, token_env: str
) -> str:
    """The ``hf upload`` command line that does what :func:`push_folder` does."""
    parts = ["hf", "upload", repo_id, folder, "--repo-type", "dataset"]
    parts += ["--private"] if private else []
    parts += ["--revision", revision] if revision else []
    command = shlex.join(parts)
    return command if token_env == TOKEN_ENV else f'{TOKEN_ENV}="${token_env}" {command}'

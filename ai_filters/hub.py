"""Publish a selection on the Hugging Face Hub: a Hub-layout folder with its card, and the push.

:func:`build_hub_folder` turns the output folder ``OUT`` of ``pipelines/smollm_select.py`` into
what a dataset repository holds::

    DIR/README.md                                      the dataset card
    DIR/data/<domain>/train-00000-of-00002.parquet     the selected documents
    DIR/figures/score_histogram.png                    scores per domain, threshold marked

The card (:mod:`ai_filters.hub_card`) declares one config per domain plus ``default`` (every
domain), so ``load_dataset("ORG/NAME", "web")`` loads one domain. Any scorer's folder can be
published (the method's or a control's): the card and the histogram name its score field.
:func:`push_folder` uploads the folder (``create_repo``, ``create_branch``, ``upload_folder``)
and retries when the Hub is busy.
Tokens only travel through :class:`huggingface_hub.HfApi`; nothing here writes or prints one.
"""

from __future__ import annotations

import os
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
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from ai_filters.heads import RetrievalHeads
from ai_filters.hub_card import (
    HISTOGRAM,
    PLACEHOLDER_REPO,
    TOKEN_ENV,
    card_data,
    card_values,
    default_commands,
    render_card,
    scoring_settings,
)
from ai_filters.layout import (
    ScorerRecord,
    SelectionFolder,
    SelectionFolderError,
    parquet_file,
    read_parquet_columns,
)
from ai_filters.scorers import SCORERS
from ai_filters.selection import DomainThreshold

# datatrove's readers record the local file a document came from; it means nothing on the Hub
DROPPED_METADATA = ("file_path",)

T = TypeVar("T")


class HubPushError(RuntimeError):
    """The Hub refused the push or stayed unavailable; the message says what to do next."""


@dataclass(frozen=True)
class Selection:
    """What a finished selection folder holds for publishing (read by :func:`load_selection`)."""

    folder: SelectionFolder
    scorer: ScorerRecord
    thresholds: dict[str, DomainThreshold]
    report: dict
    heads: RetrievalHeads | None  # for scorers that mask heads
    shards: dict[str, list[str]]  # the selected parquet shards of each domain, sorted
    scoring_settings: dict | None  # the scorer block's settings, as datatrove recorded them

    def pretty_name(self, repo_id: str | None) -> str:
        name = repo_id.split("/")[-1] if repo_id else f"{self.scorer.scorer} selection"
        return f"{name} ({self.scorer.scorer} selection)" if repo_id else name


def load_selection(out_dir: str | Path) -> Selection:
    """Read what a selection folder holds for publishing.

    Raises ``FileNotFoundError`` when a part is missing and ``ValueError`` when there is no
    domain, a domain has selected shards but no threshold, or one is named ``default`` (the
    config of all domains).
    """
    folder = SelectionFolder(out_dir)
    if not folder.exists("thresholds.json"):
        raise SelectionFolderError(
            f"{folder.thresholds_file} is missing: run pipelines/smollm_select.py to completion"
        )
    thresholds = folder.read_thresholds()
    scorer = folder.read_scorer()
    needs_heads = SCORERS[scorer.scorer].needs_heads if scorer.scorer in SCORERS else True
    shards = folder.selected_shards()
    unknown = sorted(set(shards) - set(thresholds))
    if unknown:
        raise ValueError(f"selected shards of domains {unknown} have no threshold in {out_dir}")
    if not thresholds:
        raise ValueError(f"{folder.thresholds_file} lists no domain")
    if "default" in thresholds:
        raise ValueError("a domain may not be named 'default': that config holds every domain")
    return Selection(
        folder,
        scorer,
        thresholds,
        folder.read_report(),
        folder.read_heads() if needs_heads else None,
        shards,
        scoring_settings(folder),
    )


# --- data ----------------------------------------------------------------------------------------


def _without_dropped(field: pa.Field) -> pa.Field:
    if field.name != "metadata" or not pa.types.is_struct(field.type):
        return field
    kept = [child for child in field.type if child.name not in DROPPED_METADATA]
    return pa.field(field.name, pa.struct(kept), nullable=field.nullable)


def unified_schema(paths: list[str]) -> pa.Schema:
    """One schema for every shard: fields of all shards (struct fields merged), minus
    ``metadata.file_path``. Shards of different domains often carry different metadata."""
    schemas = [parquet_file(path).schema_arrow.remove_metadata() for path in paths]
    merged = pa.unify_schemas(schemas, promote_options="permissive")
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


def _conformed_batches(path: str, schema: pa.Schema):
    for batch in parquet_file(path).iter_batches(batch_size=4096):
        columns = [
            _conform(batch.column(field.name), field.type)
            if field.name in batch.schema.names
            else pa.nulls(batch.num_rows, field.type)
            for field in schema
        ]
        yield pa.RecordBatch.from_arrays(columns, schema=schema)


def copy_domain(paths: list[str], schema: pa.Schema, folder: Path) -> int:
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


def copy_shards(selection: Selection, data_dir: Path) -> tuple[dict[str, int], pa.Schema]:
    """Copy every domain's selected shards under ``data_dir/<domain>/``; returns the rows per
    domain and the schema written.

    Raises ``ValueError`` when a domain's row count differs from its ``documents_selected``
    in ``thresholds.json`` (an unfinished select stage must not be published).
    """
    schema = unified_schema([path for paths in selection.shards.values() for path in paths])
    rows = {
        domain: copy_domain(paths, schema, data_dir / domain)
        for domain, paths in selection.shards.items()
    }
    for domain, threshold in selection.thresholds.items():
        if rows.get(domain, 0) != threshold.documents_selected:
            raise ValueError(
                f"{domain}: the selected shards hold {rows.get(domain, 0)} documents, "
                f"thresholds.json says {threshold.documents_selected}: rerun the select stage"
            )
    return rows, schema


def metadata_fields(schema: pa.Schema) -> list[str]:
    """The names of the ``metadata`` struct's fields in ``schema`` (empty without one)."""
    if "metadata" not in schema.names or not pa.types.is_struct(schema.field("metadata").type):
        return []
    return [child.name for child in schema.field("metadata").type]


# --- figure --------------------------------------------------------------------------------------


def read_scores(folder: SelectionFolder, score_key: str) -> dict[str, dict[str, np.ndarray]]:
    """``{domain: {"selected": scores, "rejected": scores}}`` from the folder's parquet shards."""
    scores: dict[str, dict[str, list[np.ndarray]]] = {}
    kinds = {"selected": folder.selected_shards(), "rejected": folder.rejected_shards()}
    for kind, shards in kinds.items():
        for domain, paths in shards.items():
            for path in paths:
                column = read_parquet_columns(path, [f"metadata.{score_key}"]).column(0)
                values = column.to_numpy(zero_copy_only=False).astype(np.float64)
                scores.setdefault(domain, {}).setdefault(kind, []).append(values)
    return {
        domain: {
            kind: np.concatenate(parts.get(kind) or [np.empty(0)])
            for kind in ("selected", "rejected")
        }
        for domain, parts in sorted(scores.items())
    }


def plot_score_histograms(
    scores: dict[str, dict[str, np.ndarray]],
    thresholds: dict[str, DomainThreshold],
    score_key: str,
    path: Path,
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
        axis.axvline(thresholds[domain].threshold, color="black", linestyle="--", label="threshold")
        axis.set_title(f"{domain} ({len(parts['selected'])} of {len(values)} selected)")
        axis.set_xlabel(score_key)
        axis.set_ylabel("documents")
        axis.legend(fontsize="small")
    for axis in axes[len(scores) :]:
        axis.set_visible(False)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


# --- folder --------------------------------------------------------------------------------------


def _write_folder(
    selection: Selection, folder: Path, commands: list[str], license: str, repo_id: str | None
) -> None:
    rows, schema = copy_shards(selection, folder / "data")
    key = selection.scorer.score_key
    scores = read_scores(selection.folder, key)
    plot_score_histograms(scores, selection.thresholds, key, folder / HISTOGRAM)
    repo = repo_id or PLACEHOLDER_REPO
    values = card_values(selection, rows, metadata_fields(schema), commands, repo)
    pretty_name = selection.pretty_name(repo_id)
    data = card_data(list(rows), sum(rows.values()), license, pretty_name)
    render_card(values, data).save(folder / "README.md")


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
    if selection.folder.is_local and Path(selection.folder.root).is_relative_to(hub):
        raise ValueError(f"--hub-dir {hub} would contain the pipeline output {out_dir}")
    if hub.exists() and not overwrite:
        raise FileExistsError(f"{hub} exists; choose another --hub-dir or pass --overwrite")
    fraction = min(entry.fraction for entry in selection.thresholds.values())
    commands = commands or default_commands(
        out_dir, hub_dir, repo_id, selection.scorer.scorer, fraction
    )
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
            commit_message="Upload data selection (ai-filters)",
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

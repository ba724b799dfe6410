"""A selection as a Hugging Face dataset folder: the Hub layout, its card and its histogram.

:func:`build_hub_folder` turns the output folder ``OUT`` of ``pipelines/smollm_select.py`` into
what a dataset repository holds::

    DIR/README.md                                      the dataset card
    DIR/data/<domain>/train-00000-of-00002.parquet     the selected documents
    DIR/scores/<domain>/train-00000-of-00001.parquet   every scored document, without text
    DIR/figures/score_histogram.png                    scores per domain, threshold marked

The documents have flat columns, as FineWeb-Edu's: ``text``, ``id``, ``domain``, the scorer's
fields (the score, the losses, the token counts), then the rest of their metadata. The
``scores`` files are the score tables of ``OUT/scores/`` (``id``, ``domain`` and the scorer's
fields), so users can pick another fraction without rescoring. The card
(:mod:`ai_filters.hub.card`) declares one config per domain, ``default`` (every domain) and
``scores``, so ``load_dataset("ORG/NAME", "web")`` loads one domain. Any scorer's folder can be
published (the method's or a control's): the card and the histogram name it and its score field.
:mod:`ai_filters.hub.push` uploads the folder. Nothing here writes or prints a token.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ai_filters.blocks.hub_shards import SHADOWED_PREFIX, leading_schema
from ai_filters.blocks.registry import SCORERS
from ai_filters.blocks.score_table import table_schema
from ai_filters.engine.heads_file import RetrievalHeads
from ai_filters.hub.card import (
    HISTOGRAM,
    PLACEHOLDER_REPO,
    card_data,
    card_values,
    default_commands,
    render_card,
    scoring_settings,
)
from ai_filters.selection.folder import (
    ScorerRecord,
    SelectionFolder,
    SelectionFolderError,
    parquet_file,
    read_parquet_columns,
)
from ai_filters.selection.thresholds import DomainThreshold

# datatrove's readers record the local file a document came from; it means nothing on the Hub
DROPPED_METADATA = ("file_path",)


@dataclass(frozen=True)
class Selection:
    """What a finished selection folder holds for publishing (read by :func:`load_selection`)."""

    folder: SelectionFolder
    scorer: ScorerRecord
    thresholds: dict[str, DomainThreshold]
    report: dict
    heads: RetrievalHeads | None  # for scorers that mask heads
    shards: dict[str, list[str]]  # the selected parquet shards of each domain (paths or URLs)
    tables: dict[str, list[str]]  # the score tables of each domain (paths or URLs)
    scoring_settings: dict | None  # the scorer block's settings, as datatrove recorded them

    @property
    def fields(self) -> tuple[str, ...]:
        """The scorer's fields (score first), as its score tables hold them."""
        if self.scorer.name in SCORERS:
            return SCORERS[self.scorer.name].table_fields
        return (self.scorer.score_key,)

    def pretty_name(self, repo_id: str | None) -> str:
        name = repo_id.split("/")[-1] if repo_id else f"{self.scorer.name} selection"
        return f"{name} ({self.scorer.name} selection)" if repo_id else name


def load_selection(out_dir: str | Path) -> Selection:
    """Read what a selection folder holds for publishing.

    Raises ``FileNotFoundError`` when a part is missing (the score tables included) and
    ``ValueError`` when there is no domain, a domain has selected shards but no threshold, or
    one is named ``default`` or ``scores`` (the names of the other configs).
    """
    folder = SelectionFolder(out_dir)
    if not folder.exists("thresholds.json"):
        raise SelectionFolderError(
            f"{folder.thresholds_file} is missing: run pipelines/smollm_select.py to completion"
        )
    thresholds = folder.read_thresholds()
    scorer = folder.read_scorer()
    needs_heads = SCORERS[scorer.name].needs_heads if scorer.name in SCORERS else True
    shards, tables = folder.selected_shards(), folder.score_tables()
    unknown = sorted(set(shards) - set(thresholds))
    if unknown:
        raise ValueError(f"selected shards of domains {unknown} have no threshold in {out_dir}")
    if not thresholds:
        raise ValueError(f"{folder.thresholds_file} lists no domain")
    for reserved in ("default", "scores"):
        if reserved in thresholds:
            raise ValueError(f"a domain may not be named '{reserved}': that is another config")
    untabled = sorted(set(thresholds) - set(tables))
    if untabled:
        raise SelectionFolderError(
            f"{folder.scores} has no score table of {', '.join(untabled)}: rerun the score stage "
            "of pipelines/smollm_select.py (it writes OUT/scores/<domain>/)"
        )
    return Selection(
        folder,
        scorer,
        thresholds,
        folder.read_report(),
        folder.read_heads() if needs_heads else None,
        shards,
        tables,
        scoring_settings(folder),
    )


# --- data ----------------------------------------------------------------------------------------


def _flat_fields(schema: pa.Schema) -> list[pa.Field]:
    """A shard's fields with a ``metadata`` struct (older shards) opened into its children."""
    fields = []
    for field in schema:
        if field.name == "metadata" and pa.types.is_struct(field.type):
            fields.extend(
                child.with_name(f"{SHADOWED_PREFIX}{child.name}")
                if child.name in ("text", "id")
                else child
                for child in field.type
            )
        else:
            fields.append(field)
    return fields


def _flat_columns(batch: pa.RecordBatch) -> dict[str, pa.Array]:
    """The batch's columns by name, a ``metadata`` struct opened as :func:`_flat_fields` does."""
    columns = {}
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if field.name == "metadata" and pa.types.is_struct(field.type):
            for child, flat in zip(field.type, _flat_fields(pa.schema([field])), strict=True):
                columns[flat.name] = column.field(child.name)
        else:
            columns[field.name] = column
    return columns


def unified_schema(schemas: list[pa.Schema], fields: tuple[str, ...]) -> pa.Schema:
    """One flat schema for every shard: ``text``, ``id``, ``domain``, the scorer's ``fields``
    (their types fixed), then every other field of any shard in order of appearance, minus
    ``file_path``. Shards of different domains often carry different metadata; a field whose
    types cannot be merged (text in one domain, numbers in another) becomes text."""
    leading = leading_schema(fields)
    kinds: dict[str, list[pa.DataType]] = {}
    for schema in schemas:
        for field in _flat_fields(schema):
            kinds.setdefault(field.name, []).append(field.type)
    skipped = set(leading.names) | set(DROPPED_METADATA)
    rest = [
        pa.field(name, _common_type(types)) for name, types in kinds.items() if name not in skipped
    ]
    return pa.schema([*leading, *rest])


def _common_type(types: list[pa.DataType]) -> pa.DataType:
    try:
        merged = pa.unify_schemas(
            [pa.schema([pa.field("f", kind)]) for kind in types], promote_options="permissive"
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, NotImplementedError):
        return pa.string()
    return merged.field("f").type


def _conform(column: pa.Array, kind: pa.DataType) -> pa.Array:
    """``column`` as ``kind``; values that Arrow cannot cast to text become JSON text."""
    try:
        return column.cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        if kind != pa.string():
            raise
        values = column.to_pylist()
        return pa.array([None if v is None else json.dumps(v, ensure_ascii=False) for v in values])


def _conformed_batches(path: str, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for batch in parquet_file(path).iter_batches(batch_size=4096):
        columns = _flat_columns(batch)
        arrays = [
            _conform(columns[field.name], field.type)
            if field.name in columns
            else pa.nulls(batch.num_rows, field.type)
            for field in schema
        ]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def copy_domain(paths: list[str], schema: pa.Schema, target: Path) -> int:
    """Rewrite ``paths`` (paths or URLs) as ``target/train-0000i-of-0000n.parquet`` in
    ``schema``; returns the rows written."""
    target.mkdir(parents=True, exist_ok=True)
    rows = 0
    for index, path in enumerate(paths):
        name = target / f"train-{index:05d}-of-{len(paths):05d}.parquet"
        with pq.ParquetWriter(name, schema) as writer:
            for batch in _conformed_batches(path, schema):
                writer.write_batch(batch)
                rows += batch.num_rows
    return rows


def _schemas(by_domain: dict[str, list[str]]) -> list[pa.Schema]:
    return [parquet_file(path).schema_arrow for paths in by_domain.values() for path in paths]


def _copy_all(by_domain: dict[str, list[str]], target: Path, schema: pa.Schema) -> dict[str, int]:
    return {
        domain: copy_domain(paths, schema, target / domain) for domain, paths in by_domain.items()
    }


def copy_shards(selection: Selection, data_dir: Path) -> tuple[dict[str, int], pa.Schema]:
    """Copy every domain's selected documents under ``data_dir/<domain>/`` as flat columns;
    returns the rows per domain and the schema written.

    Raises ``ValueError`` when a domain's row count differs from its ``documents_selected``
    in ``thresholds.json`` (an unfinished select stage must not be published).
    """
    schema = unified_schema(_schemas(selection.shards), selection.fields)
    rows = _copy_all(selection.shards, data_dir, schema)
    for domain, threshold in selection.thresholds.items():
        if rows.get(domain, 0) != threshold.documents_selected:
            raise ValueError(
                f"{domain}: the selected shards hold {rows.get(domain, 0)} documents, "
                f"thresholds.json says {threshold.documents_selected}: rerun the select stage"
            )
    return rows, schema


def copy_scores(selection: Selection, scores_dir: Path) -> dict[str, int]:
    """Copy the score tables of every domain under ``scores_dir/<domain>/``; returns the rows
    per domain. ``ValueError`` when a domain's rows differ from the documents it scored."""
    schema = table_schema(selection.fields)
    rows = _copy_all(selection.tables, scores_dir, schema)
    for domain, threshold in selection.thresholds.items():
        if rows.get(domain, 0) != threshold.documents:
            raise ValueError(
                f"{domain}: the score tables hold {rows.get(domain, 0)} documents, "
                f"thresholds.json says {threshold.documents} were scored: rerun the score stage"
            )
    return rows


# --- figure --------------------------------------------------------------------------------------


def read_scores(selection: Selection) -> dict[str, dict[str, np.ndarray]]:
    """``{domain: {"selected": scores, "rejected": scores}}`` from the score tables; a document
    is selected when its score reaches its domain's threshold (the selection rule)."""
    key, scores = selection.scorer.score_key, {}
    for domain, paths in selection.tables.items():
        parts = []
        for path in paths:
            column = read_parquet_columns(path, [key]).column(0)
            parts.append(column.to_numpy(zero_copy_only=False).astype(np.float64))
        values = np.concatenate(parts) if parts else np.empty(0)
        kept = values >= selection.thresholds[domain].threshold
        scores[domain] = {"selected": values[kept], "rejected": values[~kept]}
    return scores


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
    scored = copy_scores(selection, folder / "scores")
    key = selection.scorer.score_key
    plot_score_histograms(read_scores(selection), selection.thresholds, key, folder / HISTOGRAM)
    repo = repo_id or PLACEHOLDER_REPO
    values = card_values(selection, rows, schema.names, commands, repo)
    pretty_name = selection.pretty_name(repo_id)
    data = card_data(list(rows), sum(rows.values()), sum(scored.values()), license, pretty_name)
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
    """Write the Hub folder of the selection in ``out_dir`` (local or a URL) to ``hub_dir``;
    returns ``hub_dir``.

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
        selection.folder, out_dir, hub_dir, repo_id, selection.scorer.name, fraction
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

"""The selection folder ``OUT``: where every pipeline stage writes and every consumer reads.

::

    OUT/heads.json                           the retrieval heads that made the scores
    OUT/scorer.json                          which scorer, its score field, the fraction kept
    OUT/corpus/<domain>/*.jsonl.gz           the demo corpus (``--demo`` only)
    OUT/scored/<domain>/<rank>.jsonl.gz      every scored document, its score in metadata
    OUT/skipped/<domain>/<rank>.jsonl.gz     every document without a score, and why
    OUT/thresholds.json                      per domain: threshold and counts
    OUT/selected/data/<domain>/<rank>.parquet  the documents kept (Hub layout)
    OUT/rejected/data/<domain>/<rank>.parquet  the others
    OUT/report.json, OUT/report.md           counts, conservation checks, score statistics
    OUT/logs/<stage>/                        datatrove's logs, per-task stats, completions
    OUT/tokenized/{corpus,selected}/         nanotron ``.ds`` files

:class:`SelectionFolder` names these paths and reads and writes the small records
(``heads.json``, ``scorer.json``, ``thresholds.json``, ``report.json``); the pipeline, the
report, ``hub-folder``, ``compare`` and the proxy run all go through it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from datatrove.io import open_file

from ai_filters.heads import RetrievalHeads
from ai_filters.selection import DomainThreshold

SCORED_SHARD = "${domain}/${rank}.jsonl.gz"  # datatrove writer output_filename, scored/skipped
HUB_SHARD = "data/${domain}/${rank}.parquet"  # selected/rejected, in the Hub's layout
SCORED_GLOB = "**/*.jsonl.gz"
HUB_GLOB = "data/*/*.parquet"


class SelectionFolderError(FileNotFoundError):
    """A selection folder lacks what a consumer needs; the message says what and what to run."""


@dataclass(frozen=True)
class ScorerRecord:
    """``scorer.json``: which scorer made a selection folder, its score field, the fraction."""

    scorer: str
    score_key: str
    fraction: float


# Folders made before the pipeline had --scorer have no scorer.json: AttentionInfluence made
# them, with the paper's fraction.
LEGACY_SCORER = ScorerRecord("attention_influence", "attention_influence", 0.2)


class SelectionFolder:
    """The output folder of ``pipelines/smollm_select.py`` (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"SelectionFolder({str(self.root)!r})"

    # --- paths ---------------------------------------------------------------------------
    @property
    def heads_file(self) -> Path:
        return self.root / "heads.json"

    @property
    def scorer_file(self) -> Path:
        return self.root / "scorer.json"

    @property
    def thresholds_file(self) -> Path:
        return self.root / "thresholds.json"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def scored(self) -> Path:
        return self.root / "scored"

    @property
    def skipped(self) -> Path:
        return self.root / "skipped"

    @property
    def selected(self) -> Path:
        return self.root / "selected"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    @property
    def tokenized(self) -> Path:
        return self.root / "tokenized"

    def logs(self, stage: str | None = None) -> Path:
        """``OUT/logs`` or, with ``stage``, that stage's datatrove logging folder."""
        return self.root / "logs" / stage if stage else self.root / "logs"

    # --- documents -------------------------------------------------------------------------
    def scored_files(self) -> list[Path]:
        return sorted(self.scored.glob(SCORED_GLOB))

    def skipped_files(self) -> list[Path]:
        return sorted(self.skipped.glob(SCORED_GLOB))

    def selected_shards(self) -> dict[str, list[Path]]:
        """The selected parquet shards of each domain (sorted by domain, then file)."""
        return _shards_by_domain(self.selected)

    def rejected_shards(self) -> dict[str, list[Path]]:
        return _shards_by_domain(self.rejected)

    def missing(self) -> list[str]:
        """What a finished selection holds and this folder lacks, as relative paths."""
        missing = []
        if not self.scored_files():
            missing.append("scored/<domain>/*.jsonl.gz")
        if not self.selected_shards():
            missing.append("selected/data/<domain>/*.parquet")
        if not self.thresholds_file.is_file():
            missing.append("thresholds.json")
        return missing

    def require_complete(self) -> None:
        """Raise :class:`SelectionFolderError` naming what is missing, if anything is."""
        if not self.root.is_dir():
            raise SelectionFolderError(f"{self.root} is not a folder")
        missing = self.missing()
        if missing:
            raise SelectionFolderError(
                f"{self.root} is not a selection output: missing {', '.join(missing)} "
                "(run pipelines/smollm_select.py to completion first)"
            )

    # --- records ---------------------------------------------------------------------------
    def read_scorer(self) -> ScorerRecord:
        """``scorer.json``; for a folder made before it existed, :data:`LEGACY_SCORER` with the
        fraction ``thresholds.json`` records (when all its domains share one)."""
        if not self.scorer_file.is_file():
            fractions = set()
            if self.thresholds_file.is_file():
                fractions = {entry.fraction for entry in self.read_thresholds().values()}
            if len(fractions) == 1:
                return replace(LEGACY_SCORER, fraction=fractions.pop())
            return LEGACY_SCORER
        data = _read_json_object(self.scorer_file)
        try:
            return ScorerRecord(**data)
        except TypeError:
            raise ValueError(
                f"{self.scorer_file} is not a scorer record; expected "
                '{"scorer": ..., "score_key": ..., "fraction": ...}'
            ) from None

    def has_scorer_record(self) -> bool:
        return self.scorer_file.is_file()

    def write_scorer(self, record: ScorerRecord) -> None:
        _write_json(self.scorer_file, asdict(record))

    def read_thresholds(self) -> dict[str, DomainThreshold]:
        """``thresholds.json`` as typed entries, in the file's (sorted) domain order."""
        return read_thresholds(self.thresholds_file)

    def write_thresholds(self, thresholds: Mapping[str, DomainThreshold]) -> None:
        write_thresholds(thresholds, self.thresholds_file)

    def read_heads(self) -> RetrievalHeads:
        """``heads.json``; :class:`~ai_filters.heads.HeadsFileError` when missing or malformed."""
        return RetrievalHeads.load(self.heads_file)

    def read_report(self) -> dict:
        if not self.report_json.is_file():
            raise SelectionFolderError(
                f"{self.report_json} is missing: run pipelines/smollm_select.py to completion"
            )
        return _read_json_object(self.report_json)

    def write_report(self, report: dict, markdown: str) -> None:
        _write_json(self.report_json, report)
        self.report_md.write_text(markdown)


def read_thresholds(source: str | Path) -> dict[str, DomainThreshold]:
    """A ``thresholds.json`` (local path or any fsspec URL datatrove reads) as typed entries.

    Raises ``ValueError`` naming the file and the domain when an entry is not a full threshold
    entry (as :class:`~ai_filters.blocks.DomainThresholds` writes them).
    """
    thresholds = {}
    for domain, entry in _threshold_entries(source).items():
        try:
            thresholds[domain] = DomainThreshold(**entry)
        except TypeError:
            raise ValueError(
                f"{source}: domain '{domain}' is not a threshold entry "
                f"(expected the fields of {DomainThreshold.__name__})"
            ) from None
    return thresholds


def read_threshold_values(source: str | Path) -> dict[str, float]:
    """Only the threshold of each domain of a ``thresholds.json``: also a file written by
    hand, ``{domain: {"threshold": number}}``. ``ValueError`` names a domain without one."""
    values = {}
    for domain, entry in _threshold_entries(source).items():
        value = entry.get("threshold") if isinstance(entry, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{source}: domain '{domain}' has no numeric 'threshold'")
        values[domain] = float(value)
    return values


def _threshold_entries(source: str | Path) -> dict[str, object]:
    with open_file(str(source), "rt") as file:
        try:
            entries = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source}: invalid JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(entries, Mapping):
        raise ValueError(f"{source} must be a JSON object of domain -> threshold entry")
    return {str(domain): entry for domain, entry in entries.items()}


def write_thresholds(thresholds: Mapping[str, DomainThreshold], path: str | Path) -> None:
    """Write ``thresholds.json`` atomically: ``{domain: {"threshold": ..., counts...}}``."""
    _write_json(Path(path), {domain: asdict(entry) for domain, entry in thresholds.items()})


def _shards_by_domain(folder: Path) -> dict[str, list[Path]]:
    shards: dict[str, list[Path]] = {}
    for path in sorted(folder.glob(HUB_GLOB)):
        shards.setdefault(path.parent.name, []).append(path)
    return dict(sorted(shards.items()))


def _read_json_object(path: Path) -> dict:
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(content, dict):
        raise ValueError(f"{path}: a JSON object is expected")
    return content


def _write_json(path: Path, content: dict) -> None:
    """Write ``content`` to ``path`` through a temporary file renamed at the end."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(content, indent=1, ensure_ascii=False) + "\n")
    staging.replace(path)

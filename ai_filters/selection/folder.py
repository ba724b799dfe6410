"""The selection folder ``OUT``: where every pipeline stage writes and every consumer reads.

::

    OUT/heads.json                             the retrieval heads that made the scores
    OUT/scorer.json                            which scorer, its score field, the fraction kept
    OUT/corpus/<domain>/*.jsonl.gz             the demo corpus (``--demo`` only)
    OUT/scored/<domain>/<rank>.jsonl.gz        every scored document, its score in metadata
    OUT/scores/<domain>/<rank>.parquet         the same documents without text: id, domain,
                                               score fields, token counts (the score tables)
    OUT/skipped/<domain>/<rank>.jsonl.gz       every document without a score, and why
    OUT/thresholds.json                        per domain: threshold and counts
    OUT/selected/data/<domain>/<rank>.parquet  the documents kept (Hub layout)
    OUT/rejected/data/<domain>/<rank>.parquet  the others
    OUT/report.json, OUT/report.md             counts, conservation checks, score statistics
    OUT/logs/<stage>/                          datatrove's logs, per-task stats, completions
    OUT/tokenized/{corpus,selected}/           nanotron ``.ds`` files
    OUT/run.lock                               the run holding the folder (``run_lock.py``)
    OUT/run.json                               what a resume must match (``run_record.py``)

``OUT`` is a local folder or any URL datatrove's ``DataFolder`` reads and writes (``s3://``,
``hf://``, ...). :class:`SelectionFolder` names these paths and reads and writes the small
records (``heads.json``, ``scorer.json``, ``thresholds.json``, ``report.json``); the pipeline,
the report, ``hub-folder``, ``compare`` and the proxy run all go through it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.io import DataFolder, get_datafolder, open_file

from ai_filters.documents import check_folder_url
from ai_filters.engine.heads_file import RetrievalHeads
from ai_filters.selection.thresholds import DomainThreshold

SCORED_SHARD = "${domain}/${rank}.jsonl.gz"  # datatrove writer output_filename, scored/skipped
TABLE_SHARD = "${domain}/${rank}.parquet"  # the score tables
HUB_SHARD = "data/${domain}/${rank}.parquet"  # selected/rejected, in the Hub's layout
SCORED_GLOB = "**/*.jsonl.gz"
TABLE_GLOB = "*/*.parquet"
HUB_GLOB = "data/*/*.parquet"


# The stats the stages record per domain, from which the report counts every document:
READ_STAT = "read_{domain}"  # a record read (DomainsReader)
SKIPPED_STAT = "skipped/{domain}/{reason}"  # a document without a score ('/' is in no domain)
KEPT_STAT = "kept_{domain}"  # at or above the domain's threshold (ThresholdFilter)
REJECTED_STAT = "below_threshold_{domain}"  # below it


class SelectionFolderError(FileNotFoundError):
    """A selection folder lacks what a consumer needs; the message says what and what to run."""


@dataclass(frozen=True)
class ScorerRecord:
    """``scorer.json``: which scorer made a selection folder, its score field, the fraction."""

    name: str  # the registry name (``--scorer``), stored as "scorer"
    score_key: str
    fraction: float

    def as_json(self) -> dict:
        return {"scorer": self.name, "score_key": self.score_key, "fraction": self.fraction}


class SelectionFolder:
    """The output folder of ``pipelines/smollm_select.py`` (see the module docstring).

    Paths are returned as strings: absolute local paths (so that tasks started elsewhere, by
    Slurm, find them) or URLs, as ``root`` is.
    """

    def __init__(self, root: str | Path) -> None:
        check_folder_url(root)
        data = get_datafolder(str(root))
        self.root = str(Path(root).resolve()) if data.is_local() else str(root)
        self.data: DataFolder = get_datafolder(self.root)

    def __repr__(self) -> str:
        return f"SelectionFolder({self.root!r})"

    @property
    def is_local(self) -> bool:
        return self.data.is_local()

    def path(self, relative: str) -> str:
        """The full path or URL of ``relative`` inside the folder."""
        return self.data.resolve_paths(relative)

    def open(self, relative: str, mode: str = "rt") -> IO:
        """Open a file of the folder (creating parent folders when writing)."""
        return self.data.open(relative, mode)

    def exists(self, relative: str) -> bool:
        return self.data.exists(relative)

    # --- paths ---------------------------------------------------------------------------
    heads_file = property(lambda self: self.path("heads.json"))
    scorer_file = property(lambda self: self.path("scorer.json"))
    thresholds_file = property(lambda self: self.path("thresholds.json"))
    report_json = property(lambda self: self.path("report.json"))
    report_md = property(lambda self: self.path("report.md"))
    corpus = property(lambda self: self.path("corpus"))
    scored = property(lambda self: self.path("scored"))
    scores = property(lambda self: self.path("scores"))
    skipped = property(lambda self: self.path("skipped"))
    selected = property(lambda self: self.path("selected"))
    rejected = property(lambda self: self.path("rejected"))
    tokenized = property(lambda self: self.path("tokenized"))

    def logs(self, stage: str | None = None) -> str:
        """``OUT/logs`` or, with ``stage``, that stage's datatrove logging folder."""
        return self.path(f"logs/{stage}" if stage else "logs")

    # --- documents and tables ---------------------------------------------------------------
    def scored_files(self) -> list[str]:
        """The scored shards (full paths or URLs, sorted)."""
        return self._list("scored", SCORED_GLOB)

    def skipped_files(self) -> list[str]:
        return self._list("skipped", SCORED_GLOB)

    def score_tables(self) -> dict[str, list[str]]:
        """The score tables of each domain (full paths or URLs, sorted)."""
        return _by_domain(self._list("scores", TABLE_GLOB))

    def selected_shards(self) -> dict[str, list[str]]:
        """The selected parquet shards of each domain (full paths or URLs, sorted)."""
        return _by_domain(self._list("selected", HUB_GLOB))

    def rejected_shards(self) -> dict[str, list[str]]:
        return _by_domain(self._list("rejected", HUB_GLOB))

    def _list(self, subdirectory: str, glob: str) -> list[str]:
        if not self.data.isdir(subdirectory):
            return []
        files = self.data.list_files(subdirectory=subdirectory, glob_pattern=glob)
        return sorted(self.path(relative) for relative in files)

    def missing(self) -> list[str]:
        """What a finished selection holds and this folder lacks, as relative paths."""
        missing = []
        if not self.scored_files():
            missing.append("scored/<domain>/*.jsonl.gz")
        if not self.selected_shards():
            missing.append("selected/data/<domain>/*.parquet")
        for record in ("scorer.json", "thresholds.json"):
            if not self.exists(record):
                missing.append(record)
        return missing

    def require_complete(self) -> None:
        """Raise :class:`SelectionFolderError` naming what is missing, if anything is."""
        if not self.data.isdir(""):
            raise SelectionFolderError(f"{self.root} is not a folder")
        missing = self.missing()
        if missing:
            raise SelectionFolderError(
                f"{self.root} is not a selection output: missing {', '.join(missing)} "
                "(run pipelines/smollm_select.py to completion first)"
            )

    # --- records ---------------------------------------------------------------------------
    def read_scorer(self) -> ScorerRecord:
        """``scorer.json``. Raises :class:`SelectionFolderError` when it is missing and
        ``ValueError`` when it is not a scorer record."""
        if not self.exists("scorer.json"):
            raise SelectionFolderError(
                f"{self.scorer_file} is missing (the pipeline writes it before scoring; run "
                "pipelines/smollm_select.py)"
            )
        data = self._read_json("scorer.json")
        if not isinstance(data, dict) or set(data) != {"scorer", "score_key", "fraction"}:
            raise ValueError(
                f"{self.scorer_file} is not a scorer record; expected "
                '{"scorer": ..., "score_key": ..., "fraction": ...}'
            )
        return ScorerRecord(data["scorer"], data["score_key"], data["fraction"])

    def write_scorer(self, record: ScorerRecord) -> None:
        self._write_json("scorer.json", record.as_json())

    def read_thresholds(self) -> dict[str, DomainThreshold]:
        """``thresholds.json`` as typed entries, in the file's (sorted) domain order."""
        return read_thresholds(self.thresholds_file)

    def write_thresholds(self, thresholds: Mapping[str, DomainThreshold]) -> None:
        write_thresholds(thresholds, self.thresholds_file)

    def read_heads(self) -> RetrievalHeads:
        """``heads.json``; :class:`~ai_filters.engine.heads_file.HeadsFileError` when missing or
        malformed."""
        return RetrievalHeads.load(self.heads_file)

    def read_report(self) -> dict:
        if not self.exists("report.json"):
            raise SelectionFolderError(
                f"{self.report_json} is missing: run pipelines/smollm_select.py to completion"
            )
        return self._read_json("report.json")

    def write_report(self, report: dict, markdown: str) -> None:
        self._write_json("report.json", report)
        with self.open("report.md", "wt") as file:
            file.write(markdown)

    def _read_json(self, relative: str) -> dict:
        with self.open(relative, "rt") as file:
            return read_json_object(file, self.path(relative))

    def _write_json(self, relative: str, content: dict) -> None:
        write_json(content, self.path(relative))


def parquet_file(path: str) -> pq.ParquetFile:
    """A parquet file of a selection folder (a full path or URL): a local one through pyarrow's
    own reader (several times faster than a Python file object), a remote one through fsspec."""
    return pq.ParquetFile(path if "://" not in path else open_file(path, "rb"))


def read_parquet_columns(path: str, columns: list[str]) -> pa.Table:
    """The ``columns`` of a parquet file (a full path or URL); a nested field named
    ``metadata.<field>`` comes back as its own column."""
    return pq.read_table(path if "://" not in path else open_file(path, "rb"), columns=columns)


def read_thresholds(source: str | Path) -> dict[str, DomainThreshold]:
    """A ``thresholds.json`` (local path or any URL datatrove reads) as typed entries.

    Raises ``ValueError`` naming the file and the domain when an entry is not a full threshold
    entry (as :class:`~ai_filters.blocks.ThresholdFinder` writes them).
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
        entries = read_json_object(file, str(source))
    return {str(domain): entry for domain, entry in entries.items()}


def write_thresholds(thresholds: Mapping[str, DomainThreshold], path: str | Path) -> None:
    """Write ``thresholds.json``: ``{domain: {"threshold": ..., counts...}}``."""
    write_json({domain: asdict(entry) for domain, entry in thresholds.items()}, path)


def write_json(content: dict, path: str | Path) -> None:
    """Write ``content`` as JSON to a local path or a URL. A local file is written through a
    temporary file renamed at the end; an object store shows an upload only once it is done."""
    text = json.dumps(content, indent=1, ensure_ascii=False) + "\n"
    parent, _, name = str(path).rstrip("/").rpartition("/")
    folder = get_datafolder(parent or ".")
    if not folder.is_local():
        with folder.open(name, "wt") as file:
            file.write(text)
        return
    local = Path(folder.resolve_paths(name))
    local.parent.mkdir(parents=True, exist_ok=True)
    staging = local.with_name(f".{local.name}.tmp")
    staging.write_text(text)
    staging.replace(local)


def read_json_object(file: IO, where: str) -> dict:
    """The JSON object in ``file``; ``ValueError`` naming ``where`` when it is not valid JSON or
    not an object."""
    try:
        content = json.load(file)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: invalid JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(content, dict):
        raise ValueError(f"{where} must be a JSON object")
    return content


def _by_domain(files: list[str]) -> dict[str, list[str]]:
    """Files ``<kind>/[data/]<domain>/<name>`` grouped by their parent folder's name."""
    grouped: dict[str, list[str]] = {}
    for relative in files:
        grouped.setdefault(relative.rsplit("/", 2)[-2], []).append(relative)
    return dict(sorted(grouped.items()))

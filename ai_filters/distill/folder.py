"""Distilling a selection into a model folder, and reading the folder back.

Model folder::

    MODEL_DIR/distilled.json     the record: model, features, what it was trained on, the
                                 held-out rule and the held-out agreement
                                 (:func:`training_record`)
    MODEL_DIR/weights.npy        float32, one row per domain model then the pooled model's,
                                 one column per feature (hashed n-grams, then statistics)
    MODEL_DIR/heldout_ids.txt    the held-out ids, one per line, sorted
    MODEL_DIR/training_ids.txt   the ids the model was fitted on, one per line, sorted
    MODEL_DIR/heldout.parquet    per held-out document: id, domain, score, prediction

No pickle: the record holds the settings, ``weights.npy`` the numbers (read with
``allow_pickle=False``); nothing runs at load time.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ai_filters.distill.agreement import agreement
from ai_filters.distill.features import STATISTICS, Features
from ai_filters.distill.groups import GROUP_RULE
from ai_filters.distill.heldout import HOLDOUT_RULE, ORDER_SALT, group_counts, split
from ai_filters.distill.model import POOLED, DistilledModel
from ai_filters.distill.scored import ScoredDocument, Teacher, read_scored, read_teacher
from ai_filters.distill.training import SOLVER, TrainingSettings, fit
from ai_filters.selection.folder import SelectionFolder, write_json

FORMAT_VERSION = 1
RECORD_FILE = "distilled.json"
WEIGHTS_FILE = "weights.npy"
HELDOUT_IDS_FILE = "heldout_ids.txt"
TRAINING_IDS_FILE = "training_ids.txt"
HELDOUT_TABLE = "heldout.parquet"
LIBRARY = "scikit-learn"


@dataclass
class DistillResult:
    """What :func:`distill` made: the model, its record, the held-out predictions and the ids
    of the documents the model was fitted on."""

    model: DistilledModel
    record: dict
    heldout: list[ScoredDocument]
    heldout_predictions: np.ndarray
    training_ids: list[str]


def distill(
    selection: str | Path,
    settings: TrainingSettings,
    fraction: float | None = None,
    documents: Sequence[ScoredDocument] | None = None,
) -> DistillResult:
    """Train on the selection's scored documents and measure agreement on the held-out ones.

    ``fraction`` (of the agreement) defaults to the selection's; ``documents`` (already read
    with :func:`read_scored` with ``settings.group_key``) saves reading them again when one
    selection is distilled many times. Raises ``ValueError`` when the split leaves no training
    or no held-out document.
    """
    folder = SelectionFolder(selection)
    teacher = read_teacher(folder)
    fraction = teacher.fraction if fraction is None else fraction
    if documents is None:
        documents = read_scored(folder, teacher.score_key, settings.group_key)
    training, heldout = split(documents, settings)
    groups = group_counts(training, heldout)
    if not training or not heldout:
        raise ValueError(
            f"{len(documents)} documents split into {len(training)} for training and "
            f"{len(heldout)} held out ({groups['training_groups'] + groups['heldout_groups']} "
            f"groups by '{settings.group_key}', share {settings.heldout_share}): both must be "
            "non-empty"
        )
    started = time.monotonic()
    model = fit(training, settings)
    seconds = time.monotonic() - started
    predictions = model.predict([d.text for d in heldout], [d.domain for d in heldout])
    measured = agreement(
        [d.domain for d in heldout], [d.score for d in heldout], predictions, fraction
    )
    counts = _counts(documents, training, heldout)
    record = training_record(teacher, settings, fraction, model, counts, measured, seconds)
    record["holdout"].update(groups)
    return DistillResult(model, record, heldout, predictions, [d.id for d in training])


def _counts(*groups: Sequence[ScoredDocument]) -> dict[str, dict[str, int]]:
    """Per domain, the documents scored, trained on and held out."""
    counts: dict[str, dict[str, int]] = {}
    for kind, group in zip(("scored", "train", "heldout"), groups, strict=True):
        for document in group:
            row = counts.setdefault(document.domain, {"scored": 0, "train": 0, "heldout": 0})
            row[kind] += 1
    return dict(sorted(counts.items()))


def training_record(
    teacher: Teacher,
    settings: TrainingSettings,
    fraction: float,
    model: DistilledModel,
    counts: dict[str, dict[str, int]],
    measured: dict,
    seconds: float,
) -> dict:
    """``distilled.json``: everything needed to know what the model is and to reproduce it."""
    from sklearn import __version__ as sklearn_version

    return {
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "library": {"name": LIBRARY, "version": sklearn_version},
        "model": {
            "kind": "ridge regression",
            "target": "the document's rank within its domain, scaled to (0, 1]",
            "score": "features . weights[domain] + intercepts[domain]",
            "features": asdict(model.features),
            "statistics": list(STATISTICS) if model.features.statistics else [],
            "statistics_mean": model.statistics_mean.tolist(),
            "statistics_scale": model.statistics_scale.tolist(),
            "domains": model.domains,
            "pooled": f"'{POOLED}', the last model: documents of any other domain",
            "weights": WEIGHTS_FILE,
            "intercepts": model.intercepts.tolist(),
        },
        "trained_on": {**asdict(teacher), "fraction": fraction, "documents": counts},
        "holdout": {
            "share": settings.heldout_share,
            "salt": settings.salt,
            "group_key": settings.group_key,
            "group_rule": GROUP_RULE,
            "rule": HOLDOUT_RULE,
            "ids_file": HELDOUT_IDS_FILE,
            "documents": sum(row["heldout"] for row in counts.values()),
        },
        "training": {
            "alpha": settings.alpha,
            "max_train": settings.max_train,
            "per_domain": settings.per_domain,
            "solver": f"scikit-learn Ridge(solver='{SOLVER}')",
            "order": f"the held-in documents sorted by the same hash with salt '{ORDER_SALT}'",
            "documents": sum(row["train"] for row in counts.values()),
            "ids_file": TRAINING_IDS_FILE,
            "seconds": seconds,
        },
        "heldout_agreement": measured,
    }


def save(result: DistillResult, out: str | Path) -> Path:
    """Write the model folder (see the module docstring); returns it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / WEIGHTS_FILE, result.model.weights)
    for name, ids in (
        (HELDOUT_IDS_FILE, [d.id for d in result.heldout]),
        (TRAINING_IDS_FILE, result.training_ids),
    ):
        (out / name).write_text("".join(f"{i}\n" for i in sorted(ids)))
    table = pa.table(
        {
            "id": [d.id for d in result.heldout],
            "domain": [d.domain for d in result.heldout],
            "score": [d.score for d in result.heldout],
            "prediction": result.heldout_predictions,
        }
    )
    pq.write_table(table, out / HELDOUT_TABLE)
    write_json(result.record, out / RECORD_FILE)  # last: a folder with a record is complete
    return out


def read_record(model_dir: str | Path) -> dict:
    """``MODEL_DIR/distilled.json``; ``ValueError`` when the folder holds no distilled model of
    this format."""
    path = Path(model_dir) / RECORD_FILE
    if not path.is_file():
        raise ValueError(f"{model_dir} is not a distilled model folder: {RECORD_FILE} is missing")
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    version = record.get("format_version") if isinstance(record, dict) else None
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: format version {version} is not {FORMAT_VERSION}")
    return record


def check_folder(model_dir: str | Path) -> dict:
    """The record of a complete model folder: its weights file is there, of the shape the
    record gives (read from the file's header alone). ``ValueError`` otherwise."""
    record = read_record(model_dir)
    model = record["model"]
    path = Path(model_dir) / model["weights"]
    if not path.is_file():
        raise ValueError(f"{model_dir} is an incomplete distilled model folder: {path} is missing")
    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    except ValueError as error:
        raise ValueError(f"{path} is not a weights file: {error}") from None
    expected = (len(model["domains"]), Features(**model["features"]).count)
    if shape != expected:
        raise ValueError(f"{path}: weights of shape {shape}, the record says {expected}")
    return record


def load_model(model_dir: str | Path) -> DistilledModel:
    """The model a folder written by :func:`save` holds (no pickle: settings and weights)."""
    model = check_folder(model_dir)["model"]
    return DistilledModel(
        Features(**model["features"]),
        list(model["domains"]),
        np.load(Path(model_dir) / model["weights"], allow_pickle=False),
        np.array(model["intercepts"]),
        np.array(model["statistics_mean"]),
        np.array(model["statistics_scale"]),
    )


def read_ids(path: str | Path) -> set[str]:
    """Ids, one per line, of a file or of a model folder's held-out ids file."""
    path = Path(path)
    if path.is_dir():
        path = path / read_record(path)["holdout"]["ids_file"]
    if not path.is_file():
        raise ValueError(f"{path} does not exist: give a file of ids or a distilled model folder")
    return {line for line in path.read_text().splitlines() if line}

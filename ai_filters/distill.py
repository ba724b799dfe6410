"""Distil a selection's scores into a fast text model (``ai-filters distill``).

Scoring costs the selector two forward passes per token. The cheap way to select from a huge
corpus is to score a sample with the selector, train a small text model to rank documents as
the scores do, and apply that model to everything. This module trains it on the scored
documents of a selection folder (``OUT/scored/<domain>/*.jsonl.gz``), holds out a share of them
to measure agreement, and writes the model folder the ``distilled`` scorer applies
(:class:`ai_filters.blocks.DistilledScorer`).

**The model.** Hashed word n-grams (scikit-learn's ``HashingVectorizer``) and a linear model on
them: ridge regression on the document's rank within its domain (``target="rank"``, the
default: every document teaches, not only the top ones) or logistic regression on whether it
is in its domain's top fraction (``target="top"``). The model's score is the linear function
``x . w + b``; the selection keeps the top fraction of each domain by it, as for any scorer.
Only the training documents give targets: a document's rank is counted among the training
documents of its domain.

**Why scikit-learn, not fastText.** fastText is what datatrove's ``FastTextClassifierFilter``
and DCLM use, but in 2026 it does not install cleanly from a wheel: the ``fasttext`` project
on PyPI ships source only for Linux (a C++ build on every fresh machine) and its repository is
archived; ``fasttext-wheel`` breaks at prediction time under numpy 2 (``np.array(...,
copy=False)``); ``fasttext-numpy2-wheel`` (what datatrove's filter accepts) has wheels for
CPython 3.8-3.12 only, none for 3.13 nor for ARM macOS, and pins ``numpy>=2``. scikit-learn
ships official wheels for every supported CPython on Linux (x86-64 and ARM), macOS and
Windows, works with numpy 1 and 2, and needs only scipy (already a dependency) besides two
small pure-Python packages. Its hashing vectorizer is stateless, so the model file is plain
data: the weight vector (``weights.npy``) and the settings (``distilled.json``), no pickle, no
code run at load time, and no tie to the scikit-learn version that trained it (the hash is
MurmurHash3 with a fixed seed). Prediction is a sparse dot product: thousands of documents per
second per core (measured by ``benchmarks/bench_distilled.py``), far above the 1,000 times the
selector that the method needs.

**Held-out documents.** A document is held out when ``blake2b(salt, id)`` mapped to [0, 1) is
below ``heldout_share``: a pure function of its id, so the split does not depend on order or
sharding, stays the same when the corpus grows, and can be recomputed anywhere from the rule.
The held-out ids are also written (``heldout_ids.txt``) for ``ai-filters compare --only-ids``.
With ``max_train``, the training documents are the first ``max_train`` in the order of a second
hash of their id, so a smaller training set is a subset of a larger one (a learning curve).

Model folder::

    MODEL_DIR/distilled.json     the record: model, features, what it was trained on, the
                                 held-out rule and the held-out agreement (see
                                 :func:`training_record`)
    MODEL_DIR/weights.npy        the linear model's weights, one per hashed feature (float64)
    MODEL_DIR/heldout_ids.txt    the held-out ids, one per line, sorted
    MODEL_DIR/heldout.parquet    per held-out document: id, domain, score, prediction
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ai_filters.documents import read_documents
from ai_filters.heads import HeadsFileError
from ai_filters.layout import SelectionFolder, write_json
from ai_filters.report import spearman
from ai_filters.selection import top_fraction_threshold

FORMAT_VERSION = 1
RECORD_FILE = "distilled.json"
WEIGHTS_FILE = "weights.npy"
HELDOUT_IDS_FILE = "heldout_ids.txt"
HELDOUT_TABLE = "heldout.parquet"
TARGETS = ("rank", "top")
LIBRARY = "scikit-learn"
HOLDOUT_RULE = (
    "held out when int.from_bytes(blake2b(f'{salt}\\0{id}', digest_size=8), 'big') / 2**64 < share"
)
ORDER_SALT = "training-order"  # the salt of the training order (max_train)


@dataclass(frozen=True)
class Features:
    """The ``HashingVectorizer`` settings: word 1- to ``max_ngram``-grams of lowercased text
    (tokens: runs of letters, digits and underscores, and single other symbols, so code and
    formulas keep their operators), ``2**bits`` features, L2-normalised counts."""

    bits: int = 20
    max_ngram: int = 2
    token_pattern: str = r"\w+|[^\w\s]"
    lowercase: bool = True

    def vectorizer(self):
        from sklearn.feature_extraction.text import HashingVectorizer

        return HashingVectorizer(
            n_features=2**self.bits,
            ngram_range=(1, self.max_ngram),
            token_pattern=self.token_pattern,
            lowercase=self.lowercase,
            alternate_sign=False,
            norm="l2",
            dtype=np.float64,
        )


@dataclass(frozen=True)
class TrainingSettings:
    """How a model is trained: the target, the regularisation, the split and its size."""

    target: str = "rank"
    alpha: float = 1.0  # ridge penalty (rank), or 1 / C of the logistic regression (top)
    heldout_share: float = 0.2
    salt: str = "heldout"
    max_train: int | None = None
    features: Features = field(default_factory=Features)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got '{self.target}'")
        if not 0 < self.heldout_share < 1:
            raise ValueError(f"the held-out share must be in (0, 1), got {self.heldout_share}")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be positive, got {self.alpha}")
        if self.max_train is not None and self.max_train < 2:
            raise ValueError(f"max_train must be at least 2, got {self.max_train}")


@dataclass(frozen=True)
class ScoredDocument:
    """One scored document of a selection: what the model learns from."""

    id: str
    domain: str
    text: str
    score: float


# --- the split -----------------------------------------------------------------------------------


def id_hash(document_id: str, salt: str) -> float:
    """``blake2b(salt, id)`` mapped to [0, 1): uniform, a pure function of both."""
    digest = hashlib.blake2b(f"{salt}\0{document_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def is_heldout(document_id: str, share: float, salt: str) -> bool:
    """Whether ``document_id`` is held out (the rule :data:`HOLDOUT_RULE` states)."""
    return id_hash(document_id, salt) < share


def split(
    documents: Sequence[ScoredDocument], settings: TrainingSettings
) -> tuple[list[ScoredDocument], list[ScoredDocument]]:
    """(training, held-out) documents; training ones in the training order, at most
    ``settings.max_train``."""
    heldout = [d for d in documents if is_heldout(d.id, settings.heldout_share, settings.salt)]
    training = sorted(
        (d for d in documents if not is_heldout(d.id, settings.heldout_share, settings.salt)),
        key=lambda d: (id_hash(d.id, ORDER_SALT), d.id),
    )
    return training[: settings.max_train], heldout


# --- reading a selection -------------------------------------------------------------------------


@dataclass(frozen=True)
class Teacher:
    """What scored the documents: the selection's scorer record and its selector."""

    selection: str
    scorer: str
    score_key: str
    fraction: float
    selector_model: str | None
    heads_fingerprint: str | None
    heads: list[list[int]] | None


def read_teacher(folder: SelectionFolder) -> Teacher:
    """The scorer of a selection folder and, when it has a heads file, its selector."""
    record = folder.read_scorer()
    model = fingerprint = heads = None
    if folder.exists("heads.json"):
        try:
            retrieval = folder.read_heads()
        except HeadsFileError as error:
            raise ValueError(f"{folder.heads_file}: {error}") from None
        model, fingerprint, heads = (
            retrieval.model,
            retrieval.model_fingerprint,
            retrieval.selected,
        )
    return Teacher(
        folder.root, record.scorer, record.score_key, record.fraction, model, fingerprint, heads
    )


def read_scored(folder: SelectionFolder, score_key: str) -> list[ScoredDocument]:
    """Every scored document of the selection (``OUT/scored/``), read strictly.

    Raises ``ValueError`` naming the file when a document has no ``score_key``, no text or
    no domain, or when an id appears twice (the split is by id).
    """
    files = folder.scored_files()
    if not files:
        raise ValueError(
            f"{folder.root} has no scored documents (scored/<domain>/*.jsonl.gz): run "
            "pipelines/smollm_select.py first"
        )
    documents, seen = [], set()
    for path in files:
        for document in read_documents(path, strict=True):
            documents.append(_scored(document, path, score_key))
            if documents[-1].id in seen:
                raise ValueError(f"{path}: id {documents[-1].id} appears twice")
            seen.add(documents[-1].id)
    return documents


def _scored(document: dict, path: str, score_key: str) -> ScoredDocument:
    metadata, document_id = document["metadata"], str(document["id"])
    score, domain = metadata.get(score_key), metadata.get("domain")
    if not isinstance(score, int | float) or not math.isfinite(score):
        raise ValueError(f"{path}: document {document_id} has no finite '{score_key}'")
    if not isinstance(document["text"], str) or not domain:
        raise ValueError(f"{path}: document {document_id} has no text or no domain")
    return ScoredDocument(document_id, str(domain), document["text"], float(score))


# --- targets, training, prediction ---------------------------------------------------------------


def domain_targets(documents: Sequence[ScoredDocument], target: str, fraction: float) -> np.ndarray:
    """Per document: its rank within its domain scaled to (0, 1] (``rank``; ties share their
    mean rank) or 1.0 / 0.0 for in or out of its domain's top ``fraction`` (``top``, the
    selection's own rule, ties kept)."""
    from scipy.stats import rankdata

    scores = np.array([d.score for d in documents])
    domains = np.array([d.domain for d in documents])
    targets = np.zeros(len(documents))
    for domain in np.unique(domains):
        members = domains == domain
        in_domain = scores[members]
        if target == "rank":
            targets[members] = rankdata(in_domain) / len(in_domain)
        else:
            threshold = top_fraction_threshold(in_domain, np.zeros(len(in_domain)), fraction)
            targets[members] = (in_domain >= threshold.threshold).astype(float)
    return targets


@dataclass
class DistilledModel:
    """A linear model on hashed n-grams: ``score = features(text) . weights + intercept``."""

    features: Features
    weights: np.ndarray
    intercept: float

    def __post_init__(self) -> None:
        self._vectorizer = self.features.vectorizer()

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """The score of each text (float64), one sparse dot product per text: a text's score
        does not depend on the others in the call."""
        if not texts:
            return np.zeros(0)
        return self._vectorizer.transform(texts) @ self.weights + self.intercept


def fit(
    documents: Sequence[ScoredDocument], settings: TrainingSettings, fraction: float
) -> DistilledModel:
    """Train on ``documents`` (all of them: split first)."""
    if len(documents) < 2:
        raise ValueError(f"training needs at least 2 documents, got {len(documents)}")
    targets = domain_targets(documents, settings.target, fraction)
    matrix = settings.features.vectorizer().transform([d.text for d in documents])
    if settings.target == "rank":
        from sklearn.linear_model import Ridge

        model = Ridge(alpha=settings.alpha, solver="sparse_cg").fit(matrix, targets)
        weights, intercept = model.coef_, float(model.intercept_)
    else:
        from sklearn.linear_model import LogisticRegression

        if len(set(targets)) < 2:
            raise ValueError("every training document has the same label: train on more")
        model = LogisticRegression(C=1 / settings.alpha, max_iter=1000).fit(matrix, targets)
        weights, intercept = model.coef_[0], float(model.intercept_[0])
    return DistilledModel(settings.features, np.asarray(weights, dtype=np.float64), intercept)


# --- agreement -----------------------------------------------------------------------------------


def agreement(
    domains: Sequence[str],
    teacher: Sequence[float],
    student: Sequence[float],
    fraction: float,
) -> dict:
    """How well ``student`` scores select like ``teacher`` scores, per domain and overall.

    Per domain: the top ``fraction`` by each (the selection's rule: ``k = ceil(fraction * n)``,
    ties kept), their Jaccard, the Jaccard two independent random selections of that size
    would have on average (``chance_jaccard``), and the Spearman correlation of the scores.
    Overall: the Jaccard of the union of the domains' selections, and the mean Spearman.
    """
    domain_array = np.array(domains)
    teacher_array, student_array = np.asarray(teacher, float), np.asarray(student, float)
    per_domain, kept = {}, {"teacher": 0, "student": 0, "both": 0}
    for domain in sorted(set(domains)):
        members = domain_array == domain
        top_teacher = _top(teacher_array[members], fraction)
        top_student = _top(student_array[members], fraction)
        both = int((top_teacher & top_student).sum())
        union = int((top_teacher | top_student).sum())
        size = int(members.sum())
        per_domain[domain] = {
            "documents": size,
            "selected_teacher": int(top_teacher.sum()),
            "selected_student": int(top_student.sum()),
            "selected_both": both,
            "jaccard": both / union,
            "chance_jaccard": _chance_jaccard(size, int(top_teacher.sum())),
            "spearman": _finite(spearman(teacher_array[members], student_array[members])),
        }
        kept["teacher"] += int(top_teacher.sum())
        kept["student"] += int(top_student.sum())
        kept["both"] += both
    correlations = [row["spearman"] for row in per_domain.values() if row["spearman"] is not None]
    union = kept["teacher"] + kept["student"] - kept["both"]
    return {
        "fraction": fraction,
        "documents": len(domains),
        "jaccard": kept["both"] / union if union else None,
        "mean_spearman": float(np.mean(correlations)) if correlations else None,
        "domains": per_domain,
    }


def _top(scores: np.ndarray, fraction: float) -> np.ndarray:
    threshold = top_fraction_threshold(scores, np.zeros(len(scores)), fraction).threshold
    return scores >= threshold


def _chance_jaccard(documents: int, selected: int) -> float:
    """Expected |A & B| / |A | B| of two independent uniform draws of ``selected`` of
    ``documents`` items, approximated by the ratio of expectations ``p / (2 - p)``, ``p`` the
    selected share (0.111 at 20 %)."""
    share = selected / documents
    return share / (2 - share)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


# --- the model folder ----------------------------------------------------------------------------


@dataclass
class DistillResult:
    """What :func:`distill` made: the model, its record, the held-out predictions."""

    model: DistilledModel
    record: dict
    heldout: list[ScoredDocument]
    heldout_predictions: np.ndarray


def distill(
    selection: str | Path,
    settings: TrainingSettings,
    fraction: float | None = None,
    documents: Sequence[ScoredDocument] | None = None,
) -> DistillResult:
    """Train on the selection's scored documents and measure agreement on the held-out ones.

    ``fraction`` defaults to the selection's; ``documents`` (already read with
    :func:`read_scored`) saves reading them again when one selection is distilled many
    times. Raises ``ValueError`` when the split leaves no training or no held-out document.
    """
    folder = SelectionFolder(selection)
    teacher = read_teacher(folder)
    fraction = teacher.fraction if fraction is None else fraction
    if documents is None:
        documents = read_scored(folder, teacher.score_key)
    training, heldout = split(documents, settings)
    if not training or not heldout:
        raise ValueError(
            f"{len(documents)} documents split into {len(training)} for training and "
            f"{len(heldout)} held out (share {settings.heldout_share}): both must be non-empty"
        )
    started = time.monotonic()
    model = fit(training, settings, fraction)
    seconds = time.monotonic() - started
    predictions = model.predict([d.text for d in heldout])
    measured = agreement(
        [d.domain for d in heldout], [d.score for d in heldout], predictions, fraction
    )
    record = training_record(
        teacher, settings, fraction, model, documents, training, heldout, measured, seconds
    )
    return DistillResult(model, record, heldout, predictions)


def training_record(
    teacher: Teacher,
    settings: TrainingSettings,
    fraction: float,
    model: DistilledModel,
    documents: Sequence[ScoredDocument],
    training: Sequence[ScoredDocument],
    heldout: Sequence[ScoredDocument],
    measured: dict,
    seconds: float,
) -> dict:
    """``distilled.json``: everything needed to know what the model is and to reproduce it."""
    from sklearn import __version__ as sklearn_version

    counts: dict[str, dict[str, int]] = {}
    for kind, group in (("scored", documents), ("train", training), ("heldout", heldout)):
        for document in group:
            row = counts.setdefault(document.domain, {"scored": 0, "train": 0, "heldout": 0})
            row[kind] += 1
    return {
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "library": {"name": LIBRARY, "version": sklearn_version},
        "model": {
            "kind": "ridge regression" if settings.target == "rank" else "logistic regression",
            "target": settings.target,
            "score": "hashed n-gram features . weights + intercept",
            "features": asdict(model.features),
            "weights": WEIGHTS_FILE,
            "intercept": model.intercept,
        },
        "trained_on": {
            **asdict(teacher),
            "fraction": fraction,
            "documents": dict(sorted(counts.items())),
        },
        "holdout": {
            "share": settings.heldout_share,
            "salt": settings.salt,
            "rule": HOLDOUT_RULE,
            "ids_file": HELDOUT_IDS_FILE,
            "documents": len(heldout),
        },
        "training": {
            "alpha": settings.alpha,
            "max_train": settings.max_train,
            "order": f"the held-in documents sorted by the same hash with salt '{ORDER_SALT}'",
            "documents": len(training),
            "seconds": seconds,
        },
        "heldout_agreement": measured,
    }


def save(result: DistillResult, out: str | Path) -> Path:
    """Write the model folder (see the module docstring); returns it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / WEIGHTS_FILE, result.model.weights)
    ids = sorted(d.id for d in result.heldout)
    (out / HELDOUT_IDS_FILE).write_text("".join(f"{i}\n" for i in ids))
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
    """``MODEL_DIR/distilled.json``; ``ValueError`` when the folder holds no distilled model."""
    path = Path(model_dir) / RECORD_FILE
    if not path.is_file():
        raise ValueError(f"{model_dir} is not a distilled model folder: {RECORD_FILE} is missing")
    record = json.loads(path.read_text())
    if record.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format version {record.get('format_version')} is not {FORMAT_VERSION}"
        )
    return record


def load_model(model_dir: str | Path) -> DistilledModel:
    """The model a folder written by :func:`save` holds (no pickle: settings and weights)."""
    record = read_record(model_dir)
    features = Features(**record["model"]["features"])
    weights = np.load(Path(model_dir) / record["model"]["weights"], allow_pickle=False)
    if weights.shape != (2**features.bits,):
        raise ValueError(f"{model_dir}: weights of shape {weights.shape} do not fit the features")
    return DistilledModel(features, weights, float(record["model"]["intercept"]))


def read_ids(path: str | Path) -> set[str]:
    """Ids, one per line, of a file or of a model folder's held-out ids file."""
    path = Path(path)
    if path.is_dir():
        path = path / read_record(path)["holdout"]["ids_file"]
    if not path.is_file():
        raise ValueError(f"{path} does not exist: give a file of ids or a distilled model folder")
    return {line for line in path.read_text().splitlines() if line}

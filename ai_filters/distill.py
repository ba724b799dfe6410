"""Distil a selection's scores into a fast text model (``ai-filters distill``).

Scoring costs the selector two forward passes per token. The cheap way to select from a huge
corpus is to score a sample with the selector, train a small text model to rank documents as
the scores do, and apply that model to everything. This module trains it on the scored
documents of a selection folder (``OUT/scored/<domain>/*.jsonl.gz``), holds out a share of them
to measure agreement, and writes the model folder the ``distilled`` scorer applies
(:class:`ai_filters.blocks.DistilledScorer`).

**The model.** Per domain, a ridge regression of the document's rank within its domain (the
target: every document teaches, not only the top ones) on two kinds of features: hashed word
1-2-grams of the lowercased text (scikit-learn's ``HashingVectorizer``, L2-normalised), and a
few statistics of the text (:data:`STATISTICS`: its length, how much of it repeats itself,
its share of letters, digits and line breaks; standardised). The statistics are there because
AttentionInfluence rewards what retrieval heads can copy from the context, which n-gram counts
alone do not see: on this project's corpus they raise the held-out agreement (the README gives
the numbers). A pooled model, trained on every domain, scores the documents of any domain the
model has no model for. The score is ``x . w_domain + b_domain``; the selection keeps the top
fraction of each domain by it, as for any scorer. Targets come from the training documents
alone: a document's rank is counted among the training documents of its domain.

**Why scikit-learn, not fastText.** fastText is what datatrove's ``FastTextClassifierFilter``
and DCLM use, but in 2026 it does not install cleanly from a wheel: the ``fasttext`` project
on PyPI ships source only for Linux (a C++ build on every fresh machine) and its repository is
archived; ``fasttext-wheel`` breaks at prediction time under numpy 2 (``np.array(...,
copy=False)``); ``fasttext-numpy2-wheel`` (what datatrove's filter accepts) has wheels for
CPython 3.8-3.12 only, none for 3.13 nor for ARM macOS, and pins ``numpy>=2``. scikit-learn
ships official wheels for every supported CPython on Linux (x86-64 and ARM), macOS and
Windows, works with numpy 1 and 2, and needs only scipy (already a dependency) besides two
small pure-Python packages. Its hashing vectorizer is stateless, so the model file is plain
data: the weights (``weights.npy``) and the settings (``distilled.json``), no pickle, no
code run at load time, and no tie to the scikit-learn version that trained it (the hash is
MurmurHash3 with a fixed seed). Prediction is a sparse dot product: thousands of documents per
second per core (``benchmarks/bench_distilled.py`` measures it against the selector).

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
    MODEL_DIR/weights.npy        float32, one row per domain model then the pooled model's,
                                 one column per feature (hashed n-grams, then statistics)
    MODEL_DIR/heldout_ids.txt    the held-out ids, one per line, sorted
    MODEL_DIR/heldout.parquet    per held-out document: id, domain, score, prediction
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
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
LIBRARY = "scikit-learn"
HOLDOUT_RULE = (
    "held out when int.from_bytes(blake2b(f'{salt}\\0{id}', digest_size=8), 'big') / 2**64 < share"
)
ORDER_SALT = "training-order"  # the salt of the training order (max_train)
POOLED = "*"  # the name of the pooled model, for documents of other domains
STATISTICS = (
    "log_chars",
    "log_tokens",
    "distinct_tokens",  # distinct tokens / tokens: how little the text repeats itself
    "distinct_bigrams",
    "distinct_4grams",
    "letters",  # share of the characters
    "digits",
    "line_breaks",
)
_LETTER = re.compile(r"[^\W\d_]")
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class Features:
    """What the model sees of a text: hashed word 1- to ``max_ngram``-grams of the lowercased
    text (``2**bits`` features, tokens ``token_pattern``: runs of letters, digits and
    underscores, and single other symbols, so code and formulas keep their operators),
    L2-normalised; then, with ``statistics``, the :data:`STATISTICS` of the text."""

    bits: int = 20
    max_ngram: int = 2
    token_pattern: str = r"\w+|[^\w\s]"
    statistics: bool = True

    def vectorizer(self):
        from sklearn.feature_extraction.text import HashingVectorizer

        return HashingVectorizer(
            n_features=2**self.bits,
            ngram_range=(1, self.max_ngram),
            token_pattern=self.token_pattern,
            lowercase=True,
            alternate_sign=False,
            norm="l2",
            dtype=np.float64,
        )

    @property
    def statistics_count(self) -> int:
        return len(STATISTICS) if self.statistics else 0


def text_statistics(text: str, token_pattern: str) -> list[float]:
    """The :data:`STATISTICS` of ``text``, in that order (tokens as the n-grams see them)."""
    tokens = re.findall(token_pattern, text.lower())
    chars = max(len(text), 1)
    return [
        math.log1p(len(text)),
        math.log1p(len(tokens)),
        _distinct_share(tokens, 1),
        _distinct_share(tokens, 2),
        _distinct_share(tokens, 4),
        _LETTER.subn("", text)[1] / chars,
        _DIGIT.subn("", text)[1] / chars,
        text.count("\n") / chars,
    ]


def _distinct_share(tokens: list[str], n: int) -> float:
    """Distinct ``n``-grams / ``n``-grams (1.0 for a text with none)."""
    grams = list(zip(*(tokens[i:] for i in range(n)), strict=False))
    return len(set(grams)) / len(grams) if grams else 1.0


@dataclass(frozen=True)
class TrainingSettings:
    """How a model is trained: the regularisation, the split, its size, per domain or not."""

    alpha: float = 1.0  # the ridge penalty
    heldout_share: float = 0.2
    salt: str = "heldout"
    max_train: int | None = None
    per_domain: bool = True  # one model per domain (and the pooled one); False: pooled only
    features: Features = field(default_factory=Features)

    def __post_init__(self) -> None:
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


def rank_targets(documents: Sequence[ScoredDocument]) -> np.ndarray:
    """Per document, its rank among the documents of its domain scaled to (0, 1] (ties share
    their mean rank)."""
    from scipy.stats import rankdata

    scores = np.array([d.score for d in documents])
    domains = np.array([d.domain for d in documents])
    targets = np.zeros(len(documents))
    for domain in np.unique(domains):
        members = domains == domain
        targets[members] = rankdata(scores[members]) / members.sum()
    return targets


@dataclass
class DistilledModel:
    """Linear models on :class:`Features`: one per name of ``domains``, the last one the pooled
    model (:data:`POOLED`), which scores documents of any other domain.

    ``weights`` holds a row per model (float32, stored so; the products are float64) and
    ``statistics_mean`` / ``statistics_scale`` standardise the statistics as in training.
    """

    features: Features
    domains: list[str]
    weights: np.ndarray
    intercepts: np.ndarray
    statistics_mean: np.ndarray
    statistics_scale: np.ndarray

    def __post_init__(self) -> None:
        self._vectorizer = self.features.vectorizer()
        self._rows = {domain: row for row, domain in enumerate(self.domains)}

    def matrix(self, texts: Sequence[str]):
        """The feature matrix of ``texts`` (scipy CSR, one row per text)."""
        from scipy import sparse

        hashed = self._vectorizer.transform(texts)
        if not self.features.statistics:
            return hashed
        pattern = self.features.token_pattern
        values = np.array([text_statistics(text, pattern) for text in texts], dtype=np.float64)
        standard = (values - self.statistics_mean) / self.statistics_scale
        return sparse.hstack([hashed, sparse.csr_matrix(standard)], format="csr")

    def row(self, domain: str | None) -> int:
        """The model that scores a document of ``domain``: its own, else the pooled one."""
        return self._rows.get(domain, len(self.domains) - 1)

    def predict(self, texts: Sequence[str], domains: Sequence[str | None]) -> np.ndarray:
        """The score of each text under the model of its domain (float64). One sparse dot
        product per text, so a text's score does not depend on the others in the call."""
        scores = np.zeros(len(texts))
        if not texts:
            return scores
        matrix = self.matrix(texts)
        rows = np.array([self.row(domain) for domain in domains])
        weights = self.weights.astype(np.float64)
        for row in np.unique(rows):
            members = np.flatnonzero(rows == row)
            scores[members] = matrix[members] @ weights[row] + self.intercepts[row]
        return scores


def fit(documents: Sequence[ScoredDocument], settings: TrainingSettings) -> DistilledModel:
    """Train on ``documents`` (all of them: split first): a ridge regression per domain with
    at least 2 documents (with ``per_domain``), and the pooled one on all."""
    from sklearn.linear_model import Ridge

    if len(documents) < 2:
        raise ValueError(f"training needs at least 2 documents, got {len(documents)}")
    features = settings.features
    texts = [d.text for d in documents]
    statistics = np.array([text_statistics(t, features.token_pattern) for t in texts])
    mean = statistics.mean(axis=0) if features.statistics else np.zeros(0)
    scale = statistics.std(axis=0) if features.statistics else np.zeros(0)
    scale = np.where(scale > 0, scale, 1.0)
    domains = sorted({d.domain for d in documents}) if settings.per_domain else []
    domains = [d for d in domains if sum(doc.domain == d for doc in documents) >= 2]
    draft = DistilledModel(features, [*domains, POOLED], np.zeros((0, 0)), np.zeros(0), mean, scale)
    matrix, targets = draft.matrix(texts), rank_targets(documents)
    labels = np.array([d.domain for d in documents])
    weights, intercepts = [], []
    for name in draft.domains:
        members = np.flatnonzero(labels == name) if name != POOLED else np.arange(len(labels))
        ridge = Ridge(alpha=settings.alpha, solver="sparse_cg").fit(
            matrix[members], targets[members]
        )
        weights.append(ridge.coef_.astype(np.float32))
        intercepts.append(float(ridge.intercept_))
    return replace(draft, weights=np.stack(weights), intercepts=np.array(intercepts))


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
    model = fit(training, settings)
    seconds = time.monotonic() - started
    predictions = model.predict([d.text for d in heldout], [d.domain for d in heldout])
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
            "per_domain": settings.per_domain,
            "solver": "scikit-learn Ridge(solver='sparse_cg')",
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
    model = read_record(model_dir)["model"]
    features = Features(**model["features"])
    weights = np.load(Path(model_dir) / model["weights"], allow_pickle=False)
    expected = (len(model["domains"]), 2**features.bits + features.statistics_count)
    if weights.shape != expected:
        raise ValueError(f"{model_dir}: weights of shape {weights.shape}, expected {expected}")
    return DistilledModel(
        features,
        list(model["domains"]),
        weights,
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

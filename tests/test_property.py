"""Property tests: random Unicode documents through `ai-filters score` and the datatrove block.

For any documents (any code point, lone surrogates and control characters included; empty,
whitespace-only, very long; text missing, null or not a string), every document read is scored
or skipped with a reason, per domain read = scored + skipped, every score is finite, and text
with at least two tokens is never skipped.

Bounded on purpose (see docs/command-line.md, Bad input): the tiny random Llama with the real
embedded tokenizer, loaded once per session; at most a few thousand characters per generated
text, one explicit long example; no deadline; no example database. These tests take seconds.
"""

from __future__ import annotations

import gzip
import json
import math
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from datatrove.pipeline.writers import JsonlWriter
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ai_filters.blocks import AttentionInfluenceScorer, DomainsReader
from ai_filters.documents import read_documents
from ai_filters.engine.score_files import score_file, skipped_path
from ai_filters.engine.scoring import ScoringConfig, ScoringEngine
from ai_filters.engine.settings import EngineSettings
from tests.helpers.models import TINY_HEADS

MAX_TOKENS = 64
DOMAINS = ("web", "code")


class _Missing:
    """Stands for a record without a text field."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


class _LongText(str):
    """A long text that a failing example prints as its length, not its 500,000 characters."""

    def __repr__(self) -> str:
        return f"<text of {len(self)} characters>"


REASONS = {"too_short", "missing_text", "untokenizable_text", "non_finite_loss", "zero_base_loss"}

ANY_CHARACTER = st.characters(exclude_categories=())  # every code point, surrogates included
TEXTS = st.one_of(
    st.text(ANY_CHARACTER, max_size=3000),
    st.text(ANY_CHARACTER, min_size=1, max_size=8).map(lambda piece: piece * 4000),  # long
    st.sampled_from(["", " ", "\n\t \r", "\x00", "a", "\ud800"]),
)
VALUES = st.one_of(TEXTS, st.none(), st.integers(), st.just(MISSING))
LABELS = st.text(ANY_CHARACTER, max_size=12)  # put into the id and a metadata field
DOCUMENTS = st.lists(st.tuples(VALUES, st.sampled_from(DOMAINS), LABELS), min_size=1, max_size=8)
LONG_TEXT = _LongText("".join(map(chr, range(0x20, 0xD800))) * 9)  # 500,000 characters, all scripts
EXAMPLE = [
    (LONG_TEXT, "web", "long"),
    ("", "web", "empty"),
    (" \n ", "code", "\ud800"),
    (None, "code", "null"),
    (MISSING, "web", ""),
    ("A sentence with an id that UTF-8 cannot store.", "code", "\udfff"),
]
PROPERTY = settings(
    max_examples=40,
    deadline=None,  # the first example also tokenizes a long text; timing is not the property
    database=None,  # nothing written to .hypothesis/ by CI runs
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def engine(tiny) -> ScoringEngine:
    loaded, _ = tiny
    return ScoringEngine(loaded, TINY_HEADS, ScoringConfig(max_tokens=MAX_TOKENS))


def write_records(documents: list[tuple[object, str, str]], folder: Path) -> dict[int, str]:
    """One .jsonl per domain under ``folder/<domain>/`` (JSON escapes lone surrogates); the
    record of document ``i`` has the id ``doc-<i>-<label>``. Returns index -> domain."""
    domains = {}
    for index, (value, domain, label) in enumerate(documents):
        record = {"id": f"doc-{index}-{label}", "domain": domain, "title": label}
        if value is not MISSING:
            record["text"] = value
        (folder / domain).mkdir(parents=True, exist_ok=True)
        with open(folder / domain / "part.jsonl", "a", encoding="ascii") as file:
            file.write(json.dumps(record) + "\n")
        domains[index] = domain
    return domains


def index_of(doc_id: str) -> int:
    """The document's position in the generated list (its label may have been repaired)."""
    return int(doc_id.split("-", 2)[1])


def read_jsonl_gz(folder: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(folder.glob("*.jsonl.gz"))
        for line in gzip.open(path, "rt", encoding="utf-8")
    ]


def must_be_scored(engine: ScoringEngine, value: object) -> bool:
    """A string the tokenizer encodes into two tokens or more has a next-token loss."""
    ids = engine.tokenize(value) if isinstance(value, str) else None
    return ids is not None and len(ids) >= 2


def assert_finite_scores(metadata: dict) -> None:
    for key in ("attention_influence", "ai_loss_base", "ai_loss_ref"):
        assert math.isfinite(metadata[key]), (key, metadata)


@PROPERTY
@given(documents=DOCUMENTS)
@example(documents=EXAMPLE)
def test_score_files_accounts_for_random_documents(engine, documents):
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        domains = write_records(documents, folder)
        inputs = [folder / domain / "part.jsonl" for domain in sorted(set(domains.values()))]
        summary = score_file(engine, inputs, folder / "out.jsonl")
        scored = list(read_documents(folder / "out.jsonl"))
        skipped = list(read_documents(skipped_path(folder / "out.jsonl")))
    assert sorted(index_of(d["id"]) for d in scored + skipped) == sorted(domains)  # once each
    assert summary.read == Counter(domains.values())
    for domain, read in summary.read.items():
        assert read == summary.scored[domain] + summary.skipped_in(domain)
    for document in scored:
        assert_finite_scores(document["metadata"])
    for document in skipped:
        assert document["metadata"]["skip_reason"] in REASONS
        value = documents[index_of(document["id"])][0]
        assert not must_be_scored(engine, value), document["metadata"]


@PROPERTY
@given(documents=DOCUMENTS)
@example(documents=EXAMPLE)
def test_datatrove_block_accounts_for_random_documents(engine, tiny, documents):
    """The selection pipeline's scoring stage: DomainsReader -> scorer -> JsonlWriter."""
    _, heads = tiny
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        domains = write_records(documents, folder)
        specs = {d: {"reader": "jsonl", "path": str(folder / d)} for d in set(domains.values())}
        reader = DomainsReader(specs)
        scorer = AttentionInfluenceScorer(
            heads,
            model=str(heads.parent / "model"),
            engine=EngineSettings(ScoringConfig(max_tokens=MAX_TOKENS), "cpu", "float32"),
            docs_per_batch=4,
            exclusion_writer=JsonlWriter(str(folder / "skipped")),
        )
        writer = JsonlWriter(str(folder / "scored"))
        for _ in writer.run(scorer.run(reader.run())):
            pass
        scored, dropped = read_jsonl_gz(folder / "scored"), read_jsonl_gz(folder / "skipped")
    read = {key.removeprefix("read_"): stat.total for key, stat in reader.stats.stats.items()}
    assert read == Counter(domains.values())  # the reader counts every record
    assert sorted(index_of(d["id"]) for d in scored + dropped) == sorted(domains)  # once each
    stats = {key: stat.total for key, stat in scorer.stats.stats.items()}
    reasons = {key.removeprefix("dropped_") for key in stats} & REASONS
    assert stats.get("forwarded", 0) + sum(stats[f"dropped_{r}"] for r in reasons) == len(domains)
    for document in scored:
        assert_finite_scores(document["metadata"])
    for document in dropped:
        assert document["metadata"]["filter_reason"] in REASONS
        value = documents[index_of(document["id"])][0]
        assert not must_be_scored(engine, value), document["metadata"]

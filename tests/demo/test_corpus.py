"""The offline four-domain corpus, and that it is the same on every machine with the pins."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from ai_filters.demo.corpus import (
    DOMAINS,
    MATH_DISTRIBUTION,
    MIN_CHARS,
    PINNED_PYTHON,
    SOURCE_TEXT_KEY,
    WEB_DISTRIBUTIONS,
    corpus_fingerprint,
    domain_fingerprints,
    local_corpus,
    pin_mismatches,
)
from ai_filters.demo.steps import PINNED_DEMO_CORPUS, corpus_check_line

ROOT = Path(__file__).resolve().parents[2]


def test_four_domains_of_real_documents_reproducibly():
    documents = local_corpus(docs_per_domain=5, seed=2)
    assert Counter(d["metadata"]["domain"] for d in documents) == {domain: 5 for domain in DOMAINS}
    assert all(len(d["text"]) >= MIN_CHARS for d in documents)
    assert len({d["id"] for d in documents}) == 20
    assert local_corpus(docs_per_domain=5, seed=2) == documents
    code = [d["text"] for d in documents if d["metadata"]["domain"] == "code"]
    assert all("def " in text or "class " in text or "import " in text for text in code)
    math = [d["text"] for d in documents if d["metadata"]["domain"] == "math"]
    assert all(".. math" in text for text in math)


# builds the demo corpus as `make demo` does and prints its record (corpus.json) as JSON
BUILD_DEMO_CORPUS = """
import json
from ai_filters.demo.steps import CHUNK_CHARS, PINNED_DEMO_CORPUS, corpus_record
from ai_filters.demo.corpus import local_corpus
size, seed = PINNED_DEMO_CORPUS["docs_per_domain"], PINNED_DEMO_CORPUS["seed"]
documents = local_corpus(size, seed, chunk_chars=CHUNK_CHARS)
print(json.dumps(corpus_record(documents, size, seed)))
"""


@pytest.fixture(scope="module")
def demo_corpus_builds() -> list[dict]:
    """The demo corpus's record from two fresh processes with different string hash seeds."""
    records = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", BUILD_DEMO_CORPUS],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        records.append(json.loads(done.stdout.splitlines()[-1]))
    return records


def test_two_fresh_processes_build_the_same_demo_corpus(demo_corpus_builds) -> None:
    first, second = demo_corpus_builds
    assert first["documents"] == 200
    assert first["fingerprint"] == second["fingerprint"]
    assert first["domains"] == second["domains"]


def test_the_demo_corpus_is_the_pinned_one(demo_corpus_builds) -> None:
    record = demo_corpus_builds[0]
    if platform.python_version() != PINNED_PYTHON:
        pytest.skip(
            f"Python {platform.python_version()}: the pinned demo corpus is Python "
            f"{PINNED_PYTHON}'s (its Language Reference and standard library)"
        )
    if record["pin_mismatches"]:
        pytest.skip("installed versions differ from the pins: see test_installed_versions_...")
    assert record["is_pinned_corpus"], corpus_check_line(record)


def test_installed_versions_are_the_pinned_ones() -> None:
    """What `make install` installs (constraints.txt) is what the corpus pins."""
    differing = [m for m in pin_mismatches() if not m.startswith("Python ")]
    assert not differing, (
        f"the demo corpus reads other versions than pinned: {'; '.join(differing)}"
    )


def test_the_corpus_pins_are_the_versions_of_constraints_txt() -> None:
    constraints = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            constraints[canonicalize_name(name)] = version
    pins = {**WEB_DISTRIBUTIONS, MATH_DISTRIBUTION[0]: MATH_DISTRIBUTION[1]}
    assert {name: constraints.get(canonicalize_name(name)) for name in pins} == pins
    assert constraints["torch"] == "2.13.0"


def test_the_web_domain_reads_only_the_pinned_distributions() -> None:
    documents = local_corpus(docs_per_domain=30, seed=0, chunk_chars=1200)
    names = {d["id"].split("/")[1].split("#")[0] for d in documents if d["id"].startswith("web/")}
    assert names and names <= set(WEB_DISTRIBUTIONS)


def test_the_fingerprint_ignores_order_and_sees_one_character() -> None:
    documents = [
        {"id": "web/a#0", "text": "alpha", "metadata": {"domain": "web"}},
        {"id": "code/b#0", "text": "beta", "metadata": {"domain": "code"}},
    ]
    assert corpus_fingerprint(documents) == corpus_fingerprint(documents[::-1])
    changed = [documents[0], {**documents[1], "text": "betA"}]
    assert corpus_fingerprint(changed) != corpus_fingerprint(documents)
    assert domain_fingerprints(changed)["web"] == domain_fingerprints(documents)["web"]
    assert domain_fingerprints(changed)["code"] != domain_fingerprints(documents)["code"]


def test_a_corpus_that_is_not_the_pinned_one_is_named_in_one_line() -> None:
    record = {
        "fingerprint": "sha256:0000000000000000",
        "pinned_fingerprint": PINNED_DEMO_CORPUS["fingerprint"],
        "is_pinned_corpus": False,
        "domains": {**PINNED_DEMO_CORPUS["domains"], "web": "sha256:1111111111111111"},
        "pin_mismatches": ["python-dateutil 2.9.0.post0 (pinned 4.0.0)"],
    }
    line = corpus_check_line(record)
    assert "\n" not in line
    assert line.startswith("warning: demo corpus sha256:0000000000000000 is not the pinned one")
    assert "(domains web differ): python-dateutil 2.9.0.post0 (pinned 4.0.0);" in line


def test_pieces_name_the_text_they_were_cut_from():
    """``source_text``: a piece's text (its id before ``#``), shared by the pieces of one text;
    a whole text names itself. The group key of distillation's held-out split."""
    pieces = local_corpus(40, seed=0, chunk_chars=300)
    assert all(d["metadata"][SOURCE_TEXT_KEY] == d["id"].rpartition("#")[0] for d in pieces)
    texts = Counter(d["metadata"][SOURCE_TEXT_KEY] for d in pieces)
    assert max(texts.values()) > 1  # pieces of one text share it
    whole = local_corpus(3, seed=0)
    assert all(d["metadata"][SOURCE_TEXT_KEY] == d["id"] for d in whole)

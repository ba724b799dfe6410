"""The offline four-domain corpus."""

from __future__ import annotations

from collections import Counter

from ai_filters.corpus import DOMAINS, MIN_CHARS, local_corpus


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

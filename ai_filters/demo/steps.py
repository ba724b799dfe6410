"""The offline demo's own steps, used by ``pipelines/smollm_select.py --demo``.

1. :func:`detect_and_check`: detect the embedded model's retrieval heads (heads.json,
   heads.png) and check them: the answer loss of probes with the heads masked versus with as
   many random other heads masked (heads_check.json);
2. :func:`write_demo_corpus`: a real four-domain corpus made from text on this machine
   (:mod:`ai_filters.demo.corpus`), as jsonl.gz shards per domain, with its fingerprint checked
   against the pinned demo corpus (``corpus.json``).
"""

from __future__ import annotations

import json
from pathlib import Path

from datatrove.io import get_datafolder

from ai_filters.demo.corpus import (
    PINNED_PYTHON,
    corpus_fingerprint,
    domain_fingerprints,
    local_corpus,
    pin_mismatches,
)
from ai_filters.engine.heads import DetectionSettings, detect_and_save, random_other_heads
from ai_filters.engine.models import load_model
from ai_filters.engine.retrieval_scores import probe_answer_losses

# the demo's detection: 32 probes of 1,024 tokens (the paper: 800 of 4,096), the rest the same
DEMO_DETECTION = DetectionSettings(num_probes=32, probe_tokens=1024)
CHECK_PROBES = 8
RANDOM_DRAWS = 2
CHUNK_CHARS = 1200
SHARDS_PER_DOMAIN = 2
# The demo corpus (50 documents per domain, seed 0, pieces of CHUNK_CHARS) that every machine
# with the pins of ai_filters.demo.corpus builds (Python 3.11.7, constraints.txt installed by
# `make install`), measured with them; tests/demo/test_corpus.py builds it again.
PINNED_DEMO_CORPUS = {
    "docs_per_domain": 50,
    "seed": 0,
    "fingerprint": "sha256:ce8982a84c13eb57",
    "domains": {
        "code": "sha256:19a3e70c31fa7707",
        "math": "sha256:29a35f1de5ab8960",
        "textbook": "sha256:6dfb2b2aa1604df5",
        "web": "sha256:114c70ead85db338",
    },
}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def check_heads(loaded, heads, probes, losses) -> dict:
    """Answer loss of the first probes: plain, retrieval heads masked, random heads masked."""
    probes, plain = probes[:CHECK_PROBES], losses[:CHECK_PROBES]
    selected = heads.selected_heads
    masked = probe_answer_losses(loaded, probes, selected)
    random_losses = [
        _mean(
            probe_answer_losses(
                loaded,
                probes,
                random_other_heads(selected, heads.num_layers, heads.num_heads, seed),
            )
        )
        for seed in range(RANDOM_DRAWS)
    ]
    return {
        "probes": len(probes),
        "answer_loss_plain": _mean(plain),
        "answer_loss_retrieval_heads_masked": _mean(masked),
        "answer_loss_random_heads_masked": _mean(random_losses),
        "random_draws": random_losses,
    }


def detect_and_check(out: Path, model: str, settings: DetectionSettings = DEMO_DETECTION) -> dict:
    """Write ``out/heads.json``, ``out/heads.png`` and ``out/heads_check.json``, the heads
    detected as ``settings`` say."""
    loaded = load_model(model)
    print(
        f"demo: detecting heads with {settings.num_probes} probes of {settings.probe_tokens} "
        "tokens (the paper: 800 of 4,096; run 'ai-filters detect-heads' for that)"
    )
    heads, probes, losses = detect_and_save(loaded, settings, out / "heads.json", out / "heads.png")
    check = check_heads(loaded, heads, probes, losses)
    print(
        f"probe answer loss on {check['probes']} probes: plain {check['answer_loss_plain']:.3f}, "
        f"{len(heads.selected)} retrieval heads masked "
        f"{check['answer_loss_retrieval_heads_masked']:.3f}, as many random heads masked "
        f"{check['answer_loss_random_heads_masked']:.3f} (mean of {RANDOM_DRAWS} draws)"
    )
    (out / "heads_check.json").write_text(json.dumps(check, indent=1) + "\n")
    return check


def corpus_record(documents: list[dict], docs_per_domain: int, seed: int) -> dict:
    """The corpus's fingerprints, what differs from the pins on this machine, and whether it is
    :data:`PINNED_DEMO_CORPUS` (None when ``docs_per_domain`` or ``seed`` differ from its)."""
    record = {
        "documents": len(documents),
        "docs_per_domain": docs_per_domain,
        "seed": seed,
        "fingerprint": corpus_fingerprint(documents),
        "domains": domain_fingerprints(documents),
        "pinned_python": PINNED_PYTHON,
        "pin_mismatches": pin_mismatches(),
        "pinned_fingerprint": None,
        "is_pinned_corpus": None,
    }
    if (docs_per_domain, seed) == (
        PINNED_DEMO_CORPUS["docs_per_domain"],
        PINNED_DEMO_CORPUS["seed"],
    ):
        record["pinned_fingerprint"] = PINNED_DEMO_CORPUS["fingerprint"]
        record["is_pinned_corpus"] = record["fingerprint"] == PINNED_DEMO_CORPUS["fingerprint"]
    return record


def corpus_check_line(record: dict) -> str:
    """One line: the corpus is the pinned one, or which domains differ and why they may."""
    if record["is_pinned_corpus"]:
        return f"demo corpus {record['fingerprint']}: the pinned demo corpus"
    if record["is_pinned_corpus"] is None:
        return f"demo corpus {record['fingerprint']} (not the pinned size and seed: not compared)"
    differing = [
        domain
        for domain, fingerprint in record["domains"].items()
        if PINNED_DEMO_CORPUS["domains"].get(domain) != fingerprint
    ]
    causes = "; ".join(record["pin_mismatches"]) or "no pin differs (another build of Python?)"
    return (
        f"warning: demo corpus {record['fingerprint']} is not the pinned one "
        f"{record['pinned_fingerprint']} (domains {', '.join(differing)} differ): {causes}; "
        "`make install` installs the pinned versions (constraints.txt)"
    )


def write_demo_corpus(folder: str | Path, docs_per_domain: int, seed: int = 0) -> dict[str, int]:
    """Write ``folder/<domain>/0000i.jsonl.gz`` shards (a local folder or a URL datatrove
    writes) and ``folder/corpus.json`` (:func:`corpus_record`), and print whether the corpus is
    the pinned one (:func:`corpus_check_line`); returns documents per domain. The shards are
    rewritten on every call."""
    documents = local_corpus(docs_per_domain, seed, chunk_chars=CHUNK_CHARS)
    counts: dict[str, int] = {}
    for document in documents:
        counts[document["metadata"]["domain"]] = counts.get(document["metadata"]["domain"], 0) + 1
    data = get_datafolder(str(folder))
    for domain in counts:
        in_domain = [d for d in documents if d["metadata"]["domain"] == domain]
        for shard in range(SHARDS_PER_DOMAIN):
            name = f"{domain}/{shard:05d}.jsonl.gz"
            with data.open(name, "wt", compression="gzip", encoding="utf-8") as file:
                for document in in_domain[shard::SHARDS_PER_DOMAIN]:
                    file.write(json.dumps(document, ensure_ascii=False) + "\n")
    record = corpus_record(documents, docs_per_domain, seed)
    with data.open("corpus.json", "wt", encoding="utf-8") as file:
        file.write(json.dumps(record, indent=1) + "\n")
    print(
        "demo corpus: "
        + ", ".join(f"{d} {n} documents" for d, n in counts.items())
        + f" (pieces of about {CHUNK_CHARS} characters) in {folder}"
    )
    print(corpus_check_line(record))
    return counts

"""The learning curve of distillation: agreement with AttentionInfluence against training size.

Steps (each skipped when its output is already there, so a rerun resumes):

1. a local four-domain corpus bigger than the demo's: ``local_corpus(docs_per_domain, seed,
   chunk_chars)`` with smaller pieces -> ``OUT/corpus/<domain>/*.jsonl.gz`` and
   ``OUT/domains.yaml``;
2. the embedded model's retrieval heads, detected as the demo does -> ``OUT/heads.json``;
3. AttentionInfluence selection of that corpus with ``pipelines/smollm_select.py`` ->
   ``OUT/attention_influence/``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from ai_filters.corpus import DOMAINS, local_corpus
from ai_filters.documents import DocumentWriter
from ai_filters.models import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]
SHARDS_PER_DOMAIN = 16  # one datatrove task per shard: a killed run loses at most one shard


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("out/distill"), help="output folder")
    parser.add_argument("--docs-per-domain", type=int, default=680, help="corpus size")
    parser.add_argument("--chunk-chars", type=int, default=300, help="corpus piece length")
    parser.add_argument("--seed", type=int, default=0, help="corpus sample")
    parser.add_argument("--max-tokens", type=int, default=192, help="tokens scored per document")
    return parser.parse_args(argv)


def write_corpus(out: Path, docs_per_domain: int, seed: int, chunk_chars: int) -> dict[str, int]:
    """The corpus as ``SHARDS_PER_DOMAIN`` jsonl.gz shards per domain and its domains file."""
    documents = local_corpus(docs_per_domain, seed, chunk_chars=chunk_chars)
    specs = {}
    for domain in DOMAINS:
        in_domain = [d for d in documents if d["metadata"]["domain"] == domain]
        for shard in range(SHARDS_PER_DOMAIN):
            path = out / "corpus" / domain / f"{shard:05d}.jsonl.gz"
            with DocumentWriter(path) as writer:
                for document in in_domain[shard::SHARDS_PER_DOMAIN]:
                    writer.write(document)
        specs[domain] = {"reader": "jsonl", "path": str((out / "corpus" / domain).resolve())}
    (out / "domains.yaml").write_text(json.dumps(specs, indent=1) + "\n")  # JSON is YAML
    return {domain: docs_per_domain for domain in DOMAINS}


def detect_heads(out: Path) -> Path:
    """``OUT/heads.json``: the embedded model's heads, detected as the demo does."""
    from ai_filters.demo import detect_and_check

    if not (out / "heads.json").is_file():
        detect_and_check(out, DEFAULT_MODEL)
    return out / "heads.json"


def select(out: Path, selection: Path, max_tokens: int, *extra: str) -> None:
    """Run ``pipelines/smollm_select.py`` on the corpus (it resumes what completed)."""
    command = [
        sys.executable,
        str(ROOT / "pipelines" / "smollm_select.py"),
        "--domains",
        str(out / "domains.yaml"),
        "--out",
        str(selection),
        "--max-tokens",
        str(max_tokens),
        "--tasks",
        str(SHARDS_PER_DOMAIN),
        *extra,
    ]
    subprocess.run(command, check=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if not (args.out / "domains.yaml").is_file():
        write_corpus(args.out, args.docs_per_domain, args.seed, args.chunk_chars)
    heads = detect_heads(args.out)
    print(f"corpus and heads: {time.monotonic() - started:.0f} s", flush=True)
    select(args.out, args.out / "attention_influence", args.max_tokens, "--heads", str(heads))
    print(f"scored: {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

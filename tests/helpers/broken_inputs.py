"""Broken input files: every kind of bad record, a truncated ``.jsonl.gz``, a corrupt parquet.

The robustness tests of ``score_file``, of ``ai-filters score`` and of the pipeline's reader
all feed these same files (each test module wraps :func:`write_broken_inputs` in a fixture).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

GOOD = [  # ordinary texts that every scorer scores
    "Rivers carry sediment downstream, and where the current slows the sand settles.",
    "The mitochondria turn glucose and oxygen into ATP through a chain of reactions.",
    "A prime number has exactly two divisors: one and the number itself.",
    "def add(a, b):\n    return a + b\n",
]


def line(document: dict) -> bytes:
    """``document`` as one JSON line."""
    return (json.dumps(document) + "\n").encode()


def write_broken_inputs(folder: Path) -> list[Path]:
    """Write into ``folder`` one file of every kind of bad record, a truncated .jsonl.gz and a
    corrupt parquet; returns ``[bad.jsonl, truncated.jsonl.gz, corrupt.parquet]``."""
    records = [
        line({"id": "empty", "text": "", "domain": "web"}),
        line({"id": "spaces", "text": "   \n\t ", "domain": "web"}),
        line({"id": "one-token", "text": "Hello", "domain": "web"}),
        line({"id": "huge", "text": "The quick brown fox. " * 250_000, "domain": "web"}),
        b'{"id": "bad-utf8", "text": "caf\xe9 \xff", "domain": "web"}\n',
        line({"id": "surrogate", "text": "lone \ud800 surrogate text here", "domain": "web"}),
        line({"id": "controls", "text": "NUL \x00 bell \x07 escape \x1b end", "domain": "code"}),
        line({"id": "number", "text": 42, "domain": "code"}),
        line({"id": "no-text", "domain": "code"}),
        line({"id": "no-domain", "text": "A document without any domain at all."}),
        line({"id": "dup", "text": "First copy of a duplicated id.", "domain": "math"}),
        line({"id": "dup", "text": "Second copy of a duplicated id.", "domain": "math"}),
        b"{not json at all\n",
        b"[1, 2, 3]\n",
    ]
    plain = folder / "bad.jsonl"
    plain.write_bytes(b"".join(records))
    good = b"".join(
        line({"id": f"gz-{i}", "text": f"Sentence number {i} is here.", "domain": "math"})
        for i in range(50)
    )
    truncated = folder / "truncated.jsonl.gz"
    truncated.write_bytes(gzip.compress(good)[:-40])
    corrupt = folder / "corrupt.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": "p", "text": "ok"}] * 10), corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    return [plain, truncated, corrupt]


SELECT_CORPUS = {  # domain -> raw lines of its one .jsonl file; every line is one record read
    "web": [
        *(line({"id": f"web-{i}", "text": text}) for i, text in enumerate(GOOD)),
        line({"id": "web-empty", "text": ""}),
        line({"id": "web-no-text"}),
        line({"id": "web-null", "text": None}),
        line({"id": "web-number", "text": 42}),
        line({"id": "web-surrogate", "text": "lone \ud800 surrogate in a sentence"}),
        b"{not json at all\n",
    ],
    "code": [
        *(line({"id": f"code-{i}", "text": text}) for i, text in enumerate(GOOD)),
        line({"id": "code-spaces", "text": "   "}),
        b'{"id": "code-latin1", "text": "caf\xe9"}\n',
    ],
}

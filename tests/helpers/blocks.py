"""What the tests of the datatrove blocks share: documents, heads and how outputs are read.

The blocks run in real pipelines (JsonlReader -> block -> JsonlWriter, local executor); these
helpers write their inputs and read what the writers and the executor's stats left behind.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

HEADS = [[18, 6], [20, 6], [17, 3]]  # heads of the embedded model the scorers mask
MAX_TOKENS = 128
WEB = [
    (
        "web-1",
        "The mitochondria is the powerhouse of the cell. It turns glucose and oxygen into "
        "ATP through a chain of reactions in its inner membrane.",
    ),
    (
        "web-2",
        "Rivers carry sediment downstream; where the current slows, at a bend or a delta, "
        "the sand settles and the riverbed slowly rises.",
    ),
    ("web-short", "Hi"),  # one token: nothing to predict
    ("web-empty", ""),  # datatrove's readers drop empty texts before any block sees them
]
CODE = [
    ("code-1", "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"),
    (
        "code-2",
        "import json\n\nwith open('data.json') as f:\n    rows = json.load(f)\nprint(len(rows))\n",
    ),
]


def write_jsonl(path: Path, domain: str, documents: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"id": i, "text": t, "domain": domain}) for i, t in documents]
    path.write_text("\n".join(lines) + "\n")


def read_output(folder: Path) -> dict[str, dict]:
    """Every record JsonlWriter wrote under ``folder``, by id."""
    records = {}
    for file in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(file, "rt") as lines:
            for line in lines:
                record = json.loads(line)
                assert record["id"] not in records
                records[record["id"]] = record
    return records


def block_stats(logs: Path, name: str) -> dict:
    """Totals of the merged stats of the block named ``name`` from the executor's stats.json.

    datatrove records a block as ``"<type>: <name>"`` and a stat counted only in ones as its
    bare total.
    """
    stats = json.loads((logs / "stats.json").read_text())
    block = next(block["stats"] for block in stats if block["name"].endswith(f": {name}"))
    return {
        key: value["total"] if isinstance(value, dict) else value for key, value in block.items()
    }

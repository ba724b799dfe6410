"""How much the retrieval heads depend on the probe scoring (gold answer fed in or the model's
own greedy answer), and on the probes themselves.

One pass over the probes scores every head both ways (:func:`probe_scores`); the script writes
both score matrices, their top-fraction head sets and the overlap of the two sets. With
``--compare HEADS.json`` (a heads file made by ``ai-filters detect-heads`` on the same model,
for example with an older version of the probes) it also gives the overlap of each set with
that file's heads. Example (the demo's detection settings)::

    python benchmarks/probe_scoring.py --num-probes 32 --max-tokens 1024 \\
        --compare before.json --out benchmarks/results/probe_scoring_cpu.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ai_filters.engine.heads import select_top
from ai_filters.engine.heads_file import RetrievalHeads
from ai_filters.engine.models import DEFAULT_MODEL, load_model
from ai_filters.engine.probes import build_probes, default_sentence_texts
from ai_filters.engine.retrieval_scores import PROBE_SCORINGS, probe_scores


def overlap(first: list[tuple[int, int]], second: list[tuple[int, int]]) -> dict:
    """Heads in both sets, and the Jaccard index of the two."""
    common = set(first) & set(second)
    return {
        "common": len(common),
        "sizes": [len(first), len(second)],
        "jaccard": round(len(common) / len(set(first) | set(second)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--num-probes", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top-fraction", type=float, default=0.05)
    parser.add_argument("--compare", default=None, help="a heads file to compare both sets with")
    parser.add_argument("--out", required=True, help="JSON results to write")
    args = parser.parse_args()

    loaded = load_model(args.model)
    probes = build_probes(
        loaded.tokenizer, default_sentence_texts(), args.num_probes, args.max_tokens, args.seed
    )
    start = time.perf_counter()
    run = probe_scores(loaded, probes, PROBE_SCORINGS)
    seconds = time.perf_counter() - start
    selected = {name: select_top(run.scores[name], args.top_fraction) for name in PROBE_SCORINGS}
    result = {
        "model": loaded.spec,
        "device": str(loaded.device),
        "num_probes": args.num_probes,
        "max_tokens": args.max_tokens,
        "seed": args.seed,
        "top_fraction": args.top_fraction,
        "probes_counted": run.probes_counted,
        "seconds": round(seconds, 1),
        "selected": {name: [list(head) for head in heads] for name, heads in selected.items()},
        "overlap_gold_generated": overlap(selected["gold"], selected["generated"]),
        "scores": {name: run.scores[name].tolist() for name in PROBE_SCORINGS},
    }
    if args.compare:
        other = RetrievalHeads.load(args.compare)
        result["compare"] = {
            "file": args.compare,
            "settings": other.settings,
            **{name: overlap(heads, other.selected_heads) for name, heads in selected.items()},
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    summary = {key: value for key, value in result.items() if key not in ("scores",)}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

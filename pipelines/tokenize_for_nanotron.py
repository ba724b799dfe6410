"""Tokenize the full corpus and the selection into nanotron-ready ``.ds`` folders.

For each dataset, datatrove's ``DocumentTokenizer`` (``--tasks`` tasks) writes shuffled token
shards and ``DocumentTokenizerMerger`` (one task) merges them into one ``<name>.ds`` file with
its ``.ds.index`` and ``.ds.metadata``: the layout nanotron's Nanoset reads.

    OUT/tokenized/corpus/     the full corpus (every domain)
    OUT/tokenized/selected/   the selection written by smollm_select.py (OUT/selected/)

Examples:

    python pipelines/tokenize_for_nanotron.py --demo --out out/demo
    python pipelines/tokenize_for_nanotron.py --out /fsx/sel --domains domains.yaml \\
        --executor slurm --partition cpu --tasks 512

The training tokenizer defaults to HuggingFaceTB/cosmo2-tokenizer (the SmolLM corpus's);
with --demo it is the embedded model's tokenizer folder, which has the same 49,152-token
vocabulary, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.tokens import DocumentTokenizerMerger

from ai_filters.blocks import DomainsReader, FolderTokenizer
from ai_filters.console import OneLineErrors
from ai_filters.domains import corpus_domains
from ai_filters.executors import (
    add_executor_options,
    chain_executors,
    check_slurm_options,
    run_chain,
)

DEFAULT_TOKENIZER = "HuggingFaceTB/cosmo2-tokenizer"
EOS_TOKEN = "<|endoftext|>"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    data = parser.add_argument_group("data")
    data.add_argument("--out", required=True, help="the selection pipeline's output folder")
    data.add_argument(
        "--demo",
        action="store_true",
        help="the demo corpus in OUT/corpus/ and the embedded tokenizer",
    )
    data.add_argument(
        "--domains",
        default=None,
        help="YAML domains file of the full corpus (default: the SmolLM corpus)",
    )
    data.add_argument(
        "--tokenizer",
        default=None,
        help=f"tokenizer name or tokenizer.json (default: {DEFAULT_TOKENIZER})",
    )
    data.add_argument("--eos-token", default=EOS_TOKEN, help="appended after every document")
    data.add_argument("--seed", type=int, default=0, help="shuffling seed")
    add_executor_options(parser)
    return parser


def tokenizer_path(args) -> str:
    if args.tokenizer:
        return args.tokenizer
    if args.demo:
        from ai_filters.models import DEFAULT_MODEL, resolve_model_path

        return resolve_model_path(DEFAULT_MODEL)  # a folder: FolderTokenizer reads it
    return DEFAULT_TOKENIZER


def stages(args) -> dict[str, tuple[list, int]]:
    """Tokenize and merge stages of the corpus, then of the selection."""
    out = Path(args.out).resolve()
    readers = {
        "corpus": DomainsReader(
            corpus_domains(args.out, args.demo, args.domains), keep_textless=False
        ),
        "selected": ParquetReader(str(out / "selected"), glob_pattern="data/**/*.parquet"),
    }
    tokenizer = tokenizer_path(args)
    result: dict[str, tuple[list, int]] = {}
    for name, reader in readers.items():
        parts = out / "tokenized" / "parts" / name
        tokenize = FolderTokenizer(
            str(parts),
            tokenizer_name_or_path=tokenizer,
            eos_token=args.eos_token,
            seed=args.seed,
            save_filename=name,
        )
        merge = DocumentTokenizerMerger(
            str(parts), str(out / "tokenized" / name), save_filename=name, seed=args.seed
        )
        result[f"tokenize_{name}"] = ([reader, tokenize], args.tasks)
        result[f"merge_{name}"] = ([merge], 1)
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with OneLineErrors("tokenize_for_nanotron.py", args.debug) as errors:
        if args.executor == "slurm":
            check_slurm_options(args)
        if not (Path(args.out) / "selected").is_dir():
            raise SystemExit(f"error: {args.out}/selected/ is missing: run smollm_select.py first")
        plan = stages(args)
        executors = chain_executors(args, plan, Path(args.out).resolve() / "logs", frozenset())
        run_chain(args, executors, list(plan))
        if args.executor == "local" or args.wait:
            for name in ("corpus", "selected"):
                folder = Path(args.out) / "tokenized" / name
                files = sorted(path.name for path in folder.iterdir())
                print(f"{folder}: {', '.join(files)}")
        return 0
    return errors.exit_code


if __name__ == "__main__":
    sys.exit(main())

"""Tokenize the corpus and the selection into nanotron-ready ``.ds`` folders.

Reads the selection pipeline's own output (nothing is read from the corpus's source again):

    OUT/scored/     every scored document -> OUT/tokenized/corpus/
    OUT/selected/   the selected documents -> OUT/tokenized/selected/

Each ``--tasks`` task of datatrove's ``DocumentTokenizer`` tokenizes its share of the files,
shuffles its documents and writes one ``<rank>_<name>.ds`` file with its ``.ds.index`` and
``.ds.metadata``: a folder of many ``.ds`` files, which nanotron reads as one dataset. At 241B
tokens no task ever holds more than its own share. ``--merge`` adds a one-task stage per folder
that merges the parts into a single shuffled ``<name>.ds`` (fine for small runs; at full scale
that one task would write the whole corpus).

The corpus is every scored document; the few skipped ones (too short, unreadable, ...: see
report.md) are not trained on.

Examples:

    python pipelines/tokenize_for_nanotron.py --out out/demo --demo
    python pipelines/tokenize_for_nanotron.py --out s3://bucket/sel --executor slurm \\
        --partition cpu --tasks 512 --local-working-dir /scratch/tok

The training tokenizer defaults to HuggingFaceTB/cosmo2-tokenizer (the SmolLM corpus's); with
--demo it is the embedded model's tokenizer folder, which has the same 49,152-token vocabulary,
so nothing is downloaded.

The run holds ``OUT/run.lock`` (one run at a time in a folder, the selection's included) and
records its tokenizer, end-of-text token, seed, tasks and ``--merge`` in ``OUT/run.json``: a
rerun with others is refused in one line instead of mixing two tokenizations.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from datatrove.pipeline.readers import JsonlReader, ParquetReader
from datatrove.pipeline.tokens import DocumentTokenizerMerger

from ai_filters.blocks import FolderTokenizer
from ai_filters.console import OneLineErrors
from ai_filters.executors.chain import (
    Stage,
    chain_executors,
    check_reachable,
    describe_chain,
    run_chain,
)
from ai_filters.executors.options import add_executor_options, executor_settings_from_options
from ai_filters.fields import DEFAULT_TRAINING_TOKENIZER, END_OF_TEXT
from ai_filters.selection.folder import HUB_GLOB, SCORED_GLOB, SelectionFolder, SelectionFolderError
from ai_filters.selection.run_lock import RunLock
from ai_filters.selection.run_record import (
    check_fingerprint,
    record_fingerprint,
    tokenizer_identity,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--out", required=True, help="the selection pipeline's output folder (local or a URL)"
    )
    data.add_argument(
        "--demo", action="store_true", help="use the embedded model's tokenizer (offline)"
    )
    data.add_argument(
        "--tokenizer",
        default=None,
        help=f"tokenizer name, tokenizer.json or folder (default: {DEFAULT_TRAINING_TOKENIZER})",
    )
    data.add_argument("--eos-token", default=END_OF_TEXT, help="appended after every document")
    data.add_argument("--seed", type=int, default=0, help="shuffling seed")
    data.add_argument(
        "--merge",
        action="store_true",
        help="merge each folder's parts into one .ds file (one task per folder)",
    )
    data.add_argument(
        "--local-working-dir",
        default=None,
        help="local scratch folder for the shuffling when OUT is remote",
    )
    add_executor_options(parser)
    return parser


def tokenizer_path(args) -> str:
    if args.tokenizer:
        return args.tokenizer
    if args.demo:
        from ai_filters.engine.models import DEFAULT_MODEL, resolve_model_path

        return resolve_model_path(DEFAULT_MODEL)  # a folder: FolderTokenizer reads it
    return DEFAULT_TRAINING_TOKENIZER


def stages(args, folder: SelectionFolder) -> dict[str, Stage]:
    """A tokenize stage (and with ``--merge`` a merge stage) for the corpus and the selection."""
    progress = args.executor == "local"
    readers = {
        "corpus": JsonlReader(folder.scored, glob_pattern=SCORED_GLOB, doc_progress=progress),
        "selected": ParquetReader(folder.selected, glob_pattern=HUB_GLOB, doc_progress=progress),
    }
    result: dict[str, Stage] = {}
    for name, reader in readers.items():
        target = folder.path(f"tokenized/{name}")
        parts = folder.path(f"tokenized/parts/{name}") if args.merge else target
        tokenize = FolderTokenizer(
            parts,
            tokenizer_name_or_path=tokenizer_path(args),
            local_working_dir=args.local_working_dir,
            eos_token=args.eos_token,
            seed=args.seed,
            save_filename=name,
        )
        result[f"tokenize_{name}"] = Stage([reader, tokenize], args.tasks)
        if args.merge:
            merge = DocumentTokenizerMerger(parts, target, save_filename=name, seed=args.seed)
            result[f"merge_{name}"] = Stage([merge], 1, one_task=True)
    return result


def run_fingerprint(args) -> dict[str, str]:
    """What determines the tokenized folders (``OUT/run.json``'s ``tokenize`` section): the
    tokenizer (its files' content), the end-of-text token, the seed, the tasks and ``--merge``."""
    return {
        "--tokenizer": tokenizer_identity(tokenizer_path(args)),
        "--eos-token": args.eos_token,
        "--seed": str(args.seed),
        "--tasks": str(args.tasks),
        "--merge": str(args.merge),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with OneLineErrors("tokenize_for_nanotron.py", args.debug) as errors:
        execution = executor_settings_from_options(vars(args))
        check_reachable(execution, args.out)
        folder = SelectionFolder(args.out)
        if not folder.selected_shards() or not folder.scored_files():
            raise SelectionFolderError(
                f"{args.out} has no scored and selected documents: run smollm_select.py first"
            )
        plan = stages(args, folder)
        executors = chain_executors(execution, plan, folder.logs())
        if execution.dry_run:
            print(describe_chain(execution, plan, executors))
            return 0
        with RunLock(folder.root, shlex.join(sys.argv)) as lock:
            if not check_fingerprint(folder, "tokenize", lambda: run_fingerprint(args)):
                record_fingerprint(folder, "tokenize", run_fingerprint(args))
            run_chain(execution, executors, list(plan), on_submitted=lock.hand_to_jobs)
            if execution.finishes_here:
                lock.release()
                for name in ("corpus", "selected"):
                    files = folder.data.list_files(f"tokenized/{name}", glob_pattern="*.ds")
                    print(f"{folder.path(f'tokenized/{name}')}: {len(files)} .ds files")
        return 0
    return errors.exit_code


if __name__ == "__main__":
    sys.exit(main())

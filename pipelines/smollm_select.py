"""The paper's selection flow as datatrove pipelines: score every domain, keep the top 20 % of each.

Stages (each a datatrove executor depending on the one before):

1. ``score``: read every domain, score with ``--scorer`` -> ``OUT/scored/<domain>/*.jsonl.gz``
   (documents that cannot be scored -> ``OUT/skipped/<domain>/``, with ``filter_reason``);
2. ``thresholds`` (one task): the exact top-``--fraction`` threshold per domain ->
   ``OUT/thresholds.json``;
3. ``select``: documents at or above their domain's threshold -> ``OUT/selected/data/<domain>/``
   (parquet, Hub layout), the others -> ``OUT/rejected/data/<domain>/``;
4. ``report`` (one task): ``OUT/report.md`` and ``OUT/report.json``.

Examples:

    # the embedded model on a local demo corpus made from text on this machine
    python pipelines/smollm_select.py --demo --out out/demo

    # your corpus, your heads file, on Slurm
    python pipelines/smollm_select.py --domains domains.yaml --heads heads.json --out /fsx/sel \\
        --executor slurm --tasks 256 --partition gpu --gpus-per-task 1 --time 12:00:00 \\
        --env-command "source /fsx/ai-filters/.venv/bin/activate"

    # the same on a Ray cluster (its head's address in RAY_ADDRESS, or --ray-address)
    RAY_ADDRESS=head:6379 python pipelines/smollm_select.py --domains domains.yaml \\
        --heads heads.json --out s3://bucket/sel --executor ray --tasks 256 --gpus-per-task 1

    # the controls, on the same corpus and with the same selection code (one folder each)
    python pipelines/smollm_select.py --demo --scorer random --out out/demo/controls/random
    python pipelines/smollm_select.py --demo --scorer perplexity \
        --out out/demo/controls/perplexity
    python pipelines/smollm_select.py --demo --scorer zero_ablation --heads out/demo/heads.json \
        --out out/demo/controls/zero_ablation

Scorers: ``attention_influence`` (the method), ``zero_ablation`` (the same heads zeroed instead
of made uniform), ``perplexity`` (minus the base loss: the lowest-loss fraction is kept),
``random`` (a seeded random score: the random-subset control) and ``distilled`` (a fast text
model that ``ai-filters distill`` trained on a selection's scores; ``--distilled-model DIR``).
``OUT/scorer.json`` records which one made the folder; ``ai-filters compare`` compares folders.

Rerunning the same command skips the tasks that completed (datatrove's completion markers in
``OUT/logs/<stage>/completions``). A rerun with other inputs (heads, model, fraction, scorer,
tasks, the engine settings that change scores, the seed of the random scorer, the domains) is
refused in one line: ``OUT/run.json`` records them. One run at a time holds ``OUT/run.lock``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch
from datatrove.pipeline.readers import JsonlReader

from ai_filters.blocks import (
    DomainsReader,
    HubShardWriter,
    ScoreTableWriter,
    SelectionReport,
    StagedJsonlWriter,
    ThresholdFilter,
    ThresholdFinder,
)
from ai_filters.blocks.registry import SCORERS, ScorerEntry, ScorerOptions, get_scorer
from ai_filters.console import OneLineErrors
from ai_filters.demo.corpus import corpus_domain_specs
from ai_filters.documents import check_writable_folder
from ai_filters.domains import corpus_domains
from ai_filters.engine.heads_file import RetrievalHeads
from ai_filters.engine.models import DEFAULT_MODEL, default_dtype
from ai_filters.engine.options import (
    add_device_options,
    add_engine_options,
    engine_settings_from_options,
)
from ai_filters.engine.settings import EngineSettings
from ai_filters.executors.chain import (
    Stage,
    chain_executors,
    check_reachable,
    describe_chain,
    run_chain,
)
from ai_filters.executors.options import add_executor_options, executor_settings_from_options
from ai_filters.executors.secrets import check_no_secret
from ai_filters.executors.settings import ExecutorSettings
from ai_filters.selection.folder import SCORED_GLOB, SCORED_SHARD, ScorerRecord, SelectionFolder
from ai_filters.selection.run_lock import RunLock
from ai_filters.selection.run_record import (
    check_fingerprint,
    distilled_identity,
    file_digest,
    model_identity,
    record_fingerprint,
)

# the scorers that run no model through the engine (their scores ignore the engine settings)
ENGINE_FREE = ("random", "distilled")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    data = parser.add_argument_group("data and method")
    data.add_argument("--out", required=True, help="output folder (all stages write under it)")
    data.add_argument(
        "--demo",
        action="store_true",
        help="embedded model, heads detected if OUT/heads.json is missing, and a "
        "local four-domain corpus written to OUT/corpus/",
    )
    data.add_argument(
        "--domains",
        default=None,
        help="YAML domains file (see ai_filters/domains.py); default: the SmolLM "
        "corpus on the Hub (web, textbook, math)",
    )
    data.add_argument(
        "--heads", default=None, help="heads file (default with --demo: OUT/heads.json)"
    )
    data.add_argument(
        "--scorer",
        choices=list(SCORERS),
        default="attention_influence",
        help="what ranks the documents: "
        + "; ".join(f"{name}: {scorer.summary}" for name, scorer in SCORERS.items()),
    )
    data.add_argument(
        "--model",
        default=None,
        help=f"selector model (default: the heads file's; without heads: {DEFAULT_MODEL})",
    )
    data.add_argument("--seed", type=int, default=0, help="seed of the random scorer")
    data.add_argument(
        "--distilled-model",
        default=None,
        metavar="DIR",
        help="model folder of the distilled scorer (made by 'ai-filters distill')",
    )
    data.add_argument("--fraction", type=float, default=0.2, help="top fraction kept per domain")
    data.add_argument(
        "--docs-per-batch",
        type=int,
        default=64,
        help="documents handed to the scorer at once (datatrove's batch; the engine sorts "
        "them by length, so larger batches pad less)",
    )
    data.add_argument("--docs-per-domain", type=int, default=50, help="demo corpus size")

    engine = parser.add_argument_group(
        "scoring engine (as in 'ai-filters score'; for the model-backed scorers)"
    )
    add_device_options(engine)
    add_engine_options(engine, max_tokens_default="min(4096, context); demo: 192")
    add_executor_options(parser)
    return parser


def demo_defaults(args, folder: SelectionFolder) -> None:
    """The demo's settings: 192 tokens at most, and the heads file OUT/heads.json (detected by
    :func:`prepare_demo` if missing) unless ``--heads`` is given."""
    args.max_tokens = args.max_tokens or 192
    if not get_scorer(args.scorer).needs_heads or args.heads:
        return
    if not folder.is_local:
        raise SystemExit("error: with --demo and a remote --out, give --heads (a local file)")
    args.heads = folder.heads_file


def prepare_demo(args, folder: SelectionFolder) -> None:
    """Write the demo corpus and, if missing, detect the heads of the embedded model (neither
    with ``--dry-run``)."""
    from ai_filters.demo.steps import detect_and_check, write_demo_corpus

    if args.dry_run:
        return
    write_demo_corpus(folder.corpus, args.docs_per_domain)
    if args.heads == folder.heads_file and not Path(args.heads).is_file():
        detect_and_check(Path(folder.root), args.model or DEFAULT_MODEL)


def run_fingerprint(args, scorer: ScorerEntry) -> dict[str, str]:
    """What determines the selection's results (``OUT/run.json``'s ``select`` section): the
    scorer, fraction, tasks (they shard the outputs), heads, model, the engine settings that
    change scores, the random scorer's seed and the domains. Options that change only speed
    (batch sizes, packing, kernels, compile, workers, the executor) are not in it, nor the
    engine settings of the scorers that use no engine (:data:`ENGINE_FREE`)."""
    settings = engine_settings(args, scorer)
    heads = Path(args.heads) if scorer.needs_heads else None
    fingerprint = {"--scorer": scorer.name, "--fraction": repr(args.fraction)}
    fingerprint["--tasks"] = str(args.tasks)
    if heads is not None:
        fingerprint["--heads"] = file_digest(heads) if heads.is_file() else "missing"
    spec = args.model or (RetrievalHeads.load(heads).model if heads else DEFAULT_MODEL)
    fingerprint["--model"] = model_identity(spec)
    if args.distilled_model:
        fingerprint["--distilled-model"] = distilled_identity(Path(args.distilled_model))
    if scorer.name == "random":
        fingerprint["--seed"] = str(args.seed)
    if scorer.name not in ENGINE_FREE:
        fingerprint["--max-tokens"] = str(settings.scoring.max_tokens or "the model's default")
        fingerprint["--windows"] = str(settings.scoring.windows)
        fingerprint["--dtype"] = score_dtype(settings)
    if args.demo:
        fingerprint["--domains"] = f"demo corpus, {args.docs_per_domain} documents per domain"
    else:
        fingerprint["--domains"] = file_digest(args.domains) if args.domains else "SmolLM corpus"
    return fingerprint


def stage_pipelines(args) -> dict[str, Stage]:
    """Each stage's pipeline and how it runs."""
    folder = SelectionFolder(args.out)
    scorer = get_scorer(args.scorer)
    options = ScorerOptions(
        heads_path=args.heads,
        model=args.model,
        engine_settings=engine_settings(args, scorer),
        docs_per_batch=args.docs_per_batch,
        seed=args.seed,
        exclusion_writer=StagedJsonlWriter(folder.skipped, output_filename=SCORED_SHARD),
        distilled_model=args.distilled_model,
    )
    selector = ThresholdFilter(
        str(folder.thresholds_file),
        score_key=scorer.score_key,
        exclusion_writer=HubShardWriter(folder.rejected, scorer.table_fields),
    )
    domains = corpus_domain_specs(folder.corpus) if args.demo else corpus_domains(args.domains)
    return {
        "score": Stage(
            [
                DomainsReader(domains, progress=args.executor == "local"),
                scorer.build(options),
                ScoreTableWriter(folder.scores, scorer.table_fields),
                StagedJsonlWriter(folder.scored, output_filename=SCORED_SHARD),
            ],
            args.tasks,
            gpus=True,
        ),
        "thresholds": Stage(
            [ThresholdFinder(folder.root, args.fraction, scorer.score_key)], 1, one_task=True
        ),
        "select": Stage(
            [
                JsonlReader(
                    folder.scored, glob_pattern=SCORED_GLOB, doc_progress=args.executor == "local"
                ),
                selector,
                HubShardWriter(folder.selected, scorer.table_fields),
            ],
            args.tasks,
        ),
        "report": Stage([SelectionReport(folder.root)], 1, one_task=True),
    }


def score_dtype(settings: EngineSettings) -> str:
    """The precision the scores are computed in, as far as the launcher knows it: ``--dtype``,
    else the default of ``--device`` (bf16 on a GPU, fp32 on a CPU), else unknown until a task
    sees its hardware."""
    if settings.dtype or not settings.device:
        return settings.dtype or "default (bf16 on a GPU, fp32 on a CPU)"
    return str(default_dtype(torch.device(settings.device))).removeprefix("torch.")


def engine_settings(args, scorer: ScorerEntry) -> EngineSettings:
    """The engine settings the options give, checked against the scorer: a mask mode is for
    scorers with heads, and each of those has its own (the ablation is ``--scorer
    zero_ablation``)."""
    if args.mask_mode is not None and args.mask_mode != scorer.mask_mode:
        if scorer.mask_mode is None:
            raise ValueError(f"--mask-mode is for scorers with heads, not --scorer {scorer.name}")
        same = next(s.name for s in SCORERS.values() if s.mask_mode == args.mask_mode)
        raise ValueError(
            f"--scorer {scorer.name} masks with '{scorer.mask_mode}'; --mask-mode "
            f"{args.mask_mode} is --scorer {same} (its own folder and record)"
        )
    return engine_settings_from_options(vars(args))


def keep_heads_with_output(heads: Path, folder: SelectionFolder) -> None:
    """Copy the heads file to OUT/heads.json: the selection's record of what selected it."""
    if not heads.is_file():
        raise SystemExit(f"error: heads file {heads} does not exist; run ai-filters detect-heads")
    if folder.is_local and heads.resolve() == Path(folder.heads_file):
        return
    with folder.open("heads.json", "wt") as record:
        record.write(heads.read_text())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with OneLineErrors("smollm_select.py", args.debug) as errors:
        execution = executor_settings_from_options(vars(args))
        folder = SelectionFolder(args.out)
        scorer = get_scorer(args.scorer)
        if args.distilled_model and scorer.name != "distilled":
            raise ValueError("--distilled-model is for --scorer distilled")
        engine_settings(args, scorer)  # a bad engine setting fails before any work
        if not args.demo:  # so does a bad domains file (a name like '../x', a password)
            for domain, spec in corpus_domains(args.domains).items():
                check_no_secret(str(spec["path"]), f"the path of domain '{domain}'")
        check_reachable(execution, args.out)
        if args.demo:
            demo_defaults(args, folder)
        if scorer.needs_heads and not args.heads:
            raise SystemExit(f"error: --scorer {args.scorer} needs --heads (or use --demo)")
        if execution.dry_run:
            return dry_run(args, execution, folder)
        check_writable_folder(args.out, "--out")
        with RunLock(folder.root, shlex.join(sys.argv)) as lock:
            run(args, execution, folder, lock)
        return 0
    return errors.exit_code


def dry_run(args, execution: ExecutorSettings, folder: SelectionFolder) -> int:
    """Print the stages; nothing is written and no lock is taken."""
    prepare_demo(args, folder)
    stages = stage_pipelines(args)
    print(describe_chain(execution, stages, chain_executors(execution, stages, folder.logs())))
    return 0


def run(args, execution: ExecutorSettings, folder: SelectionFolder, lock: RunLock) -> None:
    """Run (or submit) the stages, holding the folder's lock: a resume whose inputs differ from
    the recorded ones (``OUT/run.json``) is refused before anything is written."""
    scorer = get_scorer(args.scorer)
    resuming = check_fingerprint(folder, "select", lambda: run_fingerprint(args, scorer))
    if args.demo:
        prepare_demo(args, folder)
    if not resuming:
        record_fingerprint(folder, "select", run_fingerprint(args, scorer))
    started = time.monotonic()
    stages = stage_pipelines(args)
    executors = chain_executors(execution, stages, folder.logs())
    if scorer.needs_heads:
        keep_heads_with_output(Path(args.heads), folder)
    folder.write_scorer(ScorerRecord(scorer.name, scorer.score_key, args.fraction))
    run_chain(execution, executors, list(stages), on_submitted=lock.hand_to_jobs)
    if execution.finishes_here:
        lock.release()
        with folder.open("report.md") as report:
            print(report.read())
        print(f"pipeline wall time: {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    sys.exit(main())

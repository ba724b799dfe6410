"""The ``ai-filters`` command line.

ai-filters detect-heads  find the retrieval heads of a model (heads.json + heatmap)
ai-filters score         score a file of documents with AttentionInfluence
ai-filters hub-folder    turn a selection into a Hub-ready dataset folder with its card
ai-filters push          upload such a folder to the Hugging Face Hub
ai-filters nanotron-config  write a nanotron WSD pretraining config for corpus + selection
ai-filters compare       compare selections made by different scorers (overlap, Spearman, lengths)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ai_filters.compare import add_compare_command
from ai_filters.hub import add_hub_commands
from ai_filters.models import DEFAULT_MODEL
from ai_filters.nanotron import add_nanotron_config_command

DESCRIPTION = """\
AttentionInfluence (arXiv 2505.07293): score pretraining documents by how much a small LM's loss
rises when its retrieval heads are masked, then keep the top documents of each domain.
Typical use: 'ai-filters detect-heads --out heads.json' once per selector model, then
'ai-filters score --heads heads.json --input docs.jsonl --output scored.jsonl'."""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _model_options(parser: argparse.ArgumentParser, default: str | None = DEFAULT_MODEL) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default=default,
        help=f"'{DEFAULT_MODEL}' (the embedded SmolLM2-135M, offline), a local Hugging Face "
        "folder, or a Hub id",
    )
    group.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    group.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="weights dtype (default: bfloat16 on GPU, float32 on CPU)",
    )
    group.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow the model folder's own Python code to run",
    )
    group.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow loading .bin (pickle) weights; default: safetensors only",
    )


def _detect_options(
    parser: argparse.ArgumentParser, num_probes: int, probe_tokens: str, tokens: int | None
) -> None:
    parser.add_argument(
        "--num-probes", type=int, default=num_probes, help="retrieval probes (the paper uses 800)"
    )
    parser.add_argument(
        "--top-fraction",
        type=float,
        default=0.05,
        help="fraction of all (layer, head) pairs kept as retrieval heads",
    )
    parser.add_argument(
        probe_tokens,
        type=int,
        default=tokens,
        help="tokens per probe, answer included (None: min(4096, context))",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of keys and sentence choice")
    parser.add_argument(
        "--sentences",
        default=None,
        help="probe sentence source: .txt, .jsonl, .jsonl.gz or .parquet documents "
        "(default: the Python Language Reference shipped with CPython)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ai-filters", description=DESCRIPTION, formatter_class=_Formatter
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    detect = commands.add_parser(
        "detect-heads",
        formatter_class=_Formatter,
        help="find the retrieval heads of a model",
        description="Run synthetic 3-shot key-value retrieval probes and keep the heads that "
        "copy the answer from the context most often (writes heads.json and a heatmap).",
    )
    _model_options(detect)
    _detect_options(detect, num_probes=800, probe_tokens="--max-tokens", tokens=None)
    detect.add_argument("--out", required=True, help="heads file to write (JSON)")
    detect.add_argument("--plot", default=None, help="heatmap PNG to write (optional)")
    detect.set_defaults(run=run_detect_heads)

    score = commands.add_parser(
        "score",
        formatter_class=_Formatter,
        help="score documents with AttentionInfluence",
        description="Add attention_influence, ai_loss_base, ai_loss_ref and ai_n_tokens to the "
        "metadata of every document. Documents that cannot be scored go to OUTPUT's .skipped "
        "file (e.g. out.skipped.jsonl) with metadata.skip_reason.",
    )
    _model_options(score, default=None)
    score.add_argument("--heads", required=True, help="heads file from detect-heads")
    score.add_argument(
        "--input",
        required=True,
        nargs="+",
        help=".jsonl, .jsonl.gz or .parquet documents (one or more files)",
    )
    score.add_argument("--output", required=True, help=".jsonl, .jsonl.gz or .parquet to write")
    score.add_argument("--text-key", default="text", help="field holding the document text")
    score.add_argument(
        "--domain-key", default="domain", help="metadata field holding the domain (for the summary)"
    )
    score.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="tokens per sequence (default: min(4096, context))",
    )
    score.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first unreadable line or file (default: record it in the skipped "
        "file with its path and line, and go on)",
    )
    score.add_argument(
        "--windows",
        action="store_true",
        help="score long documents in consecutive windows of --max-tokens, "
        "token-weighted, instead of truncating them",
    )
    score.add_argument("--batch-size", type=int, default=64, help="sequences per batch (at most)")
    score.add_argument(
        "--batch-tokens",
        type=int,
        default=None,
        help="padded tokens per batch (at most; one long document may exceed); "
        "default: max(max_tokens, 1024) on a CPU, 32768 on a GPU",
    )
    score.add_argument(
        "--mask-mode",
        default="uniform",
        choices=["uniform", "zero"],
        help="uniform: the method (attention spread evenly over the prefix); "
        "zero: the heads' outputs zeroed (an ablation)",
    )
    score.add_argument(
        "--ignore-fingerprint",
        action="store_true",
        help="accept a heads file found on other weights of the same shape",
    )
    score.set_defaults(run=run_score)

    add_hub_commands(commands)
    add_nanotron_config_command(commands)
    add_compare_command(commands)

    return parser


def _load(args):
    from ai_filters.models import load_model

    print(f"loading model {args.model} ...", file=sys.stderr)
    return load_model(
        args.model,
        args.device,
        args.dtype,
        trust_remote_code=args.trust_remote_code,
        allow_pickle=args.allow_pickle,
    )


def progress_bar(total: int | None, unit: str, description: str):
    """A tqdm bar counting ``unit``s with tokens/s in its postfix; returns (bar, update)."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    bar = tqdm(
        total=total,
        unit=unit,
        desc=description,
        dynamic_ncols=True,
        file=sys.stderr,
        mininterval=0.5 if interactive else 30,
    )
    started = time.monotonic()
    tokens = [0]

    def update(items: int, new_tokens: int) -> None:
        tokens[0] += new_tokens
        bar.update(items)
        bar.set_postfix_str(f"{tokens[0] / max(time.monotonic() - started, 1e-9):.0f} tok/s")

    return bar, update


def detect_to_file(
    loaded,
    out: Path,
    plot: Path | None,
    num_probes: int,
    probe_tokens: int | None,
    top_fraction: float = 0.05,
    seed: int = 0,
    sentences: str | None = None,
):
    """Detect heads with a progress bar, write heads.json (+ heatmap), print the top heads.

    Returns the heads, the probes and the probes' unmasked answer losses.
    """
    from ai_filters.heads import find_retrieval_heads, plot_heads
    from ai_filters.probes import load_sentence_texts

    texts = load_sentence_texts(sentences)
    bar, update = progress_bar(num_probes, "probe", "retrieval probes")
    with bar:
        heads, probes, losses = find_retrieval_heads(
            loaded,
            texts,
            num_probes,
            probe_tokens,
            top_fraction,
            seed,
            progress=lambda tokens: update(1, tokens),
        )
    heads.settings["sentence_source"] = sentences or "pydoc_data.topics"
    heads.save(out)
    if plot:
        plot_heads(heads, plot)
    print(f"wrote {out}" + (f" and {plot}" if plot else ""), file=sys.stderr)
    print("top heads (layer, head: retrieval score):")
    for layer, head in heads.selected_heads[:10]:
        print(f"  {layer:3d} {head:3d}: {heads.scores[layer][head]:.3f}")
    return heads, probes, losses


def run_detect_heads(args) -> int:
    loaded = _load(args)
    detect_to_file(
        loaded,
        Path(args.out),
        Path(args.plot) if args.plot else None,
        args.num_probes,
        args.max_tokens,
        args.top_fraction,
        args.seed,
        args.sentences,
    )
    return 0


def run_score(args) -> int:
    from ai_filters.documents import check_writable_folder
    from ai_filters.heads import RetrievalHeads
    from ai_filters.score_files import score_file, skipped_path
    from ai_filters.scoring import ScoringConfig, ScoringEngine

    heads = RetrievalHeads.load(args.heads)
    missing = [path for path in args.input if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"input file {missing[0]} does not exist")
    skipped_path(args.output)  # rejects an unsupported output type before loading the model
    check_writable_folder(Path(args.output).parent, "--output")
    args.model = args.model or heads.model
    loaded = _load(args)
    heads.check_model(loaded, strict_fingerprint=not args.ignore_fingerprint)
    config = ScoringConfig(
        max_tokens=args.max_tokens or min(4096, loaded.max_context),
        batch_size=args.batch_size,
        batch_tokens=args.batch_tokens,
        windows=args.windows,
        mask_mode=args.mask_mode,
    )
    scorer = ScoringEngine(loaded, heads.selected_heads, config)
    bar, update = progress_bar(None, "doc", "scoring")
    with bar:
        summary = score_file(
            scorer,
            args.input,
            args.output,
            args.text_key,
            args.domain_key,
            progress=update,
            strict=args.strict,
        )
    print(summary.format())
    print(f"wrote {args.output} and {skipped_path(args.output)}", file=sys.stderr)
    return 0


EXPECTED_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError, KeyError)


def error_line(error: BaseException) -> str:
    """The first line of ``error``'s message (its type name when it has none)."""
    return str(error).splitlines()[0] if str(error).strip() else type(error).__name__


class OneLineErrors:
    """Context manager: an expected error raised in the block becomes one line and an exit code.

    The line, on stderr, is ``PROG: error: MESSAGE (--debug shows the traceback)`` and
    :attr:`exit_code` becomes 2; Ctrl-C prints ``PROG: interrupted`` and gives 130. With
    ``debug``, and for any other exception (a bug), the exception propagates with its
    traceback. Used by ``ai-filters`` and by the pipeline scripts in ``pipelines/``::

        with OneLineErrors("ai-filters", args.debug) as errors:
            return args.run(args)
        return errors.exit_code
    """

    def __init__(self, prog: str, debug: bool) -> None:
        self.prog = prog
        self.debug = debug
        self.exit_code = 0

    def __enter__(self) -> OneLineErrors:
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if kind is KeyboardInterrupt:
            print(f"{self.prog}: interrupted", file=sys.stderr)
            self.exit_code = 130
            return True
        if error is None or self.debug or not isinstance(error, EXPECTED_ERRORS):
            return False
        print(
            f"{self.prog}: error: {error_line(error)} (--debug shows the traceback)",
            file=sys.stderr,
        )
        self.exit_code = 2
        return True


def main(argv: list[str] | None = None) -> int:
    """Run one command; an expected error is one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    with OneLineErrors("ai-filters", args.debug) as errors:
        return args.run(args)
    return errors.exit_code


if __name__ == "__main__":
    sys.exit(main())

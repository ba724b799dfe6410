"""What the ``ai-filters`` subcommands share: the help formatter and the model options."""

from __future__ import annotations

import argparse
import sys

from ai_filters.models import DEFAULT_MODEL, DTYPES, LoadedModel


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every parser's formatter: defaults shown, descriptions kept as written."""


def add_model_options(parser: argparse.ArgumentParser, default: str | None = DEFAULT_MODEL) -> None:
    """``--model``, ``--device``, ``--dtype``, ``--trust-remote-code``, ``--allow-pickle`` and
    ``--allow-unsupported-architecture``."""
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
        choices=list(DTYPES),
        help="weights dtype (default: bfloat16 on GPU, float32 on CPU); the output layer and "
        "the loss always run in float32",
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
    group.add_argument(
        "--allow-unsupported-architecture",
        action="store_true",
        help="run a model the engine does not list as exact (or one whose sliding window is "
        "shorter than the sequences) instead of refusing it: the Llama way, at your own risk",
    )


def load_model_from_args(args: argparse.Namespace) -> LoadedModel:
    """The model the options of :func:`add_model_options` name, with a note on stderr."""
    from ai_filters.models import load_model

    print(f"loading model {args.model} ...", file=sys.stderr)
    return load_model(
        args.model,
        args.device,
        args.dtype,
        trust_remote_code=args.trust_remote_code,
        allow_pickle=args.allow_pickle,
    )

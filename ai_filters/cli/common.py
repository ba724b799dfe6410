"""What the ``ai-filters`` subcommands share: the help formatter and the model options."""

from __future__ import annotations

import argparse
import re
import sys

from ai_filters.engine.models import DEFAULT_MODEL, LoadedModel
from ai_filters.engine.options import add_device_options

# a help text that names its default already ("default: ...", "(default 1)", "Default ...")
_NAMES_DEFAULT = re.compile(r"\bdefault\b", re.IGNORECASE)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every parser's formatter: defaults shown once, descriptions kept as written.

    A default of ``None`` (the option then says what it means in its help) and a help text that
    already mentions its default, in any wording, get no ``(default: ...)`` appended.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or _NAMES_DEFAULT.search(action.help or ""):
            return action.help
        return super()._get_help_string(action)


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
    add_device_options(group)


def load_model_from_args(args: argparse.Namespace) -> LoadedModel:
    """The model the options of :func:`add_model_options` name, with a note on stderr."""
    from ai_filters.engine.models import load_model

    print(f"loading model {args.model} ...", file=sys.stderr)
    return load_model(
        args.model,
        args.device,
        args.dtype,
        trust_remote_code=args.trust_remote_code,
        allow_pickle=args.allow_pickle,
    )

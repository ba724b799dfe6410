"""``ai-filters hub-folder`` and ``ai-filters push``: publish a selection on the Hub."""

from __future__ import annotations

import argparse
import os
import sys

from huggingface_hub.utils import validate_repo_id

from ai_filters.cli.common import HelpFormatter
from ai_filters.hub.card import PLACEHOLDER_REPO, TOKEN_ENV
from ai_filters.hub.folder import build_hub_folder
from ai_filters.hub.push import hf_upload_command, push_folder


def run_hub_folder(args: argparse.Namespace) -> int:
    if args.repo:
        validate_repo_id(args.repo)
    hub = build_hub_folder(
        args.out, args.hub_dir, args.commands, args.license, args.repo, args.overwrite
    )
    repo = args.repo or PLACEHOLDER_REPO
    print(f"wrote {hub}; publish it with: ai-filters push {hub} --repo {repo}")
    return 0


def run_push(args: argparse.Namespace) -> int:
    validate_repo_id(args.repo)
    token = os.environ.get(args.token_env) or None
    if token is None:
        print(
            f"{args.token_env} is not set: using the cached login (`hf auth login`)",
            file=sys.stderr,
        )
    print(
        "equivalent: "
        + hf_upload_command(args.folder, args.repo, args.private, args.revision, args.token_env)
    )
    url = push_folder(
        args.folder,
        args.repo,
        private=args.private,
        revision=args.revision,
        token=token,
        token_env=args.token_env,
    )
    print(url)
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Register ``hub-folder`` and ``push`` (``args.run(args)`` runs the chosen one)."""
    formatter = HelpFormatter
    folder = commands.add_parser(
        "hub-folder",
        formatter_class=formatter,
        help="turn a selection into a Hub dataset folder",
        description="Copy the selected documents of OUT (pipelines/smollm_select.py, any "
        "scorer) into DIR/data/<domain>/ as flat columns (text, id, domain, the score and loss "
        "fields, token counts, the rest of the metadata) and its score tables into "
        "DIR/scores/<domain>/, draw the score histograms and write the dataset card (one config "
        "per domain, 'default' with every domain, 'scores' with every scored document).",
    )
    folder.add_argument("out", metavar="OUT", help="output folder of the selection pipeline")
    folder.add_argument("--hub-dir", required=True, metavar="DIR", help="folder to write")
    folder.add_argument("--repo", default=None, metavar="ORG/NAME", help="repo named in the card")
    folder.add_argument("--license", default="odc-by", help="license of the card (the sources')")
    folder.add_argument(
        "--command",
        dest="commands",
        action="append",
        default=None,
        metavar="CMD",
        help="a command that produced the selection, shown in the card (repeat for each; "
        "default: the pipeline's commands with their defaults)",
    )
    folder.add_argument("--overwrite", action="store_true", help="replace an existing DIR")
    folder.set_defaults(run=run_hub_folder)

    push = commands.add_parser(
        "push",
        formatter_class=formatter,
        help="upload a Hub folder to a dataset repo",
        description="Create the dataset repo (and branch) if needed, retrying when the Hub is "
        "busy (429, 5xx), and upload FOLDER with huggingface_hub's upload_folder, which retries "
        "by itself, commits a big folder in parts and resumes when the same command is run "
        "again; the equivalent `hf upload` command is printed.",
    )
    push.add_argument("folder", metavar="FOLDER", help="folder written by hub-folder")
    push.add_argument("--repo", required=True, metavar="ORG/NAME", help="dataset repo id")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--revision", default=None, metavar="R", help="branch to push to")
    push.add_argument(
        "--token-env",
        default=TOKEN_ENV,
        metavar="VAR",
        help="environment variable holding the token (unset: the cached login)",
    )
    push.set_defaults(run=run_push)

"""``ai-filters status``: where a pipeline run stands, stage by stage."""

from __future__ import annotations

import argparse

from ai_filters.cli.common import HelpFormatter


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Register ``status`` (``args.run(args)`` runs it)."""
    parser = commands.add_parser(
        "status",
        formatter_class=HelpFormatter,
        help="show where a pipeline run stands, stage by stage",
        description="Read datatrove's records under OUT/logs/ (executor.json, completions, task "
        "logs, per-task stats) and print per stage: tasks done / total, running, failed (with "
        "the path of each failed task's log), waiting, and the documents and tokens of the "
        "finished tasks. Works while a local or Slurm run goes on, on a local folder or a URL.",
    )
    parser.add_argument("out", metavar="OUT", help="output folder of a pipeline script")
    parser.set_defaults(run=run_status)


def run_status(args: argparse.Namespace) -> int:
    from ai_filters.selection.status import format_status, run_status

    stages = run_status(args.out)
    print(format_status(stages))
    return 1 if any(stage.failed for stage in stages) else 0

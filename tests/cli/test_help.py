"""No ``--help`` of ``ai-filters`` or of a pipeline script states an option's default twice."""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

import pytest

from ai_filters.cli import build_parser, main

PIPELINES = sorted((Path(__file__).parents[2] / "pipelines").glob("*.py"))
# argparse's "(default: X)", appended at the end of an option's help (X may hold parentheses)
APPENDED_DEFAULT = re.compile(r"\(default: [^()]*(?:\([^()]*\)[^()]*)*\)$")
DEFAULT_WORD = re.compile(r"\bdefault\b", re.IGNORECASE)


def subcommands() -> list[str]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(commands.choices)


def option_entries(help_text: str) -> list[str]:
    """Each option's entry of a help text (the option and its help, wrapped lines joined)."""
    entries = re.split(r"\n(?=  +-)", help_text)
    return [" ".join(entry.split()) for entry in entries[1:]]


def doubled_defaults(help_text: str) -> list[str]:
    """The entries that state a default twice: argparse's ``(default: None)``, two
    ``default:``, or argparse's appended ``(default: X)`` after the help said its default."""
    doubled = []
    for entry in option_entries(help_text):
        appended = APPENDED_DEFAULT.search(entry)
        said_before = appended and DEFAULT_WORD.search(entry[: appended.start()])
        if "(default: None)" in entry or entry.lower().count("default:") > 1 or said_before:
            doubled.append(entry)
    return doubled


def help_of(run, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        run()
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_the_check_finds_a_doubled_default():
    entry = "  --max-tokens MAX_TOKENS\n      tokens (default: min(4096, context)) (default: None)"
    assert doubled_defaults("usage: x\n\noptions:\n" + entry)
    assert doubled_defaults("usage: x\n\noptions:\n  --n N  rows, default 3 (default: 3)")
    assert not doubled_defaults("usage: x\n\noptions:\n  --n N  rows (default: min(3, n))")


@pytest.mark.parametrize("command", subcommands())
def test_no_subcommand_help_states_a_default_twice(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    text = help_of(lambda: main([command, "--help"]), capsys)
    assert "options:" in text
    assert doubled_defaults(text) == []


@pytest.mark.parametrize("script", PIPELINES, ids=lambda path: path.name)
def test_no_pipeline_help_states_a_default_twice(script, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = help_of(lambda: module.build_parser().parse_args(["--help"]), capsys)
    assert "--" in text
    assert doubled_defaults(text) == []

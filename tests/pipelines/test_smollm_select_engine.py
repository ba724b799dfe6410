"""The selection pipeline takes every engine option of `ai-filters score`, with the same names
and meanings, and hands them to the engine as one settings object."""

from __future__ import annotations

import argparse

import pytest

from ai_filters.cli import build_parser as cli_parser
from ai_filters.engine.scoring import ScoringConfig
from ai_filters.engine.settings import EngineSettings
from tests.helpers.pipelines import flat, load_select_main, load_select_module, tiny_input_options

GIVEN = {  # option -> value on the command line (flags: None)
    "--max-tokens": "24",
    "--windows": None,
    "--batch-size": "3",
    "--batch-tokens": "96",
    "--packing": None,
    "--pack-tokens": "48",
    "--compile": None,
    "--attention-kernel": "flex",
    "--device": "cpu",
    "--dtype": "float32",
    "--allow-unsupported-architecture": None,
}
EXPECTED = EngineSettings(
    ScoringConfig(
        max_tokens=24,
        windows=True,
        batch_size=3,
        batch_tokens=96,
        packing=True,
        pack_tokens=48,
        compile=True,
        attention_kernel="flex",
        allow_unsupported_architecture=True,
    ),
    device="cpu",
    dtype="float32",
)


def engine_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The options of the engine groups of ``parser`` (model, scoring engine), by flag."""
    return {
        flag: action
        for group in parser._action_groups
        if group.title and ("engine" in group.title or group.title == "model")
        for action in group._group_actions
        for flag in action.option_strings
    }


def score_parser() -> argparse.ArgumentParser:
    commands = next(
        action for action in cli_parser()._actions if isinstance(action, argparse._SubParsersAction)
    )
    return commands.choices["score"]


def command_line(inputs: dict, out, **changes) -> list[str]:
    given = {**GIVEN, **changes}
    arguments = ["--out", str(out), *flat(tiny_input_options(inputs))]
    for option, value in given.items():
        arguments += [option] if value is None else [option, value]
    return arguments


def test_pipeline_takes_every_engine_option_of_score_with_the_same_meaning():
    select = load_select_module().build_parser()
    pipeline, score = engine_actions(select), engine_actions(score_parser())
    own = {"--model", "--trust-remote-code", "--allow-pickle"}  # loading, not the engine
    wanted = set(score) - own
    assert wanted <= set(pipeline), sorted(wanted - set(pipeline))
    assert set(GIVEN) | {"--no-packing", "--mask-mode"} == wanted  # this test covers them all
    for flag in wanted:
        ours, theirs = pipeline[flag], score[flag]
        assert (ours.dest, ours.type, ours.default, ours.choices, ours.const) == (
            theirs.dest,
            theirs.type,
            theirs.default,
            theirs.choices,
            theirs.const,
        ), flag
        assert ours.help == theirs.help or flag == "--max-tokens", flag  # the demo's default
    help_text = select.format_help()
    assert all(flag in help_text for flag in wanted)


def test_engine_options_reach_the_engine(select_inputs, tmp_path):
    module = load_select_module()
    args = module.build_parser().parse_args(command_line(select_inputs, tmp_path / "out"))
    block = module.stage_pipelines(args)["score"].pipeline[1]
    assert block.settings == EXPECTED
    engine = block.engine  # built as a task builds it
    assert engine.config == EXPECTED.scoring
    assert engine.loaded.device.type == "cpu"
    assert str(engine.loaded.dtype) == "torch.float32"


def test_no_packing_and_the_ablation_mask_reach_the_engine(select_inputs, tmp_path):
    module = load_select_module()
    changes = {"--packing": None, "--compile": None}
    arguments = command_line(select_inputs, tmp_path / "out", **changes)
    arguments = [a for a in arguments if a not in ("--packing", "--compile")]
    arguments += ["--no-packing", "--scorer", "zero_ablation", "--mask-mode", "zero"]
    block = module.stage_pipelines(module.build_parser().parse_args(arguments))["score"].pipeline[1]
    assert block.settings.scoring.packing is False
    assert block.settings.scoring.mask_mode == "zero"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"--mask-mode": "zero"}, "--mask-mode zero is --scorer zero_ablation"),
        ({"--scorer": "perplexity", "--mask-mode": "uniform"}, "--mask-mode is for scorers with"),
        ({"--pack-tokens": "8"}, "pack_tokens must be at least max_tokens"),
        ({"--batch-size": "0"}, "batch_size and batch_tokens must be positive"),
    ],
)
def test_contradicting_engine_options_are_refused_in_one_line(
    select_inputs, tmp_path, capsys, changes, message
):
    arguments = command_line(select_inputs, tmp_path / "out", **changes)
    assert load_select_main()(arguments) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error
    assert not (tmp_path / "out" / "scored").exists()

"""Head detection takes one frozen, validated DetectionSettings, built once by the command line
and passed whole; a bad value is one line, before any model loads."""

from __future__ import annotations

import dataclasses
import math

import pytest

from ai_filters.cli import build_parser, main
from ai_filters.cli.detect import detection_settings_from_args
from ai_filters.demo.steps import DEMO_DETECTION
from ai_filters.engine.heads import DetectionSettings, detect_and_save
from ai_filters.engine.heads_file import RetrievalHeads
from ai_filters.engine.probes import build_probes, default_sentence_texts
from tests.helpers.console import error_line_of


def settings(*argv: str) -> DetectionSettings:
    args = build_parser().parse_args(["detect-heads", "--out", "heads.json", *argv])
    return detection_settings_from_args(args)


def test_the_options_defaults_are_the_settings_defaults():
    assert settings() == DetectionSettings()
    assert DetectionSettings() == DetectionSettings(800, None, 0.05, 0, "gold", None, False)


def test_every_option_reaches_the_settings():
    given = settings(
        "--num-probes", "5", "--max-tokens", "256", "--top-fraction", "0.1", "--seed", "3",
        "--probe-scoring", "generated", "--sentences", "s.txt", "--allow-unsupported-architecture",
    )  # fmt: skip
    assert given == DetectionSettings(5, 256, 0.1, 3, "generated", "s.txt", True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_probes": 0}, "num_probes must be an integer >= 1, got 0"),
        ({"num_probes": 2.5}, "num_probes must be an integer >= 1"),
        ({"probe_tokens": 0}, "probe_tokens must be an integer >= 1"),
        ({"top_fraction": 0.0}, r"top_fraction must be in \(0, 1\], got 0.0"),
        ({"top_fraction": 1.5}, r"top_fraction must be in \(0, 1\]"),
        ({"top_fraction": "0.1"}, "top_fraction must be a number"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"probe_scoring": "argmax"}, "unknown probe scoring 'argmax'; choose one of gold"),
        ({"sentences": " "}, "sentences must be a file path or None"),
        ({"allow_unsupported": "yes"}, "allow_unsupported must be True or False"),
    ],
)
def test_a_bad_value_is_refused_in_one_line_when_built(changes, message):
    with pytest.raises(ValueError, match=message) as error:
        DetectionSettings(**changes)
    assert "\n" not in str(error.value)


def test_the_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DetectionSettings().seed = 1  # type: ignore[misc]


def test_the_command_refuses_a_bad_value_before_loading_the_model(tmp_path, capsys):
    out = tmp_path / "heads.json"
    argv = ["detect-heads", "--model", str(tmp_path / "no-model"), "--out", str(out)]
    assert main([*argv, "--top-fraction", "0"]) == 2
    line = error_line_of(capsys.readouterr().err, "ai-filters")
    assert "top_fraction must be in (0, 1], got 0.0" in line and not out.exists()


def test_the_demo_detects_with_fewer_shorter_probes_and_the_rest_default():
    assert DEMO_DETECTION == DetectionSettings(num_probes=32, probe_tokens=1024)


def test_detection_runs_and_records_the_settings_it_was_given(tiny, tmp_path):
    loaded, _ = tiny
    given = DetectionSettings(num_probes=2, probe_tokens=512, top_fraction=0.1, seed=5)
    heads, probes, losses = detect_and_save(loaded, given, tmp_path / "heads.json")
    assert probes == build_probes(loaded.tokenizer, default_sentence_texts(), 2, 512, seed=5)
    assert len(losses) == 2
    saved = RetrievalHeads.load(tmp_path / "heads.json")
    assert saved.selected == heads.selected
    assert len(saved.selected) == math.ceil(0.1 * loaded.num_layers * loaded.num_heads)
    assert saved.settings == {
        "max_tokens": 512,
        "seed": 5,
        "shots": 3,
        "probe_encoding": "full_text",
        "top_fraction": 0.1,
        "num_probes": 2,
        "probe_scoring": "gold",
        "probes_counted": 2,
        "sentence_source": "pydoc_data.topics",
    }

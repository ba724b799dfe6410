"""``OUT/run.json``: the fingerprint a resume must match, and what identifies files and
models in it."""

from __future__ import annotations

import json
import shutil

import pytest

from ai_filters.selection.folder import SelectionFolder
from ai_filters.selection.run_record import (
    SAMPLE_BYTES,
    RunChanged,
    check_fingerprint,
    differences,
    model_identity,
    record_fingerprint,
    sampled_digest,
    tokenizer_identity,
)

FIRST = {"--scorer": "attention_influence", "--fraction": "0.2", "--heads": "sha256:" + "a" * 64}


def test_a_folder_without_a_record_checks_nothing_and_computes_nothing(tmp_path):
    assert not check_fingerprint(SelectionFolder(tmp_path), "select", lambda: 1 / 0)


def test_the_same_fingerprint_resumes(tmp_path):
    folder = SelectionFolder(tmp_path)
    record_fingerprint(folder, "select", FIRST)
    assert check_fingerprint(folder, "select", lambda: dict(FIRST))


def test_every_changed_option_is_named_in_one_line(tmp_path):
    folder = SelectionFolder(tmp_path)
    record_fingerprint(folder, "select", FIRST)
    changed = {**FIRST, "--fraction": "0.3", "--heads": "sha256:" + "b" * 64, "--seed": "1"}
    with pytest.raises(RunChanged) as refused:
        check_fingerprint(folder, "select", lambda: changed)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{tmp_path} was started with other inputs")
    heads = "--heads (sha256:aaaaaaaaaaaa... -> sha256:bbbbbbbbbbbb...)"
    assert f"--fraction (0.2 -> 0.3); {heads}" in message
    assert "--seed (unset -> 1)" in message and "--scorer" not in message
    assert "use a new --out (or delete the folder)" in message


def test_differences_list_the_options_in_order():
    now = {"--fraction": "0.3", "--scorer": "random", "--seed": "0"}
    assert differences({"--scorer": "random", "--fraction": "0.2"}, now) == [
        "--fraction (0.2 -> 0.3)",
        "--seed (unset -> 0)",
    ]


def test_sections_are_kept_apart(tmp_path):
    folder = SelectionFolder(tmp_path)
    record_fingerprint(folder, "select", FIRST)
    record_fingerprint(folder, "tokenize", {"--seed": "0"})
    assert json.loads((tmp_path / "run.json").read_text()) == {
        "select": FIRST,
        "tokenize": {"--seed": "0"},
    }
    assert check_fingerprint(folder, "tokenize", lambda: {"--seed": "0"})


def test_a_model_is_identified_by_its_config_and_weights(tiny, tmp_path):
    _, heads = tiny
    model = shutil.copytree(heads.parent / "model", tmp_path / "model")
    original = model_identity(str(model))
    assert original == model_identity(str(shutil.copytree(model, tmp_path / "copy")))
    (weights,) = model.glob("*.safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # the last byte of the last tensor
    weights.write_bytes(bytes(data))
    retrained = model_identity(str(model))
    assert retrained != original
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "rope_theta": 1.0}))
    assert model_identity(str(model)) not in (original, retrained)
    assert model_identity("HuggingFaceTB/SmolLM2-1.7B") == "hub:HuggingFaceTB/SmolLM2-1.7B"


def test_a_large_file_is_sampled_at_its_start_middle_and_end(tmp_path):
    path = tmp_path / "weights.bin"
    size = 5 * SAMPLE_BYTES
    path.write_bytes(bytes(size))
    digests = {sampled_digest(path)}
    for offset in (0, size // 2, size - 1):
        data = bytearray(path.read_bytes())
        data[offset] = 1
        path.write_bytes(bytes(data))
        digests.add(sampled_digest(path))
    assert len(digests) == 4
    path.write_bytes(bytes(size + 1))
    assert sampled_digest(path) not in digests


def test_a_tokenizer_is_identified_by_its_files(tiny, tmp_path):
    _, heads = tiny
    folder = shutil.copytree(heads.parent / "model", tmp_path / "tokenizer")
    before = tokenizer_identity(str(folder))
    assert tokenizer_identity(str(folder / "tokenizer.json")) != before  # the file alone
    (folder / "tokenizer.json").write_text((folder / "tokenizer.json").read_text() + " ")
    assert tokenizer_identity(str(folder)) != before
    changed = tokenizer_identity(str(folder))
    (weights,) = folder.glob("*.safetensors")
    weights.write_bytes(b"other weights")
    assert tokenizer_identity(str(folder)) == changed  # the model's weights are not its tokenizer
    assert (
        tokenizer_identity("HuggingFaceTB/cosmo2-tokenizer") == "hub:HuggingFaceTB/cosmo2-tokenizer"
    )

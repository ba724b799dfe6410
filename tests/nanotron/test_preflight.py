"""preflight: what a run reads of each folder, and the folders it must refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_filters.nanotron import PlanSettings, build_config, preflight
from tests.nanotron.helpers import write_tokenized


def plan_for(corpus: Path, selected: Path | None, steps: int):
    """A tiny run of ``steps`` steps of 4 sequences of 99 tokens (samples of 100 tokens)."""
    settings = PlanSettings(
        str(corpus),
        str(selected) if selected else None,
        model="tiny",
        tokens=steps * 4 * 99,
        global_batch=4,
        seq_len=99,
        gpus_per_node=1,
    )
    return build_config(settings).config


def test_epochs_are_samples_read_over_samples(tokenized):
    corpus, selected = tokenized  # files of 2,000 + 1,000 tokens, and 1,000 tokens
    result = preflight(plan_for(corpus, selected, steps=20))
    assert result.passed, result.problems
    by_folder = {use.folder: use for use in result.folders}
    # 20 steps x 4 = 80 samples: 75 % from the corpus, 25 % from the selection
    assert by_folder[str(corpus)].samples == 20 + 10
    assert by_folder[str(corpus)].samples_read == 60
    assert by_folder[str(corpus)].epochs == 2.0
    assert (by_folder[str(selected)].samples, by_folder[str(selected)].samples_read) == (10, 20)
    text = "\n".join(result.lines())
    assert "run: 20 steps x 4 sequences x 99 tokens = 7,920 tokens" in text
    assert "OldTokenizedBytesFolderDataset, samples of 100 tokens per file" in text
    assert f"| {corpus} | 2 | 3,000 | 30 | 0.75 | 60 | 2 |" in text
    assert text.endswith("read at most 4 times")


def test_a_folder_repeated_more_than_max_epochs_fails(tokenized):
    corpus, _ = tokenized
    config = plan_for(corpus, None, steps=100)  # 400 samples of a folder of 30
    result = preflight(config)
    (problem,) = result.problems
    assert f"{corpus} would be read 13.3 times (400 samples of 30)" in problem
    assert "more than --max-epochs 4" in problem
    assert preflight(config, max_epochs=20).passed


def test_out_of_vocabulary_ids_missing_and_empty_folders_fail(tmp_path, tokenized):
    corpus, _ = tokenized
    root = tmp_path / "tokenized.s3"
    bad = write_tokenized(root / "bad", "bad", [[5] * 300 + [49_152]])
    config = plan_for(corpus, bad, steps=4)
    (problem,) = preflight(config).problems
    assert f"{bad} holds token id 49,152, outside the model's vocabulary (49,152 ids)" in problem
    config.data_stages[0].data.dataset.dataset_folder[1] = str(root / "missing")
    assert preflight(config).problems == [f"{root / 'missing'} does not exist (or is not a folder)"]
    (root / "empty").mkdir()
    config.data_stages[0].data.dataset.dataset_folder[1] = str(root / "empty")
    (problem,) = preflight(config).problems
    assert problem.startswith(f"{root / 'empty'} holds no .ds file")


def test_files_shorter_than_a_sample_give_no_sample(tmp_path, tokenized):
    corpus, _ = tokenized
    short = write_tokenized(tmp_path / "tokenized.s3" / "short", "short", [[3] * 99, [4] * 99])
    result = preflight(plan_for(corpus, short, steps=4))
    (problem,) = result.problems
    assert f"{short} holds no sample: nanotron takes samples of 100 tokens" in problem
    assert "(largest: 99 tokens)" in problem
    assert "| no sample |" in "\n".join(result.lines())


def test_config_problems_are_reported_with_the_folders(tokenized):
    corpus, selected = tokenized
    config = plan_for(corpus, selected, steps=20)
    config.data_stages[0].data.dataset.use_old_brrr_dataloader = False
    config.checkpoints.resume_checkpoint_path = None
    problems = "\n".join(preflight(config).problems)
    assert "set data_stages[0].data.dataset.use_old_brrr_dataloader: true" in problems
    assert "TypeError at the first batch" in problems
    assert "set checkpoints.resume_checkpoint_path" in problems


@pytest.mark.parametrize("folder", ["/data/tokenized/corpus", "tokenized/corpus"])
def test_folder_paths_without_s3_are_refused(tokenized, folder):
    corpus, _ = tokenized
    config = plan_for(corpus, None, steps=4)
    config.data_stages[0].data.dataset.dataset_folder = [folder]
    problems = "\n".join(preflight(config).problems)
    assert f"dataset_folder {folder!r}: nanotron main asserts 's3' in every dataset" in problems

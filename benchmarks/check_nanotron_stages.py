"""Inside nanotron's own environment: does nanotron main run a staged plan's two launches as
``ai-filters nanotron-config --selection-stage decay`` writes them?

    python benchmarks/check_nanotron_stages.py STAGED.yaml [--out nanotron_stages.json]

Run with the training environment's Python (docs/nanotron.md), from the folder the config's
paths are relative to, with nanotron's checkout on ``PYTHONPATH`` (for ``run_train.py``). The
configs are loaded with nanotron's ``get_config_from_file``; nanotron's own stage logic
(``run_train.get_dataloader``, ``DistributedTrainer._update_dataloader_based_on_training_stages``)
runs on a stand-in trainer (config, metadata, step: no model, no GPU) whose data loader builder
only records which stage's folders and weights it was asked for. Three launches: the staged
config from a fresh start (nanotron main cannot: it builds the last stage only), the first
launch (``STAGED.stable.yaml``) from a fresh start, and the staged config resumed from the
first launch's final checkpoint (metadata of the stable stage at the step before the decay).
Exit code 1 unless the last two read the stable and the decay stage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import run_train
import torch.distributed as dist
from nanotron import trainer as trainer_module
from nanotron.config import get_config_from_file
from nanotron.serialize.metadata import DataStageMetadata, TrainingMetadata


def record(trainer, data, **kwargs) -> dict:
    """Stands in for ``get_dataloader_from_data_stage``: what it was asked to build."""
    offsets = kwargs.get("last_stages_consumed_tokens_per_dataset_folder")
    return {
        "folders": list(data.dataset.dataset_folder),
        "weights": list(data.dataset.dataset_weights),
        "offsets": dict(offsets or {}),
    }


def launch(config, metadata: TrainingMetadata) -> dict:
    """nanotron's stage logic for a launch whose checkpoint holds ``metadata``."""
    trainer = SimpleNamespace(
        config=config,
        metadata=metadata,
        iteration_step=metadata.last_train_step,
        sequence_length=config.tokens.sequence_length,
        current_dataloader=None,
        parallel_context=None,
    )
    try:
        loaders = run_train.get_dataloader(trainer)
        trainer.iteration_step = metadata.last_train_step + 1  # the training loop's first step
        update = trainer_module.DistributedTrainer._update_dataloader_based_on_training_stages
        update(trainer, loaders)
    except (KeyError, ValueError, AssertionError) as error:
        return {"error": f"{type(error).__name__}: {error}"}
    return {"stages_built": list(loaders), "first_step": trainer.iteration_step} | (
        trainer.current_dataloader
    )


def fresh(config) -> TrainingMetadata:
    """The metadata ``DistributedTrainer`` starts a run without a checkpoint with."""
    stages = [
        DataStageMetadata(s.name, s.start_training_step, 0, s.sequence_length)
        for s in config.data_stages
    ]
    return TrainingMetadata(0, 0, 0, last_stage_idx=0, data_stages=stages)


def after_first_launch(first) -> TrainingMetadata:
    """The metadata of the first launch's final checkpoint (its counts: steps x batch)."""
    steps, stage = first.tokens.train_steps, first.data_stages[0]
    samples = steps * first.global_batch_size
    folders = stage.data.dataset.dataset_folder
    tokens = {folder: samples * (first.tokens.sequence_length + 1) for folder in folders}
    done = DataStageMetadata(stage.name, 1, samples, first.tokens.sequence_length, tokens)
    return TrainingMetadata(samples, steps, last_stage_idx=0, data_stages=[done])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="staged nanotron YAML (its .stable.yaml next to it)")
    parser.add_argument("--out", default="nanotron_stages.json", help="JSON file to write")
    args = parser.parse_args(argv)
    if not dist.is_initialized():  # nanotron logs through the default process group
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    run_train.get_dataloader_from_data_stage = record
    trainer_module.sanity_check_dataloader = lambda dataloader, **kwargs: dataloader
    staged = get_config_from_file(args.config)
    first = get_config_from_file(str(Path(args.config).with_suffix(".stable.yaml")))
    result = {
        "staged_from_a_fresh_start": launch(staged, fresh(staged)),
        "first_launch_from_a_fresh_start": launch(first, fresh(first)),
        "staged_resumed_after_the_first_launch": launch(staged, after_first_launch(first)),
    }
    print(json.dumps(result, indent=1))
    Path(args.out).write_text(json.dumps(result, indent=1))
    stable, decay = (stage.data.dataset.dataset_folder for stage in staged.data_stages)
    ok = (
        result["first_launch_from_a_fresh_start"].get("folders") == stable
        and result["staged_resumed_after_the_first_launch"].get("folders") == decay
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

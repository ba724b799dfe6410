"""Inside nanotron's own environment: does nanotron main read a config's data as
``ai-filters nanotron-check`` counts it?

    python benchmarks/check_nanotron_reader.py CONFIG.yaml [--out nanotron_reader.json]

Run with the training environment's Python (docs/nanotron.md) and this checkout
on ``PYTHONPATH``. The config is loaded with nanotron's own loader (``get_config_from_file``:
dacite, strict, and ``NanosetDatasetsArgs``' check of the folders' ``.metadata``); every folder
of every data stage (a staged config has two) is built with nanotron's ``build_dataset`` and the
stage's reader flags; its length and samples (first, middle, last, past the end) are compared with
:mod:`ai_filters.nanotron.data`; and the folder paths go through the assertion nanotron's
trainer runs after every step (``BlendableDataset.get_consumption_stats``). Exit code 1 when
anything differs; the findings are printed and written as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from types import SimpleNamespace

import numpy as np
import torch.distributed as dist
from nanotron.config import get_config_from_file
from nanotron.data.nemo_dataset.blendable_dataset import BlendableDataset
from nanotron.data.tokenized_bytes import build_dataset

from ai_filters.nanotron.data import read_tokenized_folder


def check_folder(folder: str, dataset_args, seq_len: int) -> dict:
    """nanotron's dataset for ``folder`` against :func:`read_tokenized_folder`'s reading."""
    theirs = build_dataset(
        folder,
        seq_len,
        token_size=dataset_args.token_size_in_bytes,
        return_positions=dataset_args.return_positions,
        use_old_brrr_dataloader=dataset_args.use_old_brrr_dataloader,
        skip_in_stream=dataset_args.skip_in_stream,
    )
    ours = read_tokenized_folder(folder, dataset_args.token_size_in_bytes, scan_tokens=None)
    length = len(theirs)
    indices = sorted({0, length // 2, length - 1, length + 1}) if length else []
    same = [
        bool(np.array_equal(theirs[i]["input_ids"].numpy(), ours.sample(i, seq_len)))
        for i in indices
    ]
    keys = sorted(theirs[0]) if length else []
    return {
        "folder": folder,
        "reader": type(theirs).__name__,
        "nanotron_files": len(theirs.files),
        "nanotron_samples": length,
        "ai_filters_samples": ours.samples(seq_len),
        "samples_compared": indices,
        "samples_equal": same,
        "sample_keys": keys,
        "max_token_id": ours.max_token_id,
    }


def trainer_path_check(folders: list[str]) -> str:
    """What nanotron's per-step consumption stats do with these folder paths."""
    stats = SimpleNamespace(
        datasets=[SimpleNamespace(folder_path=f) for f in folders],
        consumed_tokens=dict.fromkeys(range(len(folders)), 0),
    )
    try:
        BlendableDataset.get_consumption_stats(stats)
    except AssertionError as error:
        return f"AssertionError: {error}"
    return "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="nanotron YAML written by ai-filters nanotron-config")
    parser.add_argument("--out", default="nanotron_reader.json", help="JSON file to write")
    args = parser.parse_args(argv)
    if not dist.is_initialized():  # nanotron logs through the default process group
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    config = get_config_from_file(args.config)
    seq_len = config.tokens.sequence_length
    result = {
        "config": args.config,
        "loaded_by_nanotron": type(config).__name__,
        "sequence_length": seq_len,
        "stages": [check_stage(stage, seq_len) for stage in config.data_stages],
    }
    print(json.dumps(result, indent=1))
    with open(args.out, "w") as file:
        json.dump(result, file, indent=1)
    agree = all(
        entry["nanotron_samples"] == entry["ai_filters_samples"] and all(entry["samples_equal"])
        for stage in result["stages"]
        for entry in stage["folders"]
    )
    paths_ok = all(stage["trainer_consumption_stats"] == "ok" for stage in result["stages"])
    return 0 if agree and paths_ok else 1


def check_stage(stage, seq_len: int) -> dict:
    """Every folder of one data stage, built by nanotron with the stage's reader flags."""
    dataset_args = stage.data.dataset
    folders = list(dataset_args.dataset_folder)
    return {
        "name": stage.name,
        "start_training_step": stage.start_training_step,
        "use_old_brrr_dataloader": dataset_args.use_old_brrr_dataloader,
        "dataset_weights": dataset_args.dataset_weights,
        "folders": [check_folder(folder, dataset_args, seq_len) for folder in folders],
        "trainer_consumption_stats": trainer_path_check(folders),
    }


if __name__ == "__main__":
    sys.exit(main())

"""Shared by the nanotron tests: the shipped configs, problem messages, tokenized folders."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from datatrove.pipeline.tokens.tokenizer import TokenizedFile

from ai_filters.nanotron import NanotronConfig, NanotronConfigError, load_config, validate

SHIPPED = Path(__file__).resolve().parents[2] / "nanotron_configs"
SHIPPED_NAMES = ["smollm_7b_wsd_baseline", "smollm_7b_wsd_attention_influence", "tiny_smoke"]
COSMO2 = "HuggingFaceTB/cosmo2-tokenizer"


def shipped_dict(name: str = "smollm_7b_wsd_attention_influence") -> dict:
    return yaml.safe_load((SHIPPED / f"{name}.yaml").read_text())


def problems_of(data: dict, **kwargs) -> str:
    """All problem messages of a config dict, joined (fails the test if there are none)."""
    with pytest.raises(NanotronConfigError) as error:
        validate(load_config(data), **kwargs)
    return "\n".join(error.value.problems)


def write_tokenized(folder: Path, name: str, files: list[list[int]], tokenizer=COSMO2) -> Path:
    """A folder laid out as datatrove's DocumentTokenizerMerger writes it: 000_<name>.ds (+ .index,
    .metadata) per output file and a total <name>.ds.metadata, via datatrove's own TokenizedFile."""
    total = 0
    for i, tokens in enumerate(files):
        out = TokenizedFile(
            str(folder),
            f"{i:03d}_{name}.ds",
            tokenizer_name_or_path=tokenizer,
            save_final_metadata=True,
        )
        out.write(tokens, None)
        out.close()
        total += len(tokens)
    out.write_final_metadata(total, filename=f"{name}.ds")
    return folder


def wsd(style: str = "linear") -> NanotronConfig:
    """1,000 steps: warmup 10, constant to 750, decay over 250 from 1e-3 to 1e-4."""
    config = load_config(SHIPPED / "tiny_smoke.yaml")
    config.tokens.train_steps = 1000
    config.optimizer.learning_rate_scheduler = replace(
        config.optimizer.learning_rate_scheduler,
        learning_rate=1e-3,
        lr_warmup_steps=10,
        lr_decay_starting_step=750,
        lr_decay_steps=250,
        lr_decay_style=style,
        min_decay_lr=1e-4,
    )
    validate(config)
    return config


@pytest.fixture
def tokenized(tmp_path) -> tuple[Path, Path]:
    """A fixture (import it where used): corpus of 3,000 tokens in two merged files, selection
    of 1,000 tokens, under ``tokenized.s3/`` (nanotron main needs 's3' in folder paths)."""
    root = tmp_path / "tokenized.s3"
    corpus = write_tokenized(root / "corpus", "corpus", [list(range(2000)), [7] * 1000])
    selected = write_tokenized(root / "selected", "selected", [list(range(1000))])
    return corpus, selected

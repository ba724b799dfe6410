"""The pre-flight of a nanotron run, on a CPU in seconds: what ``ai-filters nanotron-check`` does.

It validates the config (:func:`ai_filters.nanotron.validate`), opens every dataset folder of
every data stage as nanotron's reader will (:mod:`ai_filters.nanotron.data`), and counts what
each stage reads from each of its folders over the stage's steps (from its start to the step
before the next stage's, the last to ``train_steps``; one stage: the whole run):

- **samples read** = ``stage steps x global batch x weight``: nanotron's blend hands each
  folder its weight's share of the stage's samples, in order (``BlendableDataset``, Megatron's
  ``build_blending_indices``; weights normalised to sum 1);
- **epochs** = samples read / the folder's samples, how many times the stage repeats the
  folder. It is ``stage steps x global batch x sequence_length x weight / tokens`` up to the
  extra token of each sample and the file tails no sample covers.

A folder fails the check when it is missing or empty, holds no whole sample, holds a token id
outside the vocabulary, or would be repeated more than ``max_epochs`` times by a stage.
"""

from __future__ import annotations

from dataclasses import dataclass

from ai_filters.markdown import markdown_table
from ai_filters.nanotron.checks import global_batch_size, validate
from ai_filters.nanotron.data import (
    READER,
    SCAN_TOKENS,
    TokenizedFolder,
    dataset_folders,
    dataset_weights,
    folder_problems,
    read_tokenized_folder,
)
from ai_filters.nanotron.loading import NanotronConfigError
from ai_filters.nanotron.schema import (
    NANOTRON_COMMIT,
    DatasetStageArgs,
    NanosetDatasetsArgs,
    NanotronConfig,
)

MAX_EPOCHS = 4.0


@dataclass(frozen=True)
class FolderUse:
    """One dataset folder and what the run reads of it (None where it could not be read)."""

    folder: str
    weight: float  # normalised: the folder's share of the samples
    samples_read: int
    info: TokenizedFolder | None
    samples: int | None
    stage: str | None = None  # the data stage's name, set when the config has several
    stage_steps: int = 0  # the steps the stage runs

    @property
    def in_stage(self) -> str:
        """`` in stage 'x' (N steps)`` for a stage of a staged config, else empty."""
        return f" in stage {self.stage!r} ({self.stage_steps:,} steps)" if self.stage else ""

    @property
    def epochs(self) -> float | None:
        """Times the run reads the folder; inf when it holds no sample, None when unread."""
        if self.samples is None:
            return None
        return self.samples_read / self.samples if self.samples else float("inf")


@dataclass(frozen=True)
class Preflight:
    """The outcome of :func:`preflight`: the run's numbers, each folder, every problem."""

    config: NanotronConfig
    folders: list[FolderUse]
    problems: list[str]
    max_epochs: float

    @property
    def passed(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """The report: the run, the reader, the table of folders, the verdict."""
        lines = self._run_lines() if self.folders else []
        if self.passed:
            lines.append(
                f"passed: every folder readable, within the vocabulary and read at most "
                f"{self.max_epochs:g} times"
            )
        else:
            count = len(self.problems)
            lines.append(f"failed: {count} problem{'s' if count > 1 else ''}")
        return lines

    def _run_lines(self) -> list[str]:
        tokens = self.config.tokens
        batch = global_batch_size(self.config)
        read = tokens.train_steps * batch * tokens.sequence_length
        return [
            f"run: {tokens.train_steps:,} steps x {batch:,} sequences x "
            f"{tokens.sequence_length:,} tokens = {read:,} tokens",
            f"reader: nanotron {NANOTRON_COMMIT[:8]} {READER}, samples of "
            f"{tokens.sequence_length + 1:,} tokens per file",
            "",
            *self._tables(),
        ]

    def _tables(self) -> list[str]:
        """One table of folders, or one per data stage (its name and steps above it)."""
        if self.folders[0].stage is None:
            return [folder_table(self.folders), ""]
        lines = []
        for stage in self.config.data_stages:
            uses = [use for use in self.folders if use.stage == stage.name]
            if uses:
                lines += [
                    f"data stage {stage.name!r}: {uses[0].stage_steps:,} steps from step "
                    f"{stage.start_training_step:,}",
                    folder_table(uses),
                    "",
                ]
        return lines


def preflight(
    config: NanotronConfig, max_epochs: float = MAX_EPOCHS, scan_tokens: int | None = SCAN_TOKENS
) -> Preflight:
    """Check ``config`` and its data; every problem is listed, none raised.

    Each data stage is counted over its own steps (from its start to the step before the next
    stage's, the last to ``train_steps``), each of its folders against that folder's samples.
    ``scan_tokens`` is how many tokens of each file are checked against the vocabulary
    (``None``: all of them).
    """
    problems: list[str] = []
    try:
        validate(config)
    except NanotronConfigError as error:
        problems.extend(error.problems)
    if not config.data_stages or config.tokens is None:
        return Preflight(config, [], problems, max_epochs)
    ends = [stage.start_training_step - 1 for stage in config.data_stages[1:]]
    infos: dict[str, TokenizedFolder | None] = {}
    uses = []
    for index, (stage, end) in enumerate(
        zip(config.data_stages, [*ends, config.tokens.train_steps], strict=True)
    ):
        steps = end - stage.start_training_step + 1
        uses += _stage_uses(config, stage, index, steps, infos, problems, scan_tokens)
    for use in uses:
        problems.extend(_epoch_problems(use, config.tokens.sequence_length, max_epochs))
    return Preflight(config, uses, problems, max_epochs)


def _stage_uses(
    config: NanotronConfig,
    stage: DatasetStageArgs,
    index: int,
    steps: int,
    infos: dict[str, TokenizedFolder | None],
    problems: list[str],
    scan_tokens: int | None,
) -> list[FolderUse]:
    """What ``stage`` (``steps`` steps) reads of each of its folders; each folder is opened
    once (``infos``) and its problems added to ``problems`` then."""
    dataset, where = stage.data.dataset, f"data_stages[{index}]"
    if dataset is None:
        return []
    folders = dataset_folders(dataset)
    weights = dataset_weights(dataset) or [1.0] * len(folders)
    if len(weights) != len(folders) or sum(weights) <= 0:
        return []
    seq_len = config.tokens.sequence_length
    stage_samples = max(steps, 0) * global_batch_size(config)
    max_tokens = dataset.dataset_max_tokens or [None] * len(folders)
    uses = []
    for folder, weight, limit in zip(folders, weights, max_tokens, strict=False):
        share = weight / sum(weights)
        if folder not in infos:
            infos[folder] = _open(folder, dataset, config, where, problems, scan_tokens)
        info = infos[folder]
        samples = info.samples(seq_len, limit) if info is not None else None
        name = stage.name if len(config.data_stages) > 1 else None
        uses.append(
            FolderUse(folder, share, round(stage_samples * share), info, samples, name, steps)
        )
    return uses


def _open(
    folder: str,
    dataset: NanosetDatasetsArgs,
    config: NanotronConfig,
    where: str,
    problems: list[str],
    scan_tokens: int | None,
) -> TokenizedFolder | None:
    """``folder`` as nanotron's reader sees it, its problems added to ``problems``; None when
    it cannot be read."""
    try:
        info = read_tokenized_folder(folder, dataset.token_size_in_bytes, scan_tokens)
    except (OSError, ValueError) as error:
        problems.append(str(error))
        return None
    problems.extend(folder_problems(info, dataset, config.model.model_config.vocab_size, where))
    return info


def _epoch_problems(use: FolderUse, seq_len: int, max_epochs: float) -> list[str]:
    if use.info is None:
        return []
    if not use.samples:
        return [
            f"{use.folder} holds no sample: nanotron takes samples of {seq_len + 1:,} tokens from "
            f"each .ds file on its own and no file holds that many (largest: "
            f"{max(use.info.file_tokens):,} tokens); tokenize with fewer tasks or --merge, or "
            "shorten the sequences"
        ]
    if use.epochs > max_epochs:
        return [
            f"{use.folder} would be read {_epochs(use.epochs)} times ({use.samples_read:,} samples "
            f"of {use.samples:,}){use.in_stage}, more than --max-epochs {max_epochs:g}: train "
            "fewer steps or on more data"
        ]
    return []


def folder_table(folders: list[FolderUse]) -> str:
    """Markdown: per folder its files, tokens, samples, weight, samples read and epochs."""
    header = ["folder", "files", "tokens", "samples", "weight", "samples read", "epochs"]
    rows = [
        [
            use.folder,
            _count(len(use.info.files) if use.info else None),
            _count(use.info.tokens if use.info else None),
            _count(use.samples),
            f"{use.weight:.4g}",
            f"{use.samples_read:,}",
            _epochs(use.epochs),
        ]
        for use in folders
    ]
    return markdown_table(header, rows, align="lrrrrrr")


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _epochs(value: float | None) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "no sample"
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"

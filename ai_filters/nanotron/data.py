"""The data a nanotron run reads: datatrove's tokenized ``.ds`` folders, read as nanotron does.

The configs choose nanotron's ``OldTokenizedBytesFolderDataset`` (``use_old_brrr_dataloader:
true``; huggingface/nanotron@2411b022, ``src/nanotron/data/tokenized_bytes.py``). The other
path, ``TokenizedBytesFolderDataset``, passes ``DatatroveFolderDataset`` arguments that no
released datatrove takes, so training stops with a ``TypeError`` at its first batch.
The reader's contract, which this module follows and its tests hold it to:

- **files**: every file under the folder, sub-folders included (``os.walk``), whose path ends in
  ``.ds`` (the pattern ``.*\\.ds$``), sorted by path; ``.ds.index`` and ``.ds.metadata`` are
  not read. Many files per folder (one per tokenizing task) are one dataset.
- **tokens**: little-endian ``uint16`` when ``token_size_in_bytes`` is 2, ``uint32`` otherwise;
  a file holds ``size // token size`` tokens.
- **samples**: each file on its own holds ``tokens // (sequence_length + 1)`` samples of
  ``sequence_length + 1`` consecutive tokens; the rest of a file is never read, so a file
  shorter than one sample adds nothing. The folder's samples are its files' samples in order;
  sample ``i`` of a folder of ``n`` is sample ``i % n`` (it repeats, nothing stops it).
- **a sample** is ``{"input_ids": sequence_length + 1 tokens}``, no positions: the collator
  feeds tokens ``[:-1]`` to the model and predicts tokens ``[1:]``.
- **metadata**: nanotron's config reads ``<tokenizer>|<bytes per token>`` from the first line
  of a ``*.metadata`` file directly in the folder and asserts it names the configured tokenizer.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import fsspec
import numpy as np
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs

from ai_filters.nanotron.schema import NanosetDatasetsArgs

READER = "OldTokenizedBytesFolderDataset"
FILE_PATTERN = re.compile(r".*\.ds$")  # nanotron's filename_pattern, matched against full paths
SCAN_TOKENS = 1 << 20  # token ids checked per file by default (2 MB of uint16)
_CHUNK = 1 << 22  # tokens read at once while scanning


def token_size_for(vocab_size: int) -> int:
    """Bytes per token in datatrove's ``.ds`` files: uint16 up to 65,536 ids, else uint32."""
    return 2 if vocab_size <= 65536 else 4


def token_dtype(token_size: int) -> np.dtype:
    """The dtype nanotron's reader gives a ``token_size_in_bytes``: uint16 for 2, else uint32."""
    return np.dtype("<u2" if token_size == 2 else "<u4")


def dataset_folders(dataset: NanosetDatasetsArgs) -> list[str]:
    """Dataset folders as nanotron sees them (a single string is one folder)."""
    folder = dataset.dataset_folder
    return [folder] if isinstance(folder, str) else list(folder)


def dataset_weights(dataset: NanosetDatasetsArgs) -> list[float] | None:
    """Dataset weights as nanotron sees them (a single folder string gets weight 1)."""
    return [1.0] if isinstance(dataset.dataset_folder, str) else dataset.dataset_weights


def reader_files(folder: str | Path) -> list[str]:
    """The files nanotron's reader opens in ``folder``, in its order (see the module docstring).

    A URL (``s3://...``) is listed through fsspec, as nanotron lists S3 prefixes with boto3.
    """
    if _is_url(folder):
        fs, root = url_to_fs(str(folder))
        found = fs.find(root)
        return sorted(fs.unstrip_protocol(path) for path in found if FILE_PATTERN.match(path))
    return sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if FILE_PATTERN.match(os.path.join(root, name))
    )


def _is_url(folder: str | Path) -> bool:
    return "://" in str(folder)


@dataclass(frozen=True)
class TokenizedFolder:
    """One folder as nanotron's reader sees it: its ``.ds`` files and their token counts."""

    folder: str
    files: tuple[str, ...]
    file_tokens: tuple[int, ...]
    token_size: int  # bytes per token the files are read with
    declared_token_size: int | None  # bytes per token the .metadata files declare
    tokenizer_names: tuple[str, ...]  # first-line names of the folder's *.metadata files
    max_token_id: int
    scanned_tokens: int  # how many tokens max_token_id was taken over

    @property
    def tokens(self) -> int:
        return sum(self.file_tokens)

    @property
    def tokenizer_name(self) -> str | None:
        """The tokenizer the metadata names, when all files name the same known one."""
        names = set(self.tokenizer_names)
        if len(names) != 1:
            return None
        name = names.pop()
        return None if _unknown(name) else name

    def file_samples(self, seq_len: int, max_tokens: int | None = None) -> list[int]:
        """Samples of ``seq_len + 1`` tokens nanotron takes from each file; ``max_tokens`` is
        the config's ``dataset_max_tokens`` entry (files past it are not read)."""
        remaining, samples = max_tokens, []
        for tokens in self.file_tokens:
            count = (min(remaining, tokens) if remaining else tokens) // (seq_len + 1)
            samples.append(count)
            if remaining:
                remaining -= count * (seq_len + 1)
                if remaining <= 0:
                    break
        return samples

    def samples(self, seq_len: int, max_tokens: int | None = None) -> int:
        """The folder's length for nanotron: its files' samples added up."""
        return sum(self.file_samples(seq_len, max_tokens))

    def sample(self, index: int, seq_len: int) -> np.ndarray:
        """Sample ``index`` as nanotron's reader returns it (``input_ids``, as int64)."""
        counts = self.file_samples(seq_len)
        total = sum(counts)
        if not total:
            raise ValueError(f"{self.folder} holds no sample of {seq_len + 1:,} tokens")
        index %= total
        for file, count in zip(self.files, counts, strict=False):
            if index < count:
                start = index * (seq_len + 1) * self.token_size
                with fsspec.open(file, "rb") as handle:
                    handle.seek(start)
                    data = handle.read((seq_len + 1) * self.token_size)
                return np.frombuffer(data, dtype=token_dtype(self.token_size)).astype(np.int64)
            index -= count
        raise AssertionError("unreachable: index is below the total")


def read_tokenized_folder(
    folder: str | Path, token_size: int | None = None, scan_tokens: int | None = SCAN_TOKENS
) -> TokenizedFolder:
    """Open ``folder`` as nanotron's reader does and count its tokens.

    ``token_size`` is the config's ``token_size_in_bytes`` (default: the ``.ds.metadata``'s,
    else 2). ``max_token_id`` is taken over the first ``scan_tokens`` tokens of every file
    (``None``: all of them). Raises ``FileNotFoundError`` for a missing folder or one without
    ``.ds`` files and ``ValueError`` for a file that is not a whole number of tokens.
    """
    fs, root = url_to_fs(str(folder))
    if not fs.isdir(root):
        raise FileNotFoundError(f"{folder} does not exist (or is not a folder)")
    files = reader_files(folder)
    if not files:
        raise FileNotFoundError(
            f"{folder} holds no .ds file: tokenize it first (pipelines/tokenize_for_nanotron.py)"
        )
    names, declared = _read_metadata(fs, root)
    size = token_size or declared or 2
    file_tokens, max_id, scanned = [], 0, 0
    for file in files:
        length = fs.size(url_to_fs(file)[1])
        if length % size:
            raise ValueError(
                f"{file} is {length:,} bytes: not a whole number of {size}-byte tokens"
            )
        file_tokens.append(length // size)
        file_max, file_scanned = _scan(file, size, scan_tokens)
        max_id, scanned = max(max_id, file_max), scanned + file_scanned
    return TokenizedFolder(
        str(folder), tuple(files), tuple(file_tokens), size, declared, names, max_id, scanned
    )


def _scan(file: str, token_size: int, limit: int | None) -> tuple[int, int]:
    """(largest token id, tokens read) over the first ``limit`` tokens of ``file``."""
    largest, read = 0, 0
    with fsspec.open(file, "rb") as handle:
        while limit is None or read < limit:
            count = _CHUNK if limit is None else min(_CHUNK, limit - read)
            data = handle.read(count * token_size)
            if not data:
                break
            tokens = np.frombuffer(data, dtype=token_dtype(token_size))
            largest, read = max(largest, int(tokens.max())), read + len(tokens)
    return largest, read


def _unknown(name: str) -> bool:
    return name.startswith("Unknown Tokenizer")


def _read_metadata(fs: AbstractFileSystem, root: str) -> tuple[tuple[str, ...], int | None]:
    """(the tokenizer name of every ``*.metadata`` file, their bytes per token) — the files
    nanotron's config reads; (``()``, None) without any."""
    names, sizes = [], set()
    for metadata in sorted(fs.glob(f"{root.rstrip('/')}/*.metadata")):
        with fs.open(metadata, "rt", encoding="utf-8") as handle:
            first = handle.readline().strip()
        name, _, size = first.rpartition("|")
        if not size.isdigit():
            raise ValueError(f"{metadata}: expected '<tokenizer>|<bytes per token>', got {first!r}")
        names.append(name)
        sizes.add(int(size))
    if len(sizes) > 1:
        raise ValueError(f"{root}: its .metadata files declare token sizes {sorted(sizes)}")
    return tuple(names), sizes.pop() if sizes else None


def folder_problems(
    info: TokenizedFolder, dataset: NanosetDatasetsArgs, vocab_size: int, where: str
) -> list[str]:
    """What would make nanotron fail on or misread ``info`` under the config's ``dataset``."""
    problems = []
    at = f"{where}.data.dataset"
    for name in sorted(set(info.tokenizer_names)):
        if name.count("|") or _unknown(name):
            problems.append(
                f"{info.folder}: nanotron splits the first line of its .metadata files into "
                f"'<tokenizer>|<bytes per token>' and fails on {name!r}: tokenize with a named "
                "tokenizer (--tokenizer)"
            )
        elif name != dataset.tokenizer_name:
            problems.append(
                f"{info.folder} was tokenized with {name!r}: set {at}.tokenizer_name and "
                "tokenizer.tokenizer_name_or_path to it (nanotron asserts they match)"
            )
    declared = info.declared_token_size
    if declared is not None and declared != dataset.token_size_in_bytes:
        problems.append(
            f"{info.folder} stores {declared}-byte tokens: set {at}.token_size_in_bytes to "
            f"{declared}"
        )
    if info.max_token_id >= vocab_size:
        problems.append(
            f"{info.folder} holds token id {info.max_token_id:,}, outside the model's vocabulary "
            f"({vocab_size:,} ids): tokenize with the model's tokenizer or fix the vocab sizes"
        )
    return problems

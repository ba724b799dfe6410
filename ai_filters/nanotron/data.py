"""The data a nanotron run reads: datatrove's tokenized ``.ds`` folders and how a config names them.

A folder is what datatrove's ``DocumentTokenizer`` (and ``DocumentTokenizerMerger``) write:
``*.ds`` files of packed token ids with their ``.ds.index`` and ``.ds.metadata``, the layout
nanotron's Nanoset reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ai_filters.nanotron.schema import NanosetDatasetsArgs


def token_size_for(vocab_size: int) -> int:
    """Bytes per token in datatrove's ``.ds`` files: uint16 up to 65,536 ids, else uint32."""
    return 2 if vocab_size <= 65536 else 4


def dataset_folders(dataset: NanosetDatasetsArgs) -> list[str]:
    """Dataset folders as nanotron sees them (a single string is one folder)."""
    folder = dataset.dataset_folder
    return [folder] if isinstance(folder, str) else list(folder)


def dataset_weights(dataset: NanosetDatasetsArgs) -> list[float] | None:
    """Dataset weights as nanotron sees them (a single folder string gets weight 1)."""
    return [1.0] if isinstance(dataset.dataset_folder, str) else dataset.dataset_weights


@dataclass(frozen=True)
class TokenizedFolder:
    """What nanotron will read from one folder: its ``*.ds`` files, not recursive."""

    folder: str
    tokens: int
    token_size: int
    tokenizer_name: str | None
    max_token_id: int


def read_tokenized_folder(folder: str | Path, sample_tokens: int = 1 << 20) -> TokenizedFolder:
    """Count the tokens of a datatrove tokenized folder from its ``*.ds`` files.

    Tokens = file size / token size. The token size and tokenizer come from the first line
    ``<tokenizer>|<bytes per token>`` of the ``.ds.metadata`` files (datatrove 0.10's format;
    line 2 is the token count). The merger's extra total ``<name>.ds.metadata`` has no ``.ds``
    file, so nothing is counted twice. ``max_token_id`` is taken over the first ``sample_tokens``
    tokens of each file.
    """
    path = Path(folder)
    files = sorted(path.glob("*.ds"))
    if not files:
        raise FileNotFoundError(
            f"no .ds files in {path}: tokenize it first (pipelines/tokenize_for_nanotron.py)"
        )
    tokenizer_name, token_size = _read_metadata(path)
    dtype = "<u2" if token_size == 2 else "<u4"  # datatrove packs little-endian "H" / "I"
    tokens, max_id = 0, 0
    for file in files:
        size = file.stat().st_size
        if size % token_size:
            raise ValueError(f"{file} is {size} bytes, not a multiple of {token_size}-byte tokens")
        tokens += size // token_size
        sample = np.fromfile(file, dtype=dtype, count=sample_tokens)
        max_id = max(max_id, int(sample.max()) if sample.size else 0)
    return TokenizedFolder(str(folder), tokens, token_size, tokenizer_name, max_id)


def _read_metadata(folder: Path) -> tuple[str | None, int]:
    """(tokenizer name or None, bytes per token) from the first ``*.ds.metadata`` file."""
    metadata = sorted(folder.glob("*.ds.metadata"))
    if not metadata:
        return None, 2
    first = (metadata[0].read_text(encoding="utf-8").splitlines() or [""])[0]
    name, _, size = first.rpartition("|")
    if not size.isdigit():
        raise ValueError(f"{metadata[0]}: expected '<tokenizer>|<bytes per token>', got {first!r}")
    return (None if name.startswith("Unknown Tokenizer") else name), int(size)

"""Tokenization for nanotron that also takes a local tokenizer folder."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from datatrove.pipeline.tokens import DocumentTokenizer


class FolderTokenizer(DocumentTokenizer):
    """datatrove's ``DocumentTokenizer`` that also takes a local Hugging Face tokenizer folder.

    datatrove loads a tokenizer from a Hub name or a ``tokenizer.json`` file and records that
    string in the ``.ds.metadata`` files; nanotron later loads the recorded name with
    ``AutoTokenizer.from_pretrained``, which needs a Hub name or a *folder*. Given a folder,
    this block reads its ``tokenizer.json`` and records the folder, so offline runs (the demo's
    embedded tokenizer) produce data nanotron can load.
    """

    @cached_property
    def tokenizer(self):
        folder = Path(self.tokenizer_name_or_path)
        if not folder.is_dir():
            return DocumentTokenizer.tokenizer.func(self)
        self.tokenizer_name_or_path = str(folder / "tokenizer.json")
        try:
            return DocumentTokenizer.tokenizer.func(self)
        finally:
            self.tokenizer_name_or_path = str(folder)

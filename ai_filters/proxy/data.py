"""The training data of a proxy run: documents, their tokens, the arms' mixes, packed blocks.

Data path of an arm: documents -> token ids (the training tokenizer, EOS after every document)
-> documents shuffled with the seed -> concatenated and cut into ``seq_len`` blocks (the tail
shorter than a block is dropped) -> ``Trainer``.

The random control (:func:`token_matched_random`) takes, per domain, the documents with the
highest ``random_score`` until the token count of the selection it controls is reached, so it
adds as many training-tokenizer tokens as that selection, domain by domain.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ai_filters.documents import FORMATS, read_documents
from ai_filters.fields import END_OF_TEXT, RANDOM_SCORE_KEY, SKIP_REASON_KEY, SKIP_UNREADABLE


def read_folder(folder: str | Path) -> list[dict]:
    """Every readable, non-empty document under ``folder`` (jsonl, jsonl.gz, parquet; sorted).

    A document's domain is ``metadata["domain"]``, else the first sub-folder of ``folder`` it
    lies in, else ``"all"``; it is stored back into ``metadata["domain"]``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(FORMATS))
    documents = []
    for path in files:
        relative = path.relative_to(root).parts
        fallback = relative[0] if len(relative) > 1 else "all"
        for document in read_documents(path):
            if document["metadata"].get(SKIP_REASON_KEY) == SKIP_UNREADABLE or not document["text"]:
                continue
            domain = document["metadata"].get("domain") or fallback
            documents.append({**document, "metadata": {**document["metadata"], "domain": domain}})
    if not documents:
        raise ValueError(f"{root}: no documents ({', '.join(FORMATS)} files)")
    return documents


class TokenCache:
    """Token ids of document texts (EOS appended, int32 arrays), computed once per distinct text.

    Everything lives in memory: meant for proxy experiments of up to a few hundred million
    tokens, not for a full pretraining corpus.
    """

    def __init__(self, tokenizer, eos_token: str = END_OF_TEXT) -> None:
        """``tokenizer``: a transformers fast tokenizer
        (:func:`ai_filters.engine.models.load_tokenizer`);
        texts are encoded by its ``backend_tokenizer``, without special tokens."""
        self.backend = tokenizer.backend_tokenizer
        self.eos_id = self.backend.token_to_id(eos_token)
        if self.eos_id is None:
            raise ValueError(f"the tokenizer has no token {eos_token!r}")
        self._ids: dict[str, np.ndarray] = {}

    @property
    def vocab_size(self) -> int:
        """Ids the model must embed: the vocabulary with the added tokens."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def add(self, documents: Iterable[dict]) -> None:
        """Tokenize the texts of ``documents`` not seen before."""
        texts = list(dict.fromkeys(d["text"] for d in documents if d["text"] not in self._ids))
        for text, encoding in zip(
            texts, self.backend.encode_batch(texts, add_special_tokens=False), strict=True
        ):
            self._ids[text] = np.array([*encoding.ids, self.eos_id], dtype=np.int32)

    def ids(self, document: dict) -> np.ndarray:
        if document["text"] not in self._ids:
            self.add([document])
        return self._ids[document["text"]]

    def count(self, documents: Iterable[dict]) -> int:
        """Tokens of ``documents`` (with their EOS), counting repeated documents each time."""
        documents = list(documents)
        self.add(documents)
        return sum(len(self._ids[d["text"]]) for d in documents)


def tokens_per_domain(documents: Iterable[dict], tokens: TokenCache) -> dict[str, int]:
    counts: dict[str, int] = {}
    for document in documents:
        domain = document["metadata"]["domain"]
        counts[domain] = counts.get(domain, 0) + len(tokens.ids(document))
    return counts


def token_matched_random(
    scored: Sequence[dict],
    targets: dict[str, int],
    tokens: TokenCache,
    score_key: str = RANDOM_SCORE_KEY,
) -> list[dict]:
    """Per domain of ``targets``, documents by descending ``score_key`` up to the target tokens.

    Documents are added while the domain's total is below its target; the document that
    crosses the target is kept only if that brings the total closer to it, so each domain ends
    within one document of its target (at most half of that document away). Ties in the score
    are broken by id. A domain of ``targets`` without scored documents, or a document without
    ``score_key``, raises ``ValueError``.
    """
    picked: list[dict] = []
    for domain, target in sorted(targets.items()):
        pool = [d for d in scored if d["metadata"]["domain"] == domain]
        if not pool:
            raise ValueError(f"no scored documents of domain {domain!r} for the random control")
        unscored = next((d["id"] for d in pool if score_key not in d["metadata"]), None)
        if unscored is not None:
            raise ValueError(f"document {unscored!r} has no metadata[{score_key!r}]")
        pool.sort(key=lambda d: (-float(d["metadata"][score_key]), str(d["id"])))
        total = 0
        for document in pool:
            if total >= target:
                break
            size = len(tokens.ids(document))
            if total + size > target and (total + size - target) > (target - total):
                break
            picked.append(document)
            total += size
    return picked


def pack_blocks(
    token_lists: Sequence[np.ndarray], seq_len: int, seed: int | None = None
) -> torch.Tensor:
    """Concatenate ``token_lists`` (shuffled with ``seed`` unless it is None) into
    ``[n, seq_len]`` blocks; the tail shorter than a block is dropped."""
    order = list(range(len(token_lists)))
    if seed is not None:
        random.Random(seed).shuffle(order)
    stream = np.concatenate([token_lists[index] for index in order])
    count = len(stream) // seq_len
    return torch.from_numpy(stream[: count * seq_len]).long().view(count, seq_len)


class BlockDataset(torch.utils.data.Dataset):
    """Fixed-length token blocks as causal-LM examples (HF models shift the labels themselves)."""

    def __init__(self, blocks: torch.Tensor) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return self.blocks.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.blocks[index], "labels": self.blocks[index]}


@dataclass
class Arm:
    """A data mix: the corpus plus ``selection`` (appended: its documents are seen again)."""

    name: str
    corpus: list[dict]
    selection: list[dict] = field(default_factory=list)

    @property
    def documents(self) -> list[dict]:
        return [*self.corpus, *self.selection]

    def stats(self, tokens: TokenCache) -> dict[str, int]:
        """Tokens of one pass over the mix, of its distinct texts, and of the selection."""
        distinct = {d["text"]: d for d in self.documents}.values()
        return {
            "mix_tokens": tokens.count(self.documents),
            "unique_tokens": tokens.count(distinct),
            "selection_tokens": tokens.count(self.selection),
            "selection_documents": len(self.selection),
        }

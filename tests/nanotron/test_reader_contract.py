"""The ``.ds`` contract of nanotron's ``OldTokenizedBytesFolderDataset``, on real files.

Folders are written by datatrove's own ``DocumentTokenizer`` (one ``.ds`` file per task, as
``pipelines/tokenize_for_nanotron.py`` leaves them) with tokenizers built here, and read back
with :mod:`ai_filters.nanotron.data`, which follows nanotron's reader. What the reader must see
is checked against what was written: the token counts of the ``.ds.index`` files, the token ids
the tokenizer gives each document, the documents themselves.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import pytest
from datatrove.data import Document
from datatrove.pipeline.tokens import DocumentTokenizer
from tokenizers import Tokenizer, models, pre_tokenizers

from ai_filters.nanotron.data import read_tokenized_folder, reader_files

EOS = "<|endoftext|>"


def word_tokenizer(folder: Path, words: int) -> tuple[Path, Tokenizer]:
    """A whitespace word-level tokenizer of ``words`` words plus EOS and UNK, saved as JSON."""
    vocab = {EOS: 0, "[UNK]": 1} | {f"w{i}": i + 2 for i in range(words)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    path = folder / f"words{words}.json"
    tokenizer.save(str(path))
    return path, tokenizer


def documents(count: int, words: int, seed: int) -> list[Document]:
    """Documents of 20 to 400 random words; the last word of the vocabulary is in the first."""
    rng = random.Random(seed)
    docs = []
    for index in range(count):
        text = " ".join(f"w{rng.randrange(words)}" for _ in range(rng.randint(20, 400)))
        docs.append(Document(text=text, id=f"doc-{index}"))
    docs[0].text += f" w{words - 1}"
    return docs


def tokenize(folder: Path, tokenizer: Path, parts: list[list[Document]]) -> None:
    """Each part tokenized by one task of datatrove's DocumentTokenizer into ``folder``."""
    for rank, part in enumerate(parts):
        block = DocumentTokenizer(
            str(folder),
            tokenizer_name_or_path=str(tokenizer),
            eos_token=EOS,
            save_filename="corpus",
            seed=rank,
        )
        block.run(iter(part), rank=rank, world_size=len(parts))


def index_tokens(ds_file: str) -> int:
    """Tokens of a ``.ds`` file by its ``.ds.index`` (uint64 document ends): the last end."""
    ends = Path(f"{ds_file}.index").read_bytes()
    return struct.unpack("<Q", ends[-8:])[0]


@pytest.fixture
def words_folder(tmp_path) -> tuple[Path, Tokenizer, list[Document], Path]:
    """Three tasks' output: two in the folder, a third (a single short document) one level down."""
    path, tokenizer = word_tokenizer(tmp_path, 500)
    docs = documents(40, 500, seed=1)
    folder = tmp_path / "tokenized.s3" / "corpus"
    tokenize(folder, path, [docs[0:20], docs[20:39]])
    tokenize(folder / "late", path, [[docs[39]]])
    return folder, tokenizer, docs, path


def test_the_reader_opens_every_ds_file_recursively_in_path_order(words_folder):
    folder, _, _, _ = words_folder
    written = sorted(str(p) for p in folder.rglob("*.ds"))
    everything = sorted(p.name for p in folder.rglob("*") if p.is_file())
    assert len(written) == 3
    assert any(name.endswith(".ds.index") for name in everything)
    assert any(name.endswith(".ds.metadata") for name in everything)
    assert reader_files(folder) == written  # .index / .metadata skipped, sub-folder included


def test_tokens_samples_and_ids_match_what_datatrove_wrote(words_folder):
    folder, tokenizer, docs, path = words_folder
    info = read_tokenized_folder(folder, scan_tokens=None)
    assert info.file_tokens == tuple(index_tokens(file) for file in info.files)
    # every document's tokens plus one EOS: nothing lost, nothing added
    expected = sum(len(tokenizer.encode(doc.text).ids) + 1 for doc in docs)
    assert info.tokens == expected
    assert (info.token_size, info.declared_token_size) == (2, 2)
    assert set(info.tokenizer_names) == {str(path)}
    # the largest id written is the vocabulary's last word (id 501 of 502 ids)
    assert info.max_token_id == 501
    seq_len = 511
    short = index_tokens(info.files[-1])
    assert short < seq_len + 1  # the sub-folder's file is shorter than one sample
    assert info.file_samples(seq_len) == [t // (seq_len + 1) for t in info.file_tokens]
    assert info.file_samples(seq_len)[-1] == 0
    assert info.samples(seq_len) == sum(t // 512 for t in info.file_tokens[:2]) > 0


def test_each_sample_is_seq_len_plus_one_consecutive_tokens_of_the_documents(words_folder):
    folder, tokenizer, docs, _ = words_folder
    info = read_tokenized_folder(folder)
    seq_len = 63
    texts = {doc.text for doc in docs}
    stream = " ".join(f"{doc.text} {EOS}" for doc in docs)
    total = info.samples(seq_len)
    for index in (0, 1, total // 2, total - 1):
        ids = info.sample(index, seq_len)
        assert ids.dtype == np.int64 and ids.shape == (seq_len + 1,)
        pieces = tokenizer.decode(ids.tolist(), skip_special_tokens=False).split(EOS)
        # whole documents between two EOS tokens, the first and last pieces cut from documents
        assert all(piece.strip() in texts for piece in pieces[1:-1])
        assert all(piece.strip() in stream for piece in (pieces[0], pieces[-1]))
    # samples past the end repeat the folder from its start, as nanotron's index % len does
    assert np.array_equal(info.sample(total + 3, seq_len), info.sample(3, seq_len))


def test_a_vocabulary_over_65536_ids_is_read_as_uint32(tmp_path):
    path, tokenizer = word_tokenizer(tmp_path, 70_000)
    docs = documents(6, 70_000, seed=2)
    folder = tmp_path / "tokenized.s3" / "big"
    tokenize(folder, path, [docs[:3], docs[3:]])
    info = read_tokenized_folder(folder, scan_tokens=None)
    assert (info.token_size, info.declared_token_size) == (4, 4)
    assert info.max_token_id == 70_001  # would wrap around if read as uint16
    assert info.tokens == sum(len(tokenizer.encode(doc.text).ids) + 1 for doc in docs)
    first = info.sample(0, 15)
    assert tokenizer.decode(first.tolist()).split()[0].startswith("w")

"""Synthetic in-context retrieval probes (AttentionInfluence, section 3.1 of the paper).

A probe is a 3-shot key -> value lookup over a JSON object of random 32-character keys mapped
to natural sentences of at most 30 tokens. The object is filled with pairs until the whole
sample (prompt + answer) is as close as possible to ``max_tokens`` without going over. The
answer is the value of the queried key, so a head that *copies* it must attend to the value's
tokens inside the JSON object.

Each piece of the prompt is tokenized on its own and the ids are concatenated, so the answer's
token ids are exactly the ids of the value inside the context, and the value's span is known
exactly (no offset mapping, no re-tokenization drift).
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

KEY_ALPHABET = string.ascii_letters + string.digits
KEY_LENGTH = 32
SHOTS = 3
MAX_SENTENCE_TOKENS = 30
MIN_SENTENCE_TOKENS = 6
INSTRUCTION = (
    "Below is a JSON object of key-value pairs. After it, each line gives a key and then "
    "its value from the object.\n"
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Probe:
    """One retrieval sample: token ids of prompt + answer and where the answer was copied from.

    ``input_ids[answer_start:]`` is the answer (the queried value); the same ids sit at
    ``input_ids[value_start:value_end]`` inside the JSON object.
    """

    input_ids: tuple[int, ...]
    value_start: int
    value_end: int
    answer_start: int

    @property
    def answer_positions(self) -> range:
        return range(self.answer_start, len(self.input_ids))

    def __post_init__(self) -> None:
        value = self.input_ids[self.value_start : self.value_end]
        answer = self.input_ids[self.answer_start :]
        if value != answer or not answer:
            raise ValueError("probe answer must equal the gold value's tokens in the context")


def split_sentences(text: str) -> list[str]:
    """Natural sentences of ``text`` usable as probe values.

    Whitespace is collapsed; a sentence must start with an upper-case letter, end with
    ``.``, ``!`` or ``?``, be mostly letters, and hold no quote or backslash (so the JSON
    object needs no escapes).
    """
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        flat = " ".join(paragraph.split())
        for sentence in _SENTENCE_END.split(flat):
            if _is_natural_sentence(sentence):
                sentences.append(sentence)
    return sentences


def _is_natural_sentence(sentence: str) -> bool:
    if len(sentence) < 20 or not sentence[0].isupper() or sentence[-1] not in ".!?":
        return False
    if any(char in sentence for char in '"\\{}[]<>|*=_`'):
        return False
    letters = sum(char.isalpha() or char == " " for char in sentence)
    return letters >= 0.9 * len(sentence)


def default_sentence_texts() -> list[str]:
    """Offline default text: the Python Language Reference shipped with CPython.

    ``pydoc_data.topics`` is part of the standard library, so every machine that runs this
    package has it; its sections are expository English prose.
    """
    try:
        from pydoc_data.topics import topics
    except ImportError as error:  # some distributions strip pydoc_data
        raise FileNotFoundError(
            "this Python has no pydoc_data module for the default probe sentences; "
            "pass --sentences FILE (a .txt, .jsonl, .jsonl.gz or .parquet file of documents)"
        ) from error
    return [topics[name] for name in sorted(topics)]


def load_sentence_texts(source: str | None, text_key: str = "text") -> list[str]:
    """Texts to cut probe sentences from: a ``.txt`` file, a documents file, or the default."""
    if source is None:
        return default_sentence_texts()
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"sentence source {path} does not exist")
    if path.suffix == ".txt":
        return [path.read_text(encoding="utf-8", errors="replace")]
    from ai_filters.documents import read_documents

    return [doc["text"] for doc in read_documents(path, text_key=text_key)]


def collect_sentences(
    tokenizer, texts: Iterable[str], max_tokens: int = MAX_SENTENCE_TOKENS
) -> list[tuple[int, ...]]:
    """Distinct sentences of ``texts`` tokenized, keeping those of 6 to ``max_tokens`` tokens."""
    seen: set[str] = set()
    kept: list[tuple[int, ...]] = []
    for text in texts:
        for sentence in split_sentences(text):
            if sentence in seen:
                continue
            seen.add(sentence)
            ids = tuple(tokenizer(sentence, add_special_tokens=False).input_ids)
            if MIN_SENTENCE_TOKENS <= len(ids) <= max_tokens:
                kept.append(ids)
    return kept


class _Pieces:
    """Tokenizes the fixed glue strings of the probe format once."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.prefix = tuple(tokenizer(INSTRUCTION).input_ids)  # carries the BOS, if any
        self.open = self.ids('{"')
        self.between_key_value = self.ids('": "')
        self.between_pairs = self.ids('", "')
        self.close = self.ids('"}\n')
        self.line_start = self.ids('"')
        self.arrow = self.ids('" -> "')
        self.line_end = self.ids('"\n')

    def ids(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer(text, add_special_tokens=False).input_ids)

    def pair_cost(self, key: tuple[int, ...], value: tuple[int, ...]) -> int:
        return len(key) + len(self.between_key_value) + len(value) + len(self.between_pairs)

    def line_cost(self, key: tuple[int, ...], value: tuple[int, ...]) -> int:
        return len(self.line_start) + len(key) + len(self.arrow) + len(value)


def random_key(rng: random.Random) -> str:
    return "".join(rng.choice(KEY_ALPHABET) for _ in range(KEY_LENGTH))


def build_probe(
    pieces: _Pieces,
    sentences: Sequence[tuple[int, ...]],
    max_tokens: int,
    rng: random.Random,
) -> Probe:
    """One probe of at most ``max_tokens`` tokens, filled with as many pairs as fit."""
    order = rng.sample(range(len(sentences)), len(sentences))
    keys = [pieces.ids(random_key(rng)) for _ in range(SHOTS + 1)]
    values = [sentences[i] for i in order[: SHOTS + 1]]
    # fixed cost: instruction, braces, 3 demonstration lines, the query line and the answer
    used = len(pieces.prefix) + len(pieces.open) + len(pieces.close)
    used += sum(
        pieces.line_cost(k, v) + len(pieces.line_end) for k, v in zip(keys, values, strict=True)
    )
    used += sum(pieces.pair_cost(k, v) for k, v in zip(keys, values, strict=True))
    if used > max_tokens:
        raise ValueError(f"max_tokens={max_tokens} is too small for a {SHOTS}-shot probe")
    for index in order[SHOTS + 1 :]:
        key, value = pieces.ids(random_key(rng)), sentences[index]
        if used + pieces.pair_cost(key, value) > max_tokens:
            break
        keys.append(key)
        values.append(value)
        used += pieces.pair_cost(key, value)
    return _assemble(pieces, keys, values, rng)


def _assemble(
    pieces: _Pieces, keys: list[tuple[int, ...]], values: list[tuple[int, ...]], rng: random.Random
) -> Probe:
    """Lay out the JSON object (pairs shuffled), 3 demonstrations, the query and the answer.

    Pairs 0..2 are the demonstrations, pair 3 is the query.
    """
    layout = rng.sample(range(len(keys)), len(keys))
    ids = list(pieces.prefix) + list(pieces.open)
    value_start = value_end = -1
    for position, pair in enumerate(layout):
        if position:
            ids += pieces.between_pairs
        ids += keys[pair] + pieces.between_key_value
        if pair == SHOTS:
            value_start = len(ids)
            value_end = value_start + len(values[pair])
        ids += values[pair]
    ids += pieces.close
    for shot in range(SHOTS):
        ids += pieces.line_start + keys[shot] + pieces.arrow + values[shot] + pieces.line_end
    ids += pieces.line_start + keys[SHOTS] + pieces.arrow
    answer_start = len(ids)
    ids += values[SHOTS]
    return Probe(tuple(ids), value_start, value_end, answer_start)


def build_probes(
    tokenizer,
    sentence_texts: Iterable[str],
    num_probes: int,
    max_tokens: int,
    seed: int = 0,
) -> list[Probe]:
    """``num_probes`` probes of at most ``max_tokens`` tokens each, reproducible from ``seed``."""
    sentences = collect_sentences(tokenizer, sentence_texts)
    if len(sentences) < 2 * (SHOTS + 1):
        raise ValueError(
            f"only {len(sentences)} usable sentences in the source; need many more "
            "(sentences of 6-30 tokens, starting upper-case, ending with . ! or ?)"
        )
    pieces = _Pieces(tokenizer)
    rng = random.Random(seed)
    return [build_probe(pieces, sentences, max_tokens, rng) for _ in range(num_probes)]


def decode_probe(tokenizer, probe: Probe) -> str:
    """The probe as text (for inspection and docs)."""
    return tokenizer.decode(list(probe.input_ids))

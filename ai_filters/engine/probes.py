"""Synthetic in-context retrieval probes (AttentionInfluence, section 3.1 of the paper).

A probe is a 3-shot key -> value lookup over a JSON object of random 32-character keys mapped
to natural sentences of at most 30 tokens. The object is filled with pairs until the whole
sample (prompt + answer) is as close as possible to ``max_tokens`` without going over. The
answer is the value of the queried key, so a head that *copies* it must attend to the value's
tokens inside the JSON object.

A probe's token ids are the tokenizer's own encoding of its whole text, as the model reads
such text anywhere else. The gold value's tokens in the context and the answer's tokens are
located by character offsets; where the tokenizer merges a value's last character with the
quote after it (``.",``), the context's token differs from the answer's and cannot be copied.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

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

    ``input_ids[answer_start:]`` is the answer (the queried value's tokens at the end of the
    text); ``input_ids[value_start:value_end]`` are the tokens of the same value inside the
    JSON object (the gold value's span).
    """

    input_ids: tuple[int, ...]
    value_start: int
    value_end: int
    answer_start: int

    @property
    def answer_positions(self) -> range:
        return range(self.answer_start, len(self.input_ids))

    def __post_init__(self) -> None:
        spans = (self.value_start, self.value_end, self.answer_start, len(self.input_ids))
        if not 0 <= spans[0] < spans[1] <= spans[2] < spans[3]:
            raise ValueError(
                "a probe needs a non-empty gold value span before a non-empty answer at its end, "
                f"got value [{spans[0]}, {spans[1]}), answer from {spans[2]} of {spans[3]} tokens"
            )


class Sentence(NamedTuple):
    """A probe value and its token count when tokenized alone."""

    text: str
    tokens: int


class ProbeText(NamedTuple):
    """A probe's text, the characters of the gold value in the JSON object and where the answer
    (the rest of the text) starts."""

    text: str
    value_chars: tuple[int, int]
    answer_char: int


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
) -> list[Sentence]:
    """Distinct sentences of ``texts`` of 6 to ``max_tokens`` tokens (each tokenized alone)."""
    seen: set[str] = set()
    kept: list[Sentence] = []
    for text in texts:
        for sentence in split_sentences(text):
            if sentence in seen:
                continue
            seen.add(sentence)
            tokens = len(tokenizer(sentence, add_special_tokens=False).input_ids)
            if MIN_SENTENCE_TOKENS <= tokens <= max_tokens:
                kept.append(Sentence(sentence, tokens))
    return kept


# the probe format's glue strings, in the order they appear
OPEN, KEY_VALUE, BETWEEN_PAIRS, CLOSE = '{"', '": "', '", "', '"}\n'
LINE_START, ARROW, LINE_END = '"', '" -> "', '"\n'


class _Costs:
    """Token counts of the probe's parts, each tokenized alone: an estimate of a probe's length
    (the tokenizer merges some tokens across part boundaries, e.g. ``.",``)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.fixed = len(tokenizer(INSTRUCTION).input_ids) + self.count(OPEN) + self.count(CLOSE)
        self.key_value = self.count(KEY_VALUE)
        self.between_pairs = self.count(BETWEEN_PAIRS)
        self.line = self.count(LINE_START) + self.count(ARROW) + self.count(LINE_END)

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def pair(self, key: str, value: Sentence) -> int:
        """A ``"key": "value", `` pair of the JSON object."""
        return self.count(key) + self.key_value + value.tokens + self.between_pairs

    def shot(self, key: str, value: Sentence) -> int:
        """The pair in the object and its ``"key" -> "value"`` line (a demonstration or the
        query line with its answer)."""
        return self.pair(key, value) + self.count(key) + self.line + value.tokens


def random_key(rng: random.Random) -> str:
    return "".join(rng.choice(KEY_ALPHABET) for _ in range(KEY_LENGTH))


def build_probe(
    costs: _Costs,
    sentences: Sequence[Sentence],
    max_tokens: int,
    rng: random.Random,
) -> Probe:
    """One probe of at most ``max_tokens`` tokens, filled with as many pairs as fit.

    Pairs are added while the parts' estimate fits, then the whole text is encoded and pairs
    are removed or added one at a time until its real encoding is the longest that fits.
    """
    order = rng.sample(range(len(sentences)), len(sentences))
    values = [sentences[i].text for i in order]
    keys = [random_key(rng) for _ in range(SHOTS + 1)]
    layout_seed = rng.getrandbits(64)
    used = costs.fixed + sum(
        costs.shot(key, sentences[i]) for key, i in zip(keys, order[: SHOTS + 1], strict=True)
    )
    if used > max_tokens:
        raise ValueError(f"max_tokens={max_tokens} is too small for a {SHOTS}-shot probe")
    while len(keys) < len(order):
        keys.append(random_key(rng))
        used += costs.pair(keys[-1], sentences[order[len(keys) - 1]])
        if used > max_tokens:
            break
    pairs = len(keys) - (used > max_tokens)

    def encode(count: int) -> Probe:
        layout = random.Random(layout_seed).sample(range(count), count)
        return encode_probe(costs.tokenizer, keys[:count], values[:count], layout)

    probe = encode(pairs)
    fitted = len(probe.input_ids) <= max_tokens
    while len(probe.input_ids) > max_tokens:
        pairs -= 1
        if pairs <= SHOTS:
            raise ValueError(f"max_tokens={max_tokens} is too small for a {SHOTS}-shot probe")
        probe = encode(pairs)
    while fitted and pairs < len(order):
        if pairs == len(keys):
            keys.append(random_key(rng))
        longer = encode(pairs + 1)
        if len(longer.input_ids) > max_tokens:
            break
        probe, pairs = longer, pairs + 1
    return probe


def probe_text(keys: Sequence[str], values: Sequence[str], layout: Sequence[int]) -> ProbeText:
    """The probe's text: the JSON object with its pairs in ``layout`` order, 3 demonstrations
    (pairs 0..2), the query line (pair 3) and its answer, the value of pair 3, at the end."""
    text = INSTRUCTION + OPEN
    value_chars = (-1, -1)
    for position, pair in enumerate(layout):
        text += (BETWEEN_PAIRS if position else "") + keys[pair] + KEY_VALUE
        if pair == SHOTS:
            value_chars = (len(text), len(text) + len(values[pair]))
        text += values[pair]
    text += CLOSE
    for shot in range(SHOTS):
        text += LINE_START + keys[shot] + ARROW + values[shot] + LINE_END
    text += LINE_START + keys[SHOTS] + ARROW
    return ProbeText(text + values[SHOTS], value_chars, len(text))


def encode_probe(
    tokenizer, keys: Sequence[str], values: Sequence[str], layout: Sequence[int]
) -> Probe:
    """The probe as the tokenizer encodes its whole text; the gold value's tokens in the
    context and the answer's tokens are those whose characters overlap the value's
    (``return_offsets_mapping``). Special tokens the tokenizer appends after the answer, if
    any, are dropped."""
    text = probe_text(keys, values, layout)
    try:
        encoding = tokenizer(text.text, return_offsets_mapping=True)
    except NotImplementedError as error:
        raise ValueError(
            "retrieval probes need a fast tokenizer (one that returns character offsets)"
        ) from error
    offsets = encoding["offset_mapping"]
    value_start, value_end = token_span(offsets, *text.value_chars)
    answer_start, answer_end = token_span(offsets, text.answer_char, len(text.text))
    ids = tuple(encoding["input_ids"][:answer_end])
    return Probe(ids, value_start, value_end, answer_start)


def token_span(offsets: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """``[first, last + 1)`` of the tokens whose characters overlap ``text[start:end]``
    (special tokens, with empty offsets, never do)."""
    inside = [i for i, (a, b) in enumerate(offsets) if a < b and a < end and b > start]
    if not inside:
        raise ValueError(f"no token covers characters {start}-{end} of the probe")
    return inside[0], inside[-1] + 1


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
    costs = _Costs(tokenizer)
    rng = random.Random(seed)
    return [build_probe(costs, sentences, max_tokens, rng) for _ in range(num_probes)]


def decode_probe(tokenizer, probe: Probe) -> str:
    """The probe as text (for inspection and docs)."""
    return tokenizer.decode(list(probe.input_ids))

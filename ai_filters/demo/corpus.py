"""A small real multi-domain corpus made from text already installed on the machine.

The paper selects within four domains of the SmolLM corpus: web pages (FineWeb-Edu),
synthetic textbooks (Cosmopedia), Python code (Python-Edu) and mathematical web text
(OpenWebMath). Offline, the demo and the tests use real documents of the same four kinds that
every installation of this package has:

- ``web``: the project descriptions (PyPI pages) of a fixed list of distributions that this
  package depends on (:data:`WEB_DISTRIBUTIONS`);
- ``textbook``: sections of the Python Language Reference (``pydoc_data.topics``);
- ``code``: modules of the Python standard library;
- ``math``: documentation of mpmath's special functions (formulas, identities, examples).

What is read is pinned, so that two machines build the same corpus: the distributions'
versions (:data:`WEB_DISTRIBUTIONS`, :data:`MATH_DISTRIBUTION`) are those of the repository's
``constraints.txt``, which ``make install`` installs; ``textbook`` and ``code`` are the
Python's own, so they are pinned to one Python version (:data:`PINNED_PYTHON`), which pip
cannot install: :func:`pin_mismatches` says what differs on this machine, and
:func:`corpus_fingerprint` identifies a corpus.

Documents follow datatrove's layout, with ``metadata["domain"]`` set, ``metadata["source"]``
describing the domain's origin and ``metadata["source_text"]`` (:data:`SOURCE_TEXT_KEY`) naming
the text a document was cut from (pieces of one text share it).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import platform
import random
import sysconfig
from collections.abc import Callable, Iterable
from pathlib import Path

from ai_filters.fields import SOURCE_TEXT_KEY

DOMAINS = ("web", "textbook", "code", "math")
# The metadata field naming the text a document was cut from (``<domain>/<name>``, the id
# without its ``#<piece>`` suffix); pieces of one text share it, a whole text is its own.
MIN_CHARS = 1500


# The Python whose Language Reference (textbook) and standard library (code) the pinned corpus
# holds: other versions change some of their texts.
PINNED_PYTHON = "3.11.7"
# The distributions whose descriptions make the web domain, at the versions of constraints.txt
# (tests/demo/test_corpus.py checks that the two agree): the package's dependencies when the corpus
# was pinned, with a description of at least MIN_CHARS, without torch (a user may bring another
# build of it), the test tools, pip and setuptools (the venv's own) and this package (its README
# changes). The list is fixed: a dependency added later (scikit-learn and its own) is not read,
# so that the corpus stays the pinned one.
WEB_DISTRIBUTIONS: dict[str, str] = {
    "accelerate": "1.15.0",
    "annotated-doc": "0.0.7",
    "annotated-types": "0.8.0",
    "anyio": "4.16.0",
    "charset-normalizer": "3.5.3",
    "click": "8.5.1",
    "datasets": "5.2.0",
    "datatrove": "0.10.1",
    "dill": "0.4.1",
    "faust-cchardet": "3.2.0",
    "fonttools": "4.68.0",
    "fsspec": "2026.9.0",
    "gguf": "0.19.0",
    "h11": "0.16.0",
    "hf-xet": "1.8.0",
    "httpcore2": "2.16.2",
    "httpx2": "2.16.2",
    "huggingface-hub": "2.4.0",
    "humanize": "4.17.0",
    "idna": "3.20",
    "jinja2": "3.1.6",
    "loguru": "0.7.3",
    "markdown-it-py": "4.3.0",
    "markupsafe": "3.0.4",
    "matplotlib": "3.11.2",
    "mpmath": "1.3.0",
    "multiprocess": "0.70.19",
    "networkx": "3.6.1",
    "numpy": "2.4.6",
    "orjson": "3.13.0",
    "packaging": "26.4",
    "pandas": "3.1.1",
    "pillow": "13.0.0",
    "psutil": "7.2.2",
    "pyarrow": "26.0.1",
    "pydantic": "2.14.4",
    "pydantic-core": "2.50.5",
    "pyparsing": "3.3.3",
    "python-dateutil": "2.9.0.post0",
    "python-magic": "0.4.27",
    "regex": "2026.11.19",
    "requests": "2.34.2",
    "rich": "15.0.0",
    "scipy": "1.17.1",
    "shellingham": "1.5.4",
    "sympy": "1.14.0",
    "tokenizers": "0.23.3",
    "tqdm": "4.70.1",
    "transformers": "5.24.0",
    "truststore": "0.10.5",
    "typer": "0.29.2",
    "typing-extensions": "4.16.0",
    "urllib3": "2.8.0",
    "warcio": "1.8.1",
    "xxhash": "4.1.0",
    "zstandard": "0.25.0",
}
MATH_DISTRIBUTION = ("mpmath", "1.3.0")


def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def pin_mismatches() -> list[str]:
    """What this machine reads differently from the pins, one phrase each (e.g.
    ``"numpy 2.3.0 (pinned 2.4.6)"``, ``"xxhash not installed (pinned 4.1.0)"``,
    ``"Python 3.12.1 (pinned 3.11.7)"``); empty when the corpus is the pinned one."""
    mismatches = []
    python = platform.python_version()
    if python != PINNED_PYTHON:
        mismatches.append(f"Python {python} (pinned {PINNED_PYTHON})")
    for name, pinned in dict([*WEB_DISTRIBUTIONS.items(), MATH_DISTRIBUTION]).items():
        version = installed_version(name)
        if version != pinned:
            mismatches.append(f"{name} {version or 'not installed'} (pinned {pinned})")
    return mismatches


def _web() -> dict[str, str]:
    """Descriptions of the installed :data:`WEB_DISTRIBUTIONS` (a missing one is left out: see
    :func:`pin_mismatches`)."""
    texts = {}
    for name in WEB_DISTRIBUTIONS:
        try:
            metadata = importlib.metadata.distribution(name).metadata
        except importlib.metadata.PackageNotFoundError:
            continue
        body = metadata.get_payload() or metadata.get("Description") or ""
        if len(body) >= MIN_CHARS:
            texts[name] = body.strip()
    return texts


def _textbook() -> dict[str, str]:
    from pydoc_data.topics import topics

    return {name: text.strip() for name, text in topics.items() if len(text) >= MIN_CHARS}


def _code() -> dict[str, str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = {}
    for path in sorted(stdlib.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if MIN_CHARS <= len(text) <= 60_000:
            texts[path.stem] = text
    return texts


def _math() -> dict[str, str]:
    import mpmath

    texts = {}
    for name in sorted(dir(mpmath)):
        doc = inspect.getdoc(getattr(mpmath, name, None)) or ""
        if len(doc) >= MIN_CHARS and ".. math" in doc:
            texts[name] = doc
    return texts


SOURCES: dict[str, tuple[Callable[[], dict[str, str]], str]] = {
    "web": (_web, "descriptions of pinned distributions"),
    "textbook": (_textbook, "Python Language Reference (pydoc_data.topics)"),
    "code": (_code, "Python standard library modules"),
    "math": (_math, "mpmath function documentation"),
}


def split_text(name: str, text: str, chunk_chars: int) -> dict[str, str]:
    """Cut ``text`` at blank lines into pieces of about ``chunk_chars`` characters.

    Pieces are named ``name#0``, ``name#1``, ...; a short tail joins the piece before it.
    """
    pieces: list[str] = []
    current = ""
    for paragraph in text.split("\n\n"):
        current = f"{current}\n\n{paragraph}" if current else paragraph
        if len(current) >= chunk_chars:
            pieces.append(current)
            current = ""
    if current:
        if pieces and len(current) < chunk_chars // 2:
            pieces[-1] = f"{pieces[-1]}\n\n{current}"
        else:
            pieces.append(current)
    return {f"{name}#{index}": piece for index, piece in enumerate(pieces)}


def local_corpus(
    docs_per_domain: int = 12, seed: int = 0, chunk_chars: int | None = None
) -> list[dict]:
    """``docs_per_domain`` documents of each of the four domains, reproducible from ``seed``.

    With ``chunk_chars``, long texts are first cut into pieces of about that many characters
    (:func:`split_text`), which gives many more, shorter documents.
    """
    documents = []
    for domain in DOMAINS:
        collect, source = SOURCES[domain]
        texts = collect()
        if chunk_chars:
            texts = {
                piece_name: piece
                for name, text in texts.items()
                for piece_name, piece in split_text(name, text, chunk_chars).items()
            }
        names = sorted(texts)
        if len(names) < docs_per_domain:
            raise RuntimeError(
                f"only {len(names)} {domain} documents on this machine ({source}); "
                f"ask for at most that many per domain"
            )
        for name in sorted(random.Random(f"{seed}:{domain}").sample(names, docs_per_domain)):
            text_name = name.rpartition("#")[0] if chunk_chars else name
            documents.append(
                {
                    "text": texts[name],
                    "id": f"{domain}/{name}",
                    "metadata": {
                        "domain": domain,
                        "source": source,
                        SOURCE_TEXT_KEY: f"{domain}/{text_name}",
                    },
                }
            )
    return documents


def corpus_fingerprint(documents: Iterable[dict]) -> str:
    """sha256 over the ids and texts of ``documents`` in id order (so a corpus read back from
    its shards has the fingerprint of the corpus written): two equal fingerprints, one corpus."""
    digest = hashlib.sha256()
    for document in sorted(documents, key=lambda d: str(d["id"])):
        digest.update(f"{document['id']}\0{document['text']}\0".encode())
    return "sha256:" + digest.hexdigest()[:16]


def domain_fingerprints(documents: Iterable[dict]) -> dict[str, str]:
    """:func:`corpus_fingerprint` of each domain's documents (``metadata["domain"]``)."""
    by_domain: dict[str, list[dict]] = {}
    for document in documents:
        by_domain.setdefault(document["metadata"]["domain"], []).append(document)
    return {domain: corpus_fingerprint(docs) for domain, docs in sorted(by_domain.items())}


def corpus_domain_specs(folder: str) -> dict[str, dict]:
    """The domain specs of the demo corpus written at ``folder`` (a local folder or a URL):
    one jsonl folder per domain of :data:`DOMAINS`, as a domains file would give them."""
    return {domain: {"reader": "jsonl", "path": f"{folder}/{domain}"} for domain in DOMAINS}

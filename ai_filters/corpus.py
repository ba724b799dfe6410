"""A small real multi-domain corpus made from text already installed on the machine.

The paper selects within four domains of the SmolLM corpus: web pages (FineWeb-Edu),
synthetic textbooks (Cosmopedia), Python code (Python-Edu) and mathematical web text
(OpenWebMath). Offline, the demo and the tests use real documents of the same four kinds that
every installation of this package has:

- ``web``: the project descriptions (PyPI pages) of the installed Python distributions;
- ``textbook``: sections of the Python Language Reference (``pydoc_data.topics``);
- ``code``: modules of the Python standard library;
- ``math``: documentation of mpmath's special functions (formulas, identities, examples).

Documents follow datatrove's layout, with ``metadata["domain"]`` set.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import random
import sysconfig
from collections.abc import Callable
from pathlib import Path

DOMAINS = ("web", "textbook", "code", "math")
MIN_CHARS = 1500


def _web() -> dict[str, str]:
    texts = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata.get("Name")
        body = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
        if name and len(body) >= MIN_CHARS:
            texts[name.lower()] = body.strip()
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
    "web": (_web, "installed distribution descriptions"),
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
            documents.append(
                {
                    "text": texts[name],
                    "id": f"{domain}/{name}",
                    "metadata": {"domain": domain, "source": source},
                }
            )
    return documents

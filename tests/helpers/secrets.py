"""Planted secrets and the search for them in everything a command wrote or printed.

A pickle (datatrove's ``executor.pik``) stores a ``str`` as its raw UTF-8 bytes, so a raw byte
search of every file covers pickles, JSON, Slurm scripts and logs; a secret could also travel
encoded, so each is searched for in base64 (the three alignments it can take inside a longer
encoded text, standard and URL-safe) and in hex as well.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path

import pytest

# the values a user's environment holds; none may appear in an output or a printed line
SECRETS = {
    "HF_TOKEN": "hf_PLANTEDtokenThatMustNotLeak0123456789",
    "AWS_SECRET_ACCESS_KEY": "PLANTEDs3SecretAccessKey0123456789abcdefXYZ",
    "AWS_SESSION_TOKEN": "PLANTEDs3SessionToken0123456789abcdefghijkXYZ",
}
ACCESS_KEY_ID = "AKIAPLANTEDKEYID0000"  # not a secret itself, planted so that boto has a pair
PREFIX = 16  # a shortened value (logs shorten long values) still leaks its first characters


def plant(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the planted secrets (and an access key id) in the environment."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)


def _base64_cores(raw: bytes) -> list[bytes]:
    """The part of ``raw``'s base64 text that is the same wherever ``raw`` starts in a longer
    encoded text (its first and last characters depend on the neighbouring bytes)."""
    cores = []
    for offset, skip in ((0, 0), (1, 2), (2, 3)):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            cores.append(encode(b"\0" * offset + raw)[skip:-4])
    return cores


def forms(value: str) -> dict[str, bytes]:
    """``value`` as the bytes it would take in a file: raw (text, JSON, pickle), its start
    alone (shortened), base64, hex."""
    raw = value.encode()
    found = {"raw": raw, "hex": raw.hex().encode(), f"first {PREFIX} characters": raw[:PREFIX]}
    found.update({f"base64 #{i}": core for i, core in enumerate(_base64_cores(raw))})
    return found


def leaks(folders: Iterable[Path], texts: Iterable[str] = ()) -> list[str]:
    """Where a planted secret appears, in any form: every file under ``folders`` and each of
    ``texts`` (printed output); an empty list means nowhere."""
    blobs = [(str(path), path.read_bytes()) for f in folders for path in _files(f)]
    blobs += [(f"printed text #{i}", text.encode()) for i, text in enumerate(texts)]
    found = []
    for name, value in SECRETS.items():
        for form, pattern in forms(value).items():
            found += [f"{name} ({form}) in {where}" for where, blob in blobs if pattern in blob]
    return found


def _files(folder: Path) -> list[Path]:
    return [path for path in sorted(folder.rglob("*")) if path.is_file()]

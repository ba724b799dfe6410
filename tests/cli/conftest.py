"""Fixtures of the command-line tests."""

from tests.nanotron.helpers import tokenized  # noqa: F401 (a fixture: tokenized .ds folders)

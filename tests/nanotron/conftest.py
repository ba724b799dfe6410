"""Fixtures of the nanotron tests (defined in helpers, shared with the CLI tests)."""

from tests.nanotron.helpers import tokenized  # noqa: F401 (a fixture)

"""What every command shows its user: one-line errors and progress bars; and what an option
table adds its options to (:class:`OptionTarget`).

Used by the ``ai-filters`` command line and by the pipeline scripts in ``pipelines/``; it
imports nothing else from the package.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol


class OptionTarget(Protocol):
    """An argparse parser or argument group, as the option tables of the library see it (they
    add options; parsing, and argparse itself, stay with the command line)."""

    def add_argument(self, *names: str, **settings: Any) -> Any: ...

    def add_argument_group(self, title: str | None = None, **settings: Any) -> Any: ...


EXPECTED_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError, KeyError)


def storage_errors() -> tuple[type[BaseException], ...]:
    """The errors with which the S3 client (botocore, under s3fs) gives up on a storage it
    cannot reach, after its retries: connections refused, reset or timed out, no credentials.

    s3fs turns the storage's error answers (403, 404, 503 SlowDown...) into ``OSError``, but
    lets these through as they are. Empty while botocore is not loaded (no ``s3://`` path was
    used), so that this module imports nothing for it.
    """
    exceptions = sys.modules.get("botocore.exceptions")
    if exceptions is None:
        return ()
    return (exceptions.ConnectionError, exceptions.HTTPClientError, exceptions.NoCredentialsError)


def expected_errors() -> tuple[type[BaseException], ...]:
    """The errors a command reports in one line: :data:`EXPECTED_ERRORS` and
    :func:`storage_errors`."""
    return EXPECTED_ERRORS + storage_errors()


def error_line(error: BaseException) -> str:
    """The first line of ``error``'s message (its type name when it has none)."""
    return str(error).splitlines()[0] if str(error).strip() else type(error).__name__


class OneLineErrors:
    """Context manager: an expected error (:func:`expected_errors`) raised in the block becomes
    one line and an exit code.

    The line, on stderr, is ``PROG: error: MESSAGE (--debug shows the traceback)`` and
    :attr:`exit_code` becomes 2; Ctrl-C prints ``PROG: interrupted`` and gives 130. With
    ``debug``, and for any other exception (a bug), the exception propagates with its
    traceback::

        with OneLineErrors("ai-filters", args.debug) as errors:
            return args.run(args)
        return errors.exit_code
    """

    def __init__(self, prog: str, debug: bool) -> None:
        self.prog = prog
        self.debug = debug
        self.exit_code = 0

    def __enter__(self) -> OneLineErrors:
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if kind is KeyboardInterrupt:
            print(f"{self.prog}: interrupted", file=sys.stderr)
            self.exit_code = 130
            return True
        if error is None or self.debug or not isinstance(error, expected_errors()):
            return False
        close_progress_bars()
        print(
            f"{self.prog}: error: {error_line(error)} (--debug shows the traceback)",
            file=sys.stderr,
        )
        self.exit_code = 2
        return True


def close_progress_bars() -> None:
    """Close every open tqdm bar, so that a line printed next is the last one on stderr.

    A failed datatrove task leaves its readers suspended with their progress bars open; tqdm
    would print them once more when they are garbage-collected at exit, after the error line.
    tqdm keeps no public list of its bars: ``tqdm._instances`` is the one it uses itself.
    """
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def progress_bar(total: int | None, unit: str, description: str):
    """A tqdm bar on stderr counting ``unit``s, with tokens/s in its postfix.

    Returns ``(bar, update)``; ``update(items, new_tokens)`` advances it. Off a terminal the bar
    prints at most every 30 s, so logs stay short.
    """
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    bar = tqdm(
        total=total,
        unit=unit,
        desc=description,
        dynamic_ncols=True,
        file=sys.stderr,
        mininterval=0.5 if interactive else 30,
    )
    started = time.monotonic()
    tokens = [0]

    def update(items: int, new_tokens: int) -> None:
        tokens[0] += new_tokens
        bar.update(items)
        bar.set_postfix_str(f"{tokens[0] / max(time.monotonic() - started, 1e-9):.0f} tok/s")

    return bar, update

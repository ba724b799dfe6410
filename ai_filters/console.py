"""What every command shows its user: one-line errors and progress bars; what an option
table adds its options to (:class:`OptionTarget`); and the one-line check of a whole-number
setting that every settings object uses (:func:`require_integer`).

Used by the ``ai-filters`` command line and by the pipeline scripts in ``pipelines/``; it
imports nothing else from the package.
"""

from __future__ import annotations

import errno
import io
import sys
import time
from numbers import Integral
from types import TracebackType
from typing import Any, Protocol


class OptionTarget(Protocol):
    """An argparse parser or argument group, as the option tables of the library see it (they
    add options; parsing, and argparse itself, stay with the command line)."""

    def add_argument(self, *names: str, **settings: Any) -> Any: ...

    def add_argument_group(self, title: str | None = None, **settings: Any) -> Any: ...


def require_integer(name: str, value: object, minimum: int) -> None:
    """``ValueError`` (one line, naming ``name``) unless ``value`` is an integer (not a bool)
    of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


EXPECTED_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError, KeyError)


FULL_DISK_ERRORS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


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
    """The first line of ``error``'s message (its type name when it has none).

    A full disk or an exceeded quota reads ``no space left on device writing PATH`` (``disk
    quota exceeded writing PATH``), PATH being the file being written when it was first raised:
    closing the other files (a task's log file among them) after it fails the same way, and the
    last of those errors is the one that arrives here, the first in its ``__context__`` chain
    (see :func:`written_path`; the bare OS message when no path is known).
    """
    paths = [
        (cause.errno, written_path(cause))
        for cause in _context_chain(error)
        if isinstance(cause, OSError) and cause.errno in FULL_DISK_ERRORS
    ]
    known = [(number, path) for number, path in paths if path is not None]
    if isinstance(error, OSError) and known:
        number, path = known[-1]
        return f"{FULL_DISK_ERRORS[number]} writing {path}"
    return str(error).splitlines()[0] if str(error).strip() else type(error).__name__


def written_path(error: OSError) -> str | None:
    """The file an ``OSError`` concerns: its ``filename``, or else the path of the innermost
    file object in its traceback whose own method raised it (None when there is none).

    A write or close on a full disk raises from the file object, with no filename on the
    error. datatrove writes through fsspec, whose files are Python objects keeping their path in
    ``.path``: the frame of their ``write``, ``flush`` or ``close`` is in the traceback. (Python's
    own files raise from C, without such a frame.)
    """
    if error.filename is not None:
        return str(error.filename)
    found = None
    for frame_locals in _frame_locals(error.__traceback__):
        owner = frame_locals.get("self")
        path = getattr(owner, "path", None)
        if isinstance(owner, io.IOBase) and isinstance(path, str):
            found = path
    return found


def _context_chain(error: BaseException):
    """``error``, the error it was raised while handling, that one's, and so on."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__context__


def _frame_locals(traceback: TracebackType | None):
    while traceback is not None:
        yield traceback.tb_frame.f_locals
        traceback = traceback.tb_next


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

"""Task logs without the values of variables.

datatrove logs a failed task's traceback with loguru, into ``<logging_dir>/logs/task_*.log``
and the console, and loguru's sinks show the value of every variable of every frame by
default (``diagnose``). A task that fails inside a Hub or S3 request then writes the request's
headers, ``Authorization: Bearer hf_...`` included, into the logging folder, often a shared
bucket. :class:`ValueFreeTracebacks` makes every sink a task adds show the traceback alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from datatrove.utils.logging import logger
from datatrove.utils.stats import PipelineStats


@contextmanager
def sinks_without_values() -> Iterator[None]:
    """While open, a sink added to loguru's ``logger`` formats tracebacks without the values
    of variables (``diagnose=False``) unless the caller asks for them."""
    add = type(logger).add

    def add_without_values(sink, *args, **kwargs):
        kwargs.setdefault("diagnose", False)
        return add(logger, sink, *args, **kwargs)

    logger.add = add_without_values
    try:
        yield
    finally:
        del logger.add


class ValueFreeTracebacks:
    """Mixin for datatrove executors (before the executor class): each task's log sinks,
    which datatrove adds when the task starts, show a failure's traceback without the values
    of its variables, which can hold credentials."""

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1) -> PipelineStats:
        with sinks_without_values():
            return super()._run_for_rank(rank, local_rank, node_rank)

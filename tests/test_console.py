"""One-line errors: the line is the last thing on stderr, even with progress bars still open."""

from __future__ import annotations

import sys

from tqdm import tqdm

from ai_filters.console import OneLineErrors


def test_open_progress_bars_print_before_the_error_line(capsys):
    def read_forever():
        with tqdm(total=10, desc="reading", file=sys.stderr) as bar:
            while True:
                bar.update()
                yield 1

    reader = read_forever()
    next(reader)  # suspended with its bar open, as a failed datatrove task leaves its readers
    with OneLineErrors("prog", debug=False) as errors:
        raise ValueError("the input is broken\nsecond line")
    stderr = capsys.readouterr().err
    assert errors.exit_code == 2
    assert stderr.strip().splitlines()[-1] == (
        "prog: error: the input is broken (--debug shows the traceback)"
    )
    del reader  # closing the reader now prints nothing more: its bar is already closed
    assert capsys.readouterr().err == ""


def test_a_bug_keeps_its_traceback():
    try:
        with OneLineErrors("prog", debug=False):
            raise ZeroDivisionError("bug")
    except ZeroDivisionError:
        return
    raise AssertionError("OneLineErrors swallowed an unexpected exception")


def test_the_storage_client_giving_up_is_one_line(capsys):
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    for error in (
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9/bucket/key"),
        ConnectionClosedError(endpoint_url="http://127.0.0.1:9/bucket/key"),
    ):
        with OneLineErrors("prog", debug=False) as errors:
            raise error
        assert errors.exit_code == 2
        line = capsys.readouterr().err.strip()
        assert line.startswith("prog: error: ") and "http://127.0.0.1:9/bucket/key" in line

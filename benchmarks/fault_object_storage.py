"""Fault scenarios of object storage: every stage run against a local S3 server (moto's, on
127.0.0.1) through a fault-injecting proxy (``fault_proxy.py``) that answers a share of the
requests with 503 ``SlowDown`` and resets a share of the connections, before and in the middle
of answers, for reads (GET, HEAD) and writes (PUT, POST, multipart uploads included).

The stages: ``pipelines/smollm_select.py --out s3://BUCKET/run`` (score, thresholds, select,
report), ``pipelines/tokenize_for_nanotron.py`` on that folder, ``ai-filters hub-folder``
reading it and ``ai-filters status``. The run's folder is then read back from the server
directly, not through the proxy, and compared with the undisturbed local run
(``FaultInputs.tokenized``). What the proxy injected in each stage is written to
``WORK/injected.json`` (``{stage: {method: {"requests": n, fault: n}}}``).

A storage that is down (every request answered 503) must end the selection in a one-line error
within a bounded time (``storage down``).

A shared module of the fault suite (``benchmarks/faults.py`` runs ``SCENARIOS``), never run.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pyarrow.parquet as pq
from fault_outcome import (
    SELECT_SCRIPT,
    TOKENIZE_SCRIPT,
    FaultInputs,
    Scenario,
    ScenarioResult,
    judged,
    last_line,
    read_outcome,
    run_script,
)
from fault_proxy import FaultPlan, FaultProxy, injected_since

# every 30th request of each method meets each fault in turn: 1 request in 10 faulted
PLAN = FaultPlan(every=30)
STAGES = ("select", "tokenize", "hub-folder", "status")
# A storage that is down must end the run in an error within this. With botocore's default
# ("legacy") retries, 5 attempts apart by up to 1, 2, 4 and 8 s, under s3fs's 5 tries, one call
# gives up within about 77 s; the selection's first check makes two calls.
DOWN_LIMIT_S = 240.0
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (a free port) while the block runs: its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def s3_environment(endpoint: str) -> Iterator[dict[str, str]]:
    """This process's environment pointing boto and s3fs at ``endpoint`` while the block runs
    (restored after; s3fs's cached filesystems, which keep their endpoint, are dropped)."""
    import s3fs

    saved = dict(os.environ)
    os.environ.update(CREDENTIALS, AWS_ENDPOINT_URL=endpoint)
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        yield dict(os.environ)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        s3fs.S3FileSystem.clear_instance_cache()


def new_bucket(endpoint: str) -> str:
    """Create a bucket of a fresh name on the server at ``endpoint``; its name."""
    import boto3

    name = f"faults-{uuid.uuid4().hex[:12]}"
    with s3_environment(endpoint):
        boto3.client("s3").create_bucket(Bucket=name)
    return name


def cli(*args: str, env: Mapping[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    """``ai-filters ARGS`` run to its end in the environment ``env``."""
    command = [sys.executable, "-m", "ai_filters.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=dict(env), timeout=timeout)


def run_stages(
    url: str, hub: Path, inputs: FaultInputs, proxy: FaultProxy, env: dict
) -> tuple[str, dict]:
    """Every stage on the folder ``url`` through ``proxy``: ``(failure or "", injected per
    stage)``; stops at the first stage that fails."""
    runs = {
        "select": lambda: run_script(SELECT_SCRIPT, url, inputs.select_args, env),
        "tokenize": lambda: run_script(TOKENIZE_SCRIPT, url, inputs.tokenize_args, env),
        "hub-folder": lambda: cli("hub-folder", url, "--hub-dir", str(hub), env=env),
        "status": lambda: cli("status", url, env=env),
    }
    injected = {}
    for stage in STAGES:
        before = proxy.snapshot()
        result = runs[stage]()
        injected[stage] = injected_since(before, proxy.snapshot())
        if result.returncode != 0:
            return f"{stage} failed: {last_line(result)}", injected
        if stage == "status" and result.stdout != inputs_status(inputs):
            return "status differs from the undisturbed run's", injected
    return "", injected


def inputs_status(inputs: FaultInputs) -> str:
    """``ai-filters status`` of the undisturbed run's folder (every stage done, its counts)."""
    result = cli("status", str(inputs.root), env=os.environ)
    if result.returncode != 0:
        raise RuntimeError(f"status of the undisturbed run failed: {last_line(result)}")
    return result.stdout


def hub_ids(hub: Path) -> list[str]:
    """Every id of the Hub folder's ``data/`` parquet files, one per row."""
    files = sorted((hub / "data").rglob("*.parquet"))
    return [str(i) for path in files for i in pq.read_table(path, columns=["id"])["id"].to_pylist()]


def _describe(injected: dict[str, dict[str, dict[str, int]]]) -> str:
    parts = []
    for stage, table in injected.items():
        faults = ", ".join(
            f"{method} {fault} {n}"
            for method, row in table.items()
            for fault, n in row.items()
            if fault != "requests"
        )
        requests = sum(row["requests"] for row in table.values())
        parts.append(f"{stage}: {requests} requests ({faults or 'no fault'})")
    return "; ".join(parts)


def storage_faults(work: Path, inputs: FaultInputs, plan: FaultPlan = PLAN) -> ScenarioResult:
    """Every stage through a proxy that injects ``plan``'s faults; compared with the
    undisturbed run, read back from the server directly. ``WORK/injected.json``: the faults
    injected per stage."""
    started = time.monotonic()
    name = "object storage: 503 SlowDown and resets"
    injected_words = (
        f"of every {plan.every} requests of each method (GET, HEAD, PUT, POST): one answered "
        "503 SlowDown, one reset before its answer, one reset halfway through its answer"
    )
    with s3_server() as endpoint:
        url = f"s3://{new_bucket(endpoint)}/run"
        with FaultProxy(endpoint, plan) as proxy, s3_environment(proxy.url) as env:
            failure, injected = run_stages(url, work / "hub", inputs, proxy, env)
        (work / "injected.json").write_text(json.dumps(injected, indent=1))
        detail = "; ".join(part for part in (failure, _describe(injected)) if part)
        with s3_environment(endpoint):
            result = judged(name, injected_words, inputs.tokenized, url, detail, started)
            selected = sorted(read_outcome(url).ids["selected"])
    if failure:
        result.survived = False
    elif sorted(hub_ids(work / "hub")) != selected:
        result.survived = False
        result.detail += "; the Hub folder's ids are not the selected ids"
    return result


def storage_down(work: Path, inputs: FaultInputs, fault: str = "slowdown") -> ScenarioResult:
    """The selection against a storage that meets every request with ``fault`` (``slowdown``:
    503 SlowDown; ``reset``: every connection reset): it must end in one line that says the
    storage is busy or down, within ``DOWN_LIMIT_S`` (a retry budget, not a hang)."""
    started = time.monotonic()
    with s3_server() as endpoint:
        url = f"s3://{new_bucket(endpoint)}/run"
        with FaultProxy(endpoint, FaultPlan(always=fault)) as proxy:
            with s3_environment(proxy.url) as env:
                try:
                    run = run_script(SELECT_SCRIPT, url, inputs.select_args, env, DOWN_LIMIT_S)
                except subprocess.TimeoutExpired:
                    run = None
            requests = sum(proxy.requests.values())
    seconds = time.monotonic() - started
    if run is None:
        detail, ended = f"still running after {DOWN_LIMIT_S:.0f} s and {requests} requests", False
    else:
        line = last_line(run)
        errors = [row for row in run.stderr.splitlines() if "error" in row.lower()]
        ended = run.returncode != 0 and "try again later" in line and len(errors) == 1
        detail = f"exit {run.returncode} after {seconds:.0f} s and {requests} requests: {line}"
        if not ended:
            detail += f"; stderr ends: {run.stderr[-1500:]}"
    return ScenarioResult(
        DOWN_SCENARIOS[fault],
        f"every request answered {DOWN_FAULTS[fault]}",
        survived=ended,
        documents_lost=0,
        duplicated_ids=0,
        detail=detail,
        seconds=round(seconds, 1),
    )


DOWN_FAULTS = {"slowdown": "503 SlowDown", "reset": "by a connection reset"}
DOWN_SCENARIOS = {
    "slowdown": "object storage: down (every request 503 SlowDown)",
    "reset": "object storage: unreachable (every connection reset)",
}


SCENARIOS: dict[str, Scenario] = {
    "object storage: 503 SlowDown and resets": storage_faults,
    **{
        name: functools.partial(storage_down, fault=fault) for fault, name in DOWN_SCENARIOS.items()
    },
}

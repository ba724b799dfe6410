"""Object storage faults: every stage survives 503 SlowDown and reset connections to the same
result as an undisturbed run; a storage that is down ends in one line, in bounded time. And the
proxy itself injects what it says."""

from __future__ import annotations

import json

import pytest
from fault_object_storage import DOWN_LIMIT_S, SCENARIOS, s3_environment, s3_server
from fault_proxy import FaultPlan, FaultProxy

READS, WRITES = ("GET", "HEAD"), ("PUT", "POST")


def faults_met(table: dict[str, dict[str, int]], methods: tuple[str, ...], fault: str) -> int:
    return sum(table.get(method, {}).get(fault, 0) for method in methods)


@pytest.mark.slow
def test_every_stage_survives_slowdowns_and_resets(fault_inputs, tmp_path):
    result = SCENARIOS["object storage: 503 SlowDown and resets"](tmp_path, fault_inputs)
    assert result.survived, result.detail
    assert result.documents_lost == 0 and result.duplicated_ids == 0
    injected = json.loads((tmp_path / "injected.json").read_text())
    assert list(injected) == ["select", "tokenize", "hub-folder", "status"]
    for stage, table in injected.items():  # every stage met faults
        assert sum(n for row in table.values() for k, n in row.items() if k != "requests"), stage
    for methods in (READS, WRITES):  # 503s and both resets, on reads and on writes
        for fault in ("slowdown", "reset", "reset_mid"):
            assert sum(faults_met(t, methods, fault) for t in injected.values()) > 0, (
                methods,
                fault,
            )
    assert sum(table.get("POST", {}).get("requests", 0) for table in injected.values()) > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "object storage: down (every request 503 SlowDown)",
        "object storage: unreachable (every connection reset)",
    ],
)
def test_a_storage_that_is_down_ends_in_one_line(fault_inputs, tmp_path, name):
    result = SCENARIOS[name](tmp_path, fault_inputs)
    assert result.survived, result.detail
    assert "error: output folder s3://" in result.detail and "try again later" in result.detail
    assert result.seconds < DOWN_LIMIT_S


def test_the_proxy_injects_what_it_says():
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

    plan = FaultPlan(every=6)
    assert plan.offsets() == {2: "slowdown", 4: "reset", 0: "reset_mid"}
    once = Config(retries={"total_max_attempts": 1})  # no retry: see every fault
    with s3_server() as endpoint, FaultProxy(endpoint, plan) as proxy:
        with s3_environment(endpoint):
            boto3.client("s3").create_bucket(Bucket="proxy-test")
        with s3_environment(proxy.url):
            client = boto3.client("s3", config=once)
            seen = []
            for n in range(1, 7):
                try:
                    client.put_object(Bucket="proxy-test", Key=f"k{n}", Body=b"x" * n)
                    seen.append("ok")
                except ClientError as error:
                    seen.append(error.response["Error"]["Code"])
                except (ConnectionClosedError, EndpointConnectionError):
                    seen.append("reset")
            assert seen == ["ok", "SlowDown", "ok", "reset", "ok", "reset"]
            assert proxy.snapshot() == {
                "PUT": {"requests": 6, "reset": 1, "reset_mid": 1, "slowdown": 1}
            }
        with s3_environment(endpoint):  # written: what went through, and the reset_mid write
            keys = boto3.client("s3").list_objects_v2(Bucket="proxy-test")["Contents"]
            assert sorted(o["Key"] for o in keys) == ["k1", "k3", "k5", "k6"]


def test_multipart_uploads_survive_the_proxy_whole():
    """Outputs over s3fs's block size are multipart uploads (POST to start and complete, a PUT
    per part), as datatrove's writers make them through s3fs: whatever the proxy does to these
    requests, each object reads back whole from the server."""
    import s3fs

    payloads = [bytes([n]) * (5 * 2**20) + b"end" for n in range(3)]
    with s3_server() as endpoint, FaultProxy(endpoint, FaultPlan(every=6)) as proxy:
        with s3_environment(endpoint):
            s3fs.S3FileSystem().mkdir("multipart-test")
        with s3_environment(proxy.url):
            fs = s3fs.S3FileSystem()
            for n, payload in enumerate(payloads):
                with fs.open(f"multipart-test/part{n}", "wb", block_size=5 * 2**20) as file:
                    file.write(payload)
        posts = proxy.snapshot()["POST"]
        with s3_environment(endpoint):
            fs = s3fs.S3FileSystem()
            assert [fs.cat(f"multipart-test/part{n}") for n in range(3)] == payloads
    assert posts["slowdown"] and posts["reset"] and posts["reset_mid"], posts

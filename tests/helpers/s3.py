"""A local S3 server for the tests that write to object storage.

moto's server runs on 127.0.0.1 on a free port; the environment points boto and s3fs at it
while the context is open. fsspec caches filesystem instances (s3fs's and datatrove's
DataFolder) by their arguments, not by the environment, so an instance made against an earlier
server would keep its endpoint: both caches are cleared when the server starts and stops.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def clear_filesystem_caches() -> None:
    """Forget every cached s3fs filesystem and datatrove DataFolder."""
    import s3fs
    from datatrove.io import DataFolder

    s3fs.S3FileSystem.clear_instance_cache()
    DataFolder.clear_instance_cache()


@contextmanager
def local_s3(*buckets: str, test_keys: bool = True) -> Iterator[dict[str, str]]:
    """A moto S3 server holding the empty ``buckets``; yields the environment it set
    (``AWS_ENDPOINT_URL``, the region and, with ``test_keys``, dummy credentials; without, the
    credentials already in the environment sign the requests)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_DEFAULT_REGION": "us-east-1"}
    if test_keys:
        env |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            clear_filesystem_caches()
            import boto3

            client = boto3.client("s3")
            for bucket in buckets:
                client.create_bucket(Bucket=bucket)
            yield env
    finally:
        clear_filesystem_caches()
        server.stop()

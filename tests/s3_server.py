"""An S3-compatible server on localhost for the tests (moto's server mode,
a real HTTP endpoint that boto3 and lsst-resources talk to as to any S3
store), and the environment that points lsst-resources at it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import boto3
import pytest

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "cutout-test-key",
    "AWS_SECRET_ACCESS_KEY": "cutout-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_CONFIG_FILE": os.devnull,
}


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """Run an S3 server on a free localhost port; yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """Endpoint URL of a local S3 server, running for the test module."""
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture()
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket on the local S3 server; the environment (inherited by
    subprocesses) points lsst-resources at the server.  Yields the bucket
    name.
    """
    from lsst.resources.s3utils import clean_test_environment_for_s3

    with clean_test_environment_for_s3():
        for name, value in S3_ENV.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("S3_ENDPOINT_URL", s3_endpoint)
        client = boto3.client("s3", endpoint_url=s3_endpoint)
        bucket = f"cutouts-{os.getpid()}-{len(client.list_buckets()['Buckets'])}"
        client.create_bucket(Bucket=bucket)
        yield bucket


def s3_keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    """Keys of the objects of a bucket under ``prefix``."""
    client = boto3.client("s3", endpoint_url=endpoint)
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return sorted(keys)


def s3_get(endpoint: str, bucket: str, key: str) -> bytes:
    """Content of one object."""
    client = boto3.client("s3", endpoint_url=endpoint)
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()

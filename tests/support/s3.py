"""S3 fixtures: moto's standalone server on an ephemeral port, so boto3 speaks real HTTP to it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

# Dummy credentials and a region: boto3 must never find (or use) real ones during tests.
_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    """Dummy AWS credentials and region in the environment for the whole session."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in _AWS_ENV.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def s3_server(aws_env: None) -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 and an ephemeral port; yields its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()  # returns once the socket is bound and the server is about to serve
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: str) -> Iterator[tuple[str, str]]:
    """A fresh, uniquely named, empty bucket; yields (endpoint_url, bucket)."""
    bucket = f"test-{uuid.uuid4().hex[:20]}"
    client = boto3.client("s3", endpoint_url=s3_server)
    try:
        client.create_bucket(Bucket=bucket)
        yield s3_server, bucket
    finally:
        client.close()

"""A real S3-compatible server for the object-storage tests: moto in server mode, a subprocess on 127.0.0.1.

moto's stock server is threaded and checks a PUT's If-None-Match / If-Match precondition and stores
the object without a lock, so two racing conditional PUTs could both succeed there (real S3 decides
them atomically). The server here runs moto's own WSGI app single-threaded, which makes every
request atomic, as S3 is, so the race tests exercise parity and not a test-server artefact.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.server.conftest import model_env  # noqa: F401 (a packaged model for the serving test)

_SERVER = """
import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

run_simple("127.0.0.1", int(sys.argv[1]), DomainDispatcherApplication(create_backend_app), threaded=False,
           request_handler=MotoRequestHandler)
"""

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3Server:
    """The running server: its endpoint and a boto3 client for test-side checks."""

    endpoint: str
    process: subprocess.Popen[bytes]

    def client(self) -> object:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, **_boto_credentials())

    def bucket(self) -> str:
        """Create a fresh bucket and return its name."""
        name = f"t-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name

    def stop(self) -> None:
        """Kill the server (to test what happens when S3 is unreachable)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server() -> S3Server:
    """Start moto on a free port and wait until it answers."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    server = S3Server(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, "the S3 server exited at start"
        try:
            server.client().list_buckets()  # type: ignore[attr-defined]
            return server
        except Exception:
            assert time.monotonic() < deadline, "the S3 server did not start"
            time.sleep(0.1)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3 server for the session; clients find it through the standard AWS environment variables."""
    server = start_server()
    saved = {k: os.environ.get(k) for k in [*CREDENTIALS, "AWS_ENDPOINT_URL_S3"]}
    os.environ.update(CREDENTIALS)
    os.environ["AWS_ENDPOINT_URL_S3"] = server.endpoint
    try:
        yield server
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_url(s3_server: S3Server) -> str:
    """``s3://<fresh bucket>/prefix`` for one test."""
    return f"s3://{s3_server.bucket()}/team/models"

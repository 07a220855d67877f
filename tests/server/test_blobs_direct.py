"""`--artifacts direct` with an S3 artifact store (moto's server mode): a loose blob's GET
answers 307 to a pre-signed S3 URL, which the client follows without the server's token
and verifies; packed blobs and uploads still go through the server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import httpx
import pytest

from fixtures.blob_server import BlobServer, blob_server
from loopline.errors import CorruptedData
from loopline.store.artifacts import ArtifactStore

# module-scoped servers: one test process runs the module
pytestmark = pytest.mark.xdist_group("test_blobs_direct")


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> str:
    import boto3

    name = f"loopline-direct-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str, bucket: str
) -> Iterator[BlobServer]:
    s3 = ArtifactStore(f"s3://{bucket}/artifacts", s3_endpoint_url=s3_endpoint)
    folder = tmp_path_factory.mktemp("direct")
    with blob_server(folder, artifacts=s3, artifacts_mode="direct") as running:
        yield running


@pytest.fixture
def store(server: BlobServer) -> Iterator[ArtifactStore]:
    opened = ArtifactStore(server.url, token="llt_not-for-s3")
    yield opened
    opened.close()


def test_a_loose_blob_is_served_from_s3_by_redirect(
    store: ArtifactStore, server: BlobServer, tmp_path: Path
) -> None:
    data = os.urandom(3 << 20)
    blob = store.put_bytes(data)
    start = len(server.traffic.requests)
    assert store.get_bytes(blob.hash) == data
    store.get_file(blob.hash, tmp_path / "model.bin")
    assert (tmp_path / "model.bin").read_bytes() == data
    gets = [r for r in server.traffic.since(start) if r[0] == "GET"]
    assert [status for *_, status in gets] == [307, 307]

    answer = httpx.get(f"{server.url}/api/v1/blobs/{blob.hash}")
    assert answer.status_code == 307 and answer.headers["etag"] == f'"{blob.hash}"'
    location = answer.headers["location"]
    assert "Signature" in location and "llt_" not in location
    assert httpx.get(location, headers={"Range": "bytes=5-9"}).content == data[5:10]


def test_a_blob_tampered_with_in_s3_is_detected_by_the_client(
    store: ArtifactStore, server: BlobServer, s3_client: Any, bucket: str
) -> None:
    blob = store.put_bytes(b"weights " + os.urandom(64))
    key = f"artifacts/blobs/{blob.hash[:2]}/{blob.hash[2:]}"
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"tampered " + os.urandom(64))
    with pytest.raises(CorruptedData, match=blob.hash):
        store.get_bytes(blob.hash)


def test_packed_blobs_still_come_through_the_server(
    store: ArtifactStore, server: BlobServer, tmp_path: Path
) -> None:
    contents = [os.urandom(2000 + n) for n in range(20)]
    sources = []
    for n, data in enumerate(contents):
        sources.append(tmp_path / f"f{n}")
        sources[-1].write_bytes(data)
    stored = store.put_files(sources)
    assert [f.hash for f in stored] == [blake3.blake3(d).hexdigest() for d in contents]
    start = len(server.traffic.requests)
    assert store.get_bytes(stored[0].hash) == contents[0]  # packed: proxied, 200
    targets = [tmp_path / "out" / f"{n}" for n in range(len(stored))]
    store.get_files(list(zip(stored, targets, strict=True)))
    assert [t.read_bytes() for t in targets] == contents
    statuses = [(r[0], r[1].rpartition("/")[2][:5], r[3]) for r in server.traffic.since(start)]
    assert statuses == [("GET", stored[0].hash[:5], 200), ("POST", "fetch", 200)]

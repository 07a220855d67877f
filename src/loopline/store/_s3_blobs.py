"""The S3 back-end, through s3fs: loose blobs and pack files under one bucket prefix.

An object becomes visible only when its PUT or multipart upload completes, so content is
hashed first and uploaded straight to its final key; a killed multipart upload stays
invisible until `clean_temp` (or a bucket lifecycle rule) aborts it. Content reused
instead of stored again is touched (copied onto itself), so that a concurrent `gc`
keeps it.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from loopline.errors import Conflict, InvalidInput, MissingExtra, NotFound
from loopline.store._backend import Blob, PackGone, PackListing, StoredObject, blob_name
from loopline.store._buffers import BufferPool
from loopline.store._hashing import ensure_unchanged, hash_stream, open_source
from loopline.store.paths import validate_logical_path

logger = logging.getLogger(__name__)

_READ_AHEAD = 8 << 20  # per ranged GET when downloading a loose blob
_PART = 16 << 20  # multipart upload part size for packs (S3 wants >= 5 MiB)
_HEAD_MAX = 4  # up to this many loose-blob lookups, HEAD each; beyond, list blobs/ once
_READ_BATCH = 64 << 20  # pack bytes fetched by one round of concurrent ranged GETs
_UPLOADS = "uploads/"  # names of unfinished multipart uploads (see list_objects)


class S3Blobs:
    """Blobs under an S3 prefix, through s3fs: hash first, then upload to the final key."""

    unavailable_hint = "check the bucket name, the endpoint and the AWS credentials"
    span_gap = 1 << 20  # a request's latency costs more than fetching ~1 MiB more
    span_max = 32 << 20

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None) -> None:
        if not bucket:
            raise InvalidInput("an s3:// artifact store URI needs a bucket: s3://bucket/prefix")
        try:
            import s3fs
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError as exc:
            raise MissingExtra("s3:// artifact stores", "s3") from exc
        prefix = validate_logical_path(prefix) if prefix else ""
        self._bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""
        self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.errors: tuple[type[BaseException], ...] = (OSError, BotoCoreError, ClientError)
        client_kwargs = {"endpoint_url": endpoint_url} if endpoint_url else {}
        # No listings cache: another writer may add a blob at any moment.
        self._fs: Any = s3fs.S3FileSystem(client_kwargs=client_kwargs, use_listings_cache=False)

    def location(self, digest: str) -> str:
        return f"s3://{self._key(digest)}"

    def exists(self, digest: str) -> bool:
        return self._stored_size(digest) is not None

    def loose_lookup(self, expected: int) -> Callable[[str], bool]:
        if expected <= _HEAD_MAX:
            return self.exists
        listed: set[str] = set()

        def lookup(digest: str) -> bool:
            if not listed:  # list lazily: a call that finds nothing new never pays for it
                root = f"{self._bucket}/{self._prefix}blobs/"
                try:
                    keys = self._fs.find(root)
                except FileNotFoundError:
                    keys = []
                listed.update(key.removeprefix(root).replace("/", "") for key in keys)
                listed.add("")  # marks the listing as done even when it is empty
            return digest in listed

        return lookup

    def put_file(self, source: Path) -> Blob:
        with open_source(source) as (file, before):
            digest = hash_stream(file)
            stored = self._stored_size(digest) == before.st_size
            if not (stored and self.touch(blob_name(digest))):
                self._fs.put_file(str(source), self._key(digest))
                try:
                    ensure_unchanged(source, file.fileno(), before)
                except Conflict:
                    self._fs.rm_file(self._key(digest))
                    raise
                logger.debug("uploaded blob %s to %s", digest, self.uri)
        return Blob(digest, before.st_size)

    def put_bytes(self, digest: str, data: bytes) -> None:
        if self._stored_size(digest) != len(data) or not self.touch(blob_name(digest)):
            self._fs.pipe_file(self._key(digest), data)

    @contextlib.contextmanager
    def open_blob(self, digest: str) -> Iterator[BinaryIO]:
        try:
            file = self._fs.open(self._key(digest), "rb", block_size=_READ_AHEAD)
        except FileNotFoundError as exc:
            raise NotFound(f"no blob {digest} in artifact store {self.uri}") from exc
        with file:
            yield file

    def list_objects(self, folder: str) -> list[StoredObject]:
        if folder == "uploads":
            return self._list_uploads()
        root = f"{self._bucket}/{self._prefix}"
        try:
            items = self._fs.find(root + folder, detail=True)
        except FileNotFoundError:
            return []
        return [
            StoredObject(key.removeprefix(root), int(info["size"]), _mtime(info))
            for key, info in sorted(items.items())
            if info.get("type") == "file"
        ]

    def touch(self, name: str) -> bool:
        # A copy onto itself with new metadata gives the object a new LastModified.
        key = f"{self._prefix}{name}"
        try:
            self._fs.call_s3(
                "copy_object",
                Bucket=self._bucket,
                Key=key,
                CopySource={"Bucket": self._bucket, "Key": key},
                MetadataDirective="REPLACE",
                Metadata={"loopline-touched": datetime.now(UTC).isoformat()},
            )
        except FileNotFoundError:
            return False
        except OSError as exc:  # e.g. an object over 5 GB cannot be copied in one request
            logger.warning("could not touch s3://%s/%s: %s", self._bucket, key, exc)
        return True

    def remove(self, name: str, not_after: float | None = None) -> bool:
        if name.startswith(_UPLOADS):
            key, _, upload_id = name.removeprefix(_UPLOADS).rpartition("#")
            try:
                self._fs.call_s3(
                    "abort_multipart_upload",
                    Bucket=self._bucket,
                    Key=f"{self._prefix}{key}",
                    UploadId=upload_id,
                )
            except FileNotFoundError:  # completed or aborted meanwhile
                return False
            return True
        path = f"{self._bucket}/{self._prefix}{name}"
        try:
            if not_after is not None and _mtime(self._fs.info(path)) > not_after:
                return False
            self._fs.rm_file(path)
        except FileNotFoundError:
            return False
        return True

    def move(self, name: str, new_name: str) -> None:
        root = f"{self._bucket}/{self._prefix}"
        self._fs.mv(root + name, root + new_name)

    def list_packs(self) -> PackListing:
        packs: dict[str, int] = {}
        indexes: set[str] = set()
        for item in self._list_packs():
            stem, _, suffix = item["name"].rpartition("/")[2].rpartition(".")
            if suffix == "idx":
                indexes.add(stem)
            elif suffix == "pack":
                packs[stem] = int(item["size"])
        return PackListing(packs, frozenset(indexes))

    def read_indexes(self, pack_ids: Sequence[str]) -> dict[str, bytes]:
        if not pack_ids:
            return {}
        paths = {self._pack_key(pack_id, "idx"): pack_id for pack_id in pack_ids}
        found = {}
        for path, data in self._fs.cat(list(paths), on_error="return").items():
            if isinstance(data, FileNotFoundError):
                continue  # deleted meanwhile
            if isinstance(data, BaseException):
                raise data
            found[paths[path.removeprefix("s3://")]] = bytes(data)
        return found

    def write_index(self, pack_id: str, data: bytes) -> None:
        self._fs.pipe_file(self._pack_key(pack_id, "idx"), data)

    def new_pack(self) -> S3PackSink:
        pack_id = uuid.uuid4().hex
        return S3PackSink(self._fs, self._bucket, self._pack_key(pack_id, "pack"), pack_id)

    def read_spans(
        self, pack_id: str, spans: Sequence[tuple[int, int]], buffers: BufferPool | None = None
    ) -> Iterator[bytes | memoryview]:
        path = self._pack_key(pack_id, "pack")
        batch: list[tuple[int, int]] = []
        for span in [*spans, None]:
            if span is not None and (not batch or _total(batch) + span[1] - span[0] <= _READ_BATCH):
                batch.append(span)
                continue
            if not batch:
                continue
            try:
                yield from self._fs.cat_ranges(
                    [path] * len(batch),
                    [start for start, _ in batch],
                    [end for _, end in batch],
                    on_error="raise",
                )
            except FileNotFoundError as exc:
                raise PackGone(f"pack s3://{path} listed in its index is gone") from exc
            batch = [span] if span is not None else []

    def pack_location(self, pack_id: str) -> str:
        return f"s3://{self._pack_key(pack_id, 'pack')}"

    def _list_packs(self) -> list[dict[str, Any]]:
        try:
            items: list[dict[str, Any]] = self._fs.ls(
                f"{self._bucket}/{self._prefix}packs", detail=True
            )
        except FileNotFoundError:
            return []
        return [item for item in items if item.get("type") == "file"]

    def _list_uploads(self) -> list[StoredObject]:
        """Unfinished multipart uploads under the prefix, as `uploads/<key>#<upload id>`."""
        params = {"Bucket": self._bucket, "Prefix": self._prefix}
        found = []
        while True:
            page = self._fs.call_s3("list_multipart_uploads", **params)
            for upload in page.get("Uploads", []):
                key = str(upload["Key"]).removeprefix(self._prefix)
                name = f"{_UPLOADS}{key}#{upload['UploadId']}"
                found.append(StoredObject(name, 0, upload["Initiated"].timestamp()))
            if not page.get("IsTruncated"):
                return found
            params["KeyMarker"] = page["NextKeyMarker"]
            params["UploadIdMarker"] = page["NextUploadIdMarker"]

    def presigned_url(self, digest: str, expires: int) -> str | None:
        """A pre-signed GET URL of a loose blob, valid `expires` seconds; None if the
        blob is not stored loose."""
        if self._stored_size(digest) is None:
            return None
        url: str = self._fs.url(self._key(digest), expires=expires)
        return url

    def _key(self, digest: str) -> str:
        return f"{self._bucket}/{self._prefix}blobs/{digest[:2]}/{digest[2:]}"

    def _pack_key(self, pack_id: str, suffix: str) -> str:
        return f"{self._bucket}/{self._prefix}packs/{pack_id}.{suffix}"

    def _stored_size(self, digest: str) -> int | None:
        try:
            return int(self._fs.info(self._key(digest))["size"])
        except FileNotFoundError:
            return None


class S3PackSink:
    """A pack uploaded to its final key: one PUT, or a multipart upload for large packs.

    Until the upload completes the key does not exist; `abort` cancels the upload.
    """

    def __init__(self, fs: Any, bucket: str, path: str, pack_id: str) -> None:
        self.pack_id = pack_id
        self._fs = fs
        self._target = {"Bucket": bucket, "Key": path.removeprefix(f"{bucket}/")}
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def write(self, buffers: Sequence[bytes | memoryview]) -> None:
        for buffer in buffers:
            self._buffer += buffer
        while len(self._buffer) >= _PART:
            self._upload_part(bytes(self._buffer[:_PART]))
            del self._buffer[:_PART]

    def commit(self) -> None:
        if self._upload_id is None:
            self._fs.call_s3("put_object", Body=bytes(self._buffer), **self._target)
            return
        if self._buffer:
            self._upload_part(bytes(self._buffer))
        self._fs.call_s3(
            "complete_multipart_upload",
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
            **self._target,
        )

    def abort(self) -> None:
        self._buffer = bytearray()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            with contextlib.suppress(FileNotFoundError):
                self._fs.call_s3("abort_multipart_upload", UploadId=upload_id, **self._target)

    def _upload_part(self, body: bytes) -> None:
        if self._upload_id is None:
            created = self._fs.call_s3("create_multipart_upload", **self._target)
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        done = self._fs.call_s3(
            "upload_part", UploadId=self._upload_id, PartNumber=number, Body=body, **self._target
        )
        self._parts.append({"PartNumber": number, "ETag": done["ETag"]})


def _total(spans: list[tuple[int, int]]) -> int:
    return sum(end - start for start, end in spans)


def _mtime(info: dict[str, Any]) -> float:
    """An object's LastModified, in seconds since the epoch."""
    moment = info["LastModified"]
    return float(moment.timestamp()) if isinstance(moment, datetime) else float(moment)

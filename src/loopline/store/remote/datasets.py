"""`DatasetStore` over HTTP: the same methods, answered by the server's
/api/v1/datasets and /api/v1/dataset-versions routes (server/api/datasets.py).

Names are checked here by the store's own rule before they go into a URL, so a bad one
raises the InvalidInput a local store would, without a round trip; the server checks
them again. Adding a version is retried after a dropped connection: a repeat of the same
manifest adds nothing (it then reads `created=False`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopline.store.dataset_records import (
    Dataset,
    DatasetVersion,
    ValidationRecord,
    check_dataset_name,
)
from loopline.store.remote._codec import decode
from loopline.store.remote._paths import segment

if TYPE_CHECKING:
    from loopline.store.remote._session import RemoteSession


class RemoteDatasetStore:
    """Datasets and their versions through a loopline server."""

    def __init__(self, session: RemoteSession) -> None:
        self._session = session

    def add_version(
        self,
        name: str,
        *,
        manifest_hash: str,
        author: str,
        file_count: int,
        total_size: int,
        message: str | None = None,
        row_count: int | None = None,
        schema_json: str | None = None,
        profile_hash: str | None = None,
        source: str | None = None,
    ) -> tuple[DatasetVersion, bool]:
        """Record a new version unless the latest one has the same manifest."""
        answer = self._session.call(
            "POST",
            f"{_dataset(name)}/versions",
            body={
                "manifest_hash": manifest_hash,
                "author": author,
                "file_count": file_count,
                "total_size": total_size,
                "message": message,
                "row_count": row_count,
                "schema_json": schema_json,
                "profile_hash": profile_hash,
                "source": source,
            },
            idempotent=True,
        )
        return decode(DatasetVersion, answer["version"]), decode(bool, answer["created"])

    def list_datasets(self) -> list[Dataset]:
        result: list[Dataset] = decode(list[Dataset], self._session.call("GET", "/datasets"))
        return result

    def list_versions(self, name: str) -> list[DatasetVersion]:
        """Every version of `name`, newest first."""
        return _versions(self._session.call("GET", f"{_dataset(name)}/versions"))

    def get_version(self, name: str, version: int) -> DatasetVersion:
        return _version(self._session.call("GET", f"{_dataset(name)}/versions/{int(version)}"))

    def latest_version(self, name: str) -> DatasetVersion:
        return _version(self._session.call("GET", f"{_dataset(name)}/versions/latest"))

    def find_by_hash_prefix(self, name: str, prefix: str) -> DatasetVersion:
        """The version of `name` whose manifest hash starts with `prefix` (>= 4 hex)."""
        answer = self._session.call(
            "GET", f"{_dataset(name)}/versions/by-hash", params={"prefix": prefix}
        )
        return _version(answer)

    def get_version_by_id(self, version_id: str) -> DatasetVersion:
        return _version(self._session.call("GET", f"/dataset-versions/{segment(version_id)}"))

    def versions_with_manifest(self, manifest_hash: str) -> list[DatasetVersion]:
        answer = self._session.call(
            "GET", "/dataset-versions", params={"manifest_hash": manifest_hash}
        )
        return _versions(answer)

    def add_validation(
        self,
        version_id: str,
        *,
        suite_name: str,
        suite_hash: str,
        success: bool,
        failed: int,
        result_hash: str,
    ) -> ValidationRecord:
        answer = self._session.call(
            "POST",
            f"/dataset-versions/{segment(version_id)}/validations",
            body={
                "suite_name": suite_name,
                "suite_hash": suite_hash,
                "success": success,
                "failed": failed,
                "result_hash": result_hash,
            },
        )
        record: ValidationRecord = decode(ValidationRecord, answer)
        return record

    def list_validations(self, version_id: str) -> list[ValidationRecord]:
        answer = self._session.call("GET", f"/dataset-versions/{segment(version_id)}/validations")
        result: list[ValidationRecord] = decode(list[ValidationRecord], answer)
        return result


def _dataset(name: str) -> str:
    return f"/datasets/{segment(check_dataset_name(name))}"


def _version(data: object) -> DatasetVersion:
    version: DatasetVersion = decode(DatasetVersion, data)
    return version


def _versions(data: object) -> list[DatasetVersion]:
    versions: list[DatasetVersion] = decode(list[DatasetVersion], data)
    return versions

"""Datasets, their versions and validation results over HTTP: the routes the remote
`DatasetStore` (store/remote/datasets.py) calls, one per store method.

A version's manifest and profile are blobs (the blob routes move them); these routes
carry the records that name them. Reads need READER; adding versions and validation
results WRITER, recorded under the authenticated user.
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from loopline.server._answers import answer
from loopline.server._permissions import Caller, Role, requires
from loopline.server.api._bodies import Body, checked, checked_id
from loopline.server.app import stores_of
from loopline.store.dataset_records import check_dataset_name
from loopline.store.datasets import DatasetStore

router = APIRouter(tags=["datasets"])


class NewDatasetVersion(Body):
    manifest_hash: str
    author: str | None = None
    file_count: int
    total_size: int
    message: str | None = None
    row_count: int | None = None
    # the field is named schema_json in JSON (pydantic's BaseModel has a schema_json)
    table_schema: str | None = Field(default=None, alias="schema_json")
    profile_hash: str | None = None
    source: str | None = None


class NewValidation(Body):
    suite_name: str
    suite_hash: str
    success: bool
    failed: int
    result_hash: str


def _datasets(request: Request) -> DatasetStore:
    return stores_of(request).metadata.datasets


@router.get("/datasets")
def list_datasets(request: Request, _: Caller = requires(Role.READER)) -> Response:
    """Every dataset, by name, with its latest version number."""
    return answer(_datasets(request).list_datasets())


@router.post("/datasets/{name}/versions")
def add_version(
    request: Request, name: str, body: NewDatasetVersion, caller: Caller = requires(Role.WRITER)
) -> Response:
    """Record a version unless the latest one has this manifest: {"version", "created"}."""
    version, created = _datasets(request).add_version(
        checked(check_dataset_name, name),
        manifest_hash=body.manifest_hash,
        author=caller.acting_as(body.author),
        file_count=body.file_count,
        total_size=body.total_size,
        message=body.message,
        row_count=body.row_count,
        schema_json=body.table_schema,
        profile_hash=body.profile_hash,
        source=body.source,
    )
    return answer({"version": version, "created": created}, 201 if created else 200)


@router.get("/datasets/{name}/versions")
def list_versions(request: Request, name: str, _: Caller = requires(Role.READER)) -> Response:
    """Every version of the dataset, newest first."""
    return answer(_datasets(request).list_versions(checked(check_dataset_name, name)))


@router.get("/datasets/{name}/versions/latest")
def latest_version(request: Request, name: str, _: Caller = requires(Role.READER)) -> Response:
    return answer(_datasets(request).latest_version(checked(check_dataset_name, name)))


@router.get("/datasets/{name}/versions/by-hash")
def find_by_hash_prefix(
    request: Request,
    name: str,
    prefix: str = Query(max_length=64),
    _: Caller = requires(Role.READER),
) -> Response:
    """The one version whose manifest hash starts with `prefix` (>= 4 hex digits)."""
    found = _datasets(request).find_by_hash_prefix(checked(check_dataset_name, name), prefix)
    return answer(found)


@router.get("/datasets/{name}/versions/{version}")
def get_version(
    request: Request, name: str, version: int, _: Caller = requires(Role.READER)
) -> Response:
    return answer(_datasets(request).get_version(checked(check_dataset_name, name), version))


@router.get("/dataset-versions")
def versions_with_manifest(
    request: Request,
    manifest_hash: str = Query(max_length=128),
    _: Caller = requires(Role.READER),
) -> Response:
    """Every version (of any dataset) whose manifest is `manifest_hash`."""
    return answer(_datasets(request).versions_with_manifest(manifest_hash))


@router.get("/dataset-versions/{version_id}")
def get_version_by_id(
    request: Request, version_id: str, _: Caller = requires(Role.READER)
) -> Response:
    found = _datasets(request).get_version_by_id(checked_id(version_id, "dataset version id"))
    return answer(found)


@router.post("/dataset-versions/{version_id}/validations")
def add_validation(
    request: Request,
    version_id: str,
    body: NewValidation,
    _: Caller = requires(Role.WRITER),
) -> Response:
    """Record the result of validating a version against a suite."""
    datasets = _datasets(request)
    datasets.get_version_by_id(checked_id(version_id, "dataset version id"))  # 404 first
    record = datasets.add_validation(
        version_id,
        suite_name=body.suite_name,
        suite_hash=body.suite_hash,
        success=body.success,
        failed=body.failed,
        result_hash=body.result_hash,
    )
    return answer(record, 201)


@router.get("/dataset-versions/{version_id}/validations")
def list_validations(
    request: Request, version_id: str, _: Caller = requires(Role.READER)
) -> Response:
    """A version's validation results, newest first."""
    found = _datasets(request).list_validations(checked_id(version_id, "dataset version id"))
    return answer(found)

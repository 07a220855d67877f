"""Every artifact digest the metadata store points at, and who points at it.

`fsck` checks that each of them is stored; `gc` keeps each of them (and what the
manifests among them list). So that a new table cannot be forgotten by both, every
column of the schema that holds a hash is named in `HASH_COLUMNS`, saying what its
digest addresses, and a test fails on a hash column named nowhere.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from loopline.store._schema import (
    dataset_versions,
    datasets,
    model_evaluations,
    model_versions,
    monitor_reports,
    prediction_log_files,
    prediction_log_sketches,
    registered_models,
    run_links,
    runs,
    validation_results,
)

if TYPE_CHECKING:
    from loopline.store.metadata import MetadataStore

BLOB = "blob"
DATASET_MANIFEST = "dataset manifest"  # a blob that lists more blobs (data/_manifest.py)
MODEL_PACKAGE = "model package"  # likewise (models/_packages.py)

# (table, column) -> what the digest in it addresses; None: a hash, but of no stored blob.
HASH_COLUMNS: dict[tuple[str, str], str | None] = {
    ("runs", "git_patch_hash"): BLOB,
    ("runs", "packages_hash"): BLOB,
    ("run_links", "ref"): BLOB,  # for kinds "artifact" and "dataframe"; others hold ids
    ("dataset_versions", "manifest_hash"): DATASET_MANIFEST,
    ("dataset_versions", "profile_hash"): BLOB,
    ("validation_results", "suite_hash"): BLOB,
    ("validation_results", "result_hash"): BLOB,
    ("model_versions", "package_hash"): MODEL_PACKAGE,
    ("model_versions", "card_hash"): BLOB,
    ("model_evaluations", "report_hash"): BLOB,
    ("model_evaluations", "html_hash"): BLOB,
    ("model_evaluations", "config_hash"): None,  # identifies an evaluation's settings
    ("api_tokens", "token_hash"): None,  # SHA-256 of a token's secret
    ("audit_events", "prev_hash"): None,  # the audit hash chain (store/_audit_chain.py)
    ("prediction_log_files", "blob_hash"): BLOB,
    ("prediction_log_sketches", "sketch_hash"): BLOB,
    ("monitor_reports", "report_hash"): BLOB,
    ("monitor_reports", "html_hash"): BLOB,
}


@dataclass(frozen=True)
class Reference:
    """A digest stored in the metadata: what it addresses (`holds`: BLOB,
    DATASET_MANIFEST or MODEL_PACKAGE) and a readable name of the row (`owner`)."""

    digest: str
    holds: str
    owner: str


def artifact_references(
    metadata: MetadataStore, *, without_runs: Collection[str] = ()
) -> list[Reference]:
    """Every digest in `HASH_COLUMNS`, leaving out the rows of the runs `without_runs`
    (those about to be purged)."""
    with metadata.db.read() as conn:
        return list(_all(conn, set(without_runs)))


def _all(conn: Connection, skip: set[str]) -> Iterator[Reference]:
    row: Any  # one name for the rows of several queries
    for row in conn.execute(select(runs.c.id, runs.c.git_patch_hash, runs.c.packages_hash)):
        if row.id in skip:
            continue
        if row.git_patch_hash:
            yield Reference(row.git_patch_hash, BLOB, f"run {row.id} code patch")
        if row.packages_hash:
            yield Reference(row.packages_hash, BLOB, f"run {row.id} package list")
    links = select(run_links.c.run_id, run_links.c.kind, run_links.c.name, run_links.c.ref).where(
        run_links.c.kind.in_(("artifact", "dataframe"))
    )
    for row in conn.execute(links):
        if row.run_id not in skip:
            what = "artifact" if row.kind == "artifact" else "input"
            yield Reference(row.ref, BLOB, f"run {row.run_id} {what} {row.name}")
    versions = select(
        datasets.c.name,
        dataset_versions.c.id,
        dataset_versions.c.version,
        dataset_versions.c.manifest_hash,
        dataset_versions.c.profile_hash,
    ).join(datasets, datasets.c.id == dataset_versions.c.dataset_id)
    names = {}
    for row in conn.execute(versions):
        names[row.id] = ref = f"dataset {row.name}@{row.version}"
        yield Reference(row.manifest_hash, DATASET_MANIFEST, f"{ref} manifest")
        if row.profile_hash:
            yield Reference(row.profile_hash, BLOB, f"{ref} profile")
    checks = select(
        validation_results.c.version_id,
        validation_results.c.suite_hash,
        validation_results.c.result_hash,
    )
    for row in conn.execute(checks):
        ref = names.get(row.version_id, f"dataset version {row.version_id}")
        yield Reference(row.suite_hash, BLOB, f"{ref} expectation suite")
        yield Reference(row.result_hash, BLOB, f"{ref} validation result")
    yield from _models(conn)
    logs = select(
        prediction_log_files.c.deployment,
        prediction_log_files.c.hour,
        prediction_log_files.c.blob_hash,
    )
    for row in conn.execute(logs):
        owner = f"prediction log of {row.deployment} at {row.hour:%Y-%m-%d %H}:00 UTC"
        yield Reference(row.blob_hash, BLOB, owner)
    sketches = select(
        prediction_log_files.c.deployment,
        prediction_log_files.c.hour,
        prediction_log_sketches.c.sketch_hash,
    ).join(prediction_log_files, prediction_log_files.c.id == prediction_log_sketches.c.file_id)
    for row in conn.execute(sketches):
        owner = (
            f"sketches of the prediction log of {row.deployment} at {row.hour:%Y-%m-%d %H}:00 UTC"
        )
        yield Reference(row.sketch_hash, BLOB, owner)
    reports = select(
        monitor_reports.c.id,
        monitor_reports.c.deployment,
        monitor_reports.c.report_hash,
        monitor_reports.c.html_hash,
    )
    for row in conn.execute(reports):
        owner = f"monitoring report {row.id} of {row.deployment}"
        yield Reference(row.report_hash, BLOB, owner)
        if row.html_hash:
            yield Reference(row.html_hash, BLOB, f"{owner} (HTML)")


def _models(conn: Connection) -> Iterator[Reference]:
    row: Any
    versions = select(
        registered_models.c.name,
        model_versions.c.id,
        model_versions.c.version,
        model_versions.c.package_hash,
        model_versions.c.card_hash,
    ).join(registered_models, registered_models.c.id == model_versions.c.model_id)
    names = {}
    for row in conn.execute(versions):
        names[row.id] = ref = f"model {row.name} v{row.version}"
        yield Reference(row.package_hash, MODEL_PACKAGE, f"{ref} package")
        if row.card_hash:
            yield Reference(row.card_hash, BLOB, f"{ref} card")
    reports = select(
        model_evaluations.c.id,
        model_evaluations.c.version_id,
        model_evaluations.c.report_hash,
        model_evaluations.c.html_hash,
    )
    for row in conn.execute(reports):
        ref = names.get(row.version_id, f"model version {row.version_id}")
        yield Reference(row.report_hash, BLOB, f"{ref} evaluation {row.id[:8]} report")
        yield Reference(row.html_hash, BLOB, f"{ref} evaluation {row.id[:8]} HTML report")


__all__ = [
    "BLOB",
    "DATASET_MANIFEST",
    "HASH_COLUMNS",
    "MODEL_PACKAGE",
    "Reference",
    "artifact_references",
]

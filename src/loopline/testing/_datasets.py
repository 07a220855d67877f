"""Conformance checks of the datasets store: versions numbered per dataset, an unchanged
manifest adding nothing, lookups by number, hash prefix and id, and validation results."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from loopline.errors import Conflict, InvalidInput, NotFound
from loopline.store import DatasetVersion, MetadataStore
from loopline.testing._common import Check, raises


def _add(
    store: MetadataStore, name: str, manifest: str, **kwargs: Any
) -> tuple[DatasetVersion, bool]:
    return store.datasets.add_version(
        name, manifest_hash=manifest, author="tester", file_count=1, total_size=8, **kwargs
    )


def check_dataset_versions_round_trip(store: MetadataStore) -> None:
    datasets = store.datasets
    first, created = _add(
        store,
        "credit",
        "a1" * 32,
        message="first cut, ünïcode",
        row_count=5,
        schema_json='{"income": "double"}',
        profile_hash="b2" * 32,
        source="s3://bucket/credit.csv",
    )
    assert created and first.version == 1 and first.ref == "credit@1"
    assert (first.dataset, first.manifest_hash, first.author) == ("credit", "a1" * 32, "tester")
    assert (first.message, first.row_count, first.profile_hash) == (
        "first cut, ünïcode",
        5,
        "b2" * 32,
    )
    assert (first.schema_json, first.source) == ('{"income": "double"}', "s3://bucket/credit.csv")
    assert (first.file_count, first.total_size) == (1, 8)
    assert first.created_at.tzinfo is not None
    assert datasets.get_version("credit", 1) == first
    assert datasets.get_version_by_id(first.id) == first
    assert datasets.versions_with_manifest("a1" * 32) == [first]

    again, created = _add(store, "credit", "a1" * 32)  # the latest manifest: no new version
    assert not created and again == first
    second, created = _add(store, "credit", "c3" * 32)
    assert created and second.version == 2 and second.message is None
    back, created = _add(store, "credit", "a1" * 32)  # an older manifest again is a new version
    assert created and back.version == 3
    assert [v.version for v in datasets.list_versions("credit")] == [3, 2, 1]
    assert datasets.latest_version("credit") == back
    assert [v.version for v in datasets.versions_with_manifest("a1" * 32)] in ([1, 3], [3, 1])


def check_dataset_lookups_and_not_found(store: MetadataStore) -> None:
    datasets = store.datasets
    one, _ = _add(store, "credit", "c0ffee" + "0" * 58)
    two, _ = _add(store, "credit", "c0ffee" + "1" * 58)
    assert datasets.find_by_hash_prefix("credit", "c0ffee0") == one
    assert datasets.find_by_hash_prefix("credit", "c0ffee1") == two
    raises(Conflict, lambda: datasets.find_by_hash_prefix("credit", "c0ffee"))
    raises(InvalidInput, lambda: datasets.find_by_hash_prefix("credit", "c0f"))
    raises(InvalidInput, lambda: datasets.find_by_hash_prefix("credit", "c0ffee%"))
    raises(NotFound, lambda: datasets.find_by_hash_prefix("credit", "dead"))
    missing = raises(NotFound, lambda: datasets.get_version("credit", 7))
    assert "latest is 2" in str(missing), str(missing)
    raises(NotFound, lambda: datasets.get_version("nope", 1))
    raises(NotFound, lambda: datasets.latest_version("nope"))
    raises(NotFound, lambda: datasets.list_versions("nope"))
    raises(NotFound, lambda: datasets.get_version_by_id("0" * 32))
    assert datasets.versions_with_manifest("f" * 64) == []
    for bad in ("", "../x", "a/b", ".hidden", "x" * 129, "credit\n"):
        raises(InvalidInput, partial(_add, store, bad, "ab" * 32))
        raises(InvalidInput, partial(datasets.get_version, bad, 1))


def check_datasets_are_listed_by_name(store: MetadataStore) -> None:
    assert store.datasets.list_datasets() == []
    _add(store, "zeta", "a1" * 32)
    _add(store, "alpha", "a1" * 32)  # the same content under two names: two datasets
    _add(store, "alpha", "b2" * 32)
    listed = store.datasets.list_datasets()
    assert [(d.name, d.latest_version) for d in listed] == [("alpha", 2), ("zeta", 1)]
    assert all(d.created_at.tzinfo is not None for d in listed)


def check_concurrent_dataset_adds(store: MetadataStore) -> None:
    """Concurrent adds of different content get consecutive numbers; of the same
    content, one version. (A writer that loses a number to another retries, up to five
    times: five writers at once always succeed, each losing at most to the four others.)"""
    with ThreadPoolExecutor(5) as pool:
        added = list(pool.map(lambda n: _add(store, "race", f"{n:064x}"), range(5)))
    assert sorted(version.version for version, _ in added) == list(range(1, 6))
    assert all(created for _, created in added)
    with ThreadPoolExecutor(6) as pool:
        same = list(pool.map(lambda _: _add(store, "same", "e5" * 32), range(8)))
    assert [created for _, created in same].count(True) == 1
    assert {version.version for version, _ in same} == {1}
    assert [v.version for v in store.datasets.list_versions("same")] == [1]


def check_validation_results(store: MetadataStore) -> None:
    datasets = store.datasets
    version, _ = _add(store, "credit", "a1" * 32)
    other, _ = _add(store, "credit", "b2" * 32)
    assert datasets.list_validations(version.id) == []
    passed = datasets.add_validation(
        version.id,
        suite_name="credit-suite",
        suite_hash="d4" * 32,
        success=True,
        failed=0,
        result_hash="e5" * 32,
    )
    failed = datasets.add_validation(
        version.id,
        suite_name="credit-suite",
        suite_hash="d4" * 32,
        success=False,
        failed=3,
        result_hash="f6" * 32,
    )
    assert datasets.list_validations(version.id) == [failed, passed]  # newest first
    assert passed.created_at.tzinfo is not None and passed.version_id == version.id
    assert datasets.list_validations(other.id) == []


CHECKS: list[Check] = [
    check_dataset_versions_round_trip,
    check_dataset_lookups_and_not_found,
    check_datasets_are_listed_by_name,
    check_concurrent_dataset_adds,
    check_validation_results,
]

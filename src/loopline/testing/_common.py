"""What every group of conformance checks uses: the check's type, an error expectation,
and a registered model version to hang reviews and aliases on."""

from __future__ import annotations

from collections.abc import Callable

from loopline.store import MetadataStore

Check = Callable[[MetadataStore], None]


def raises(kind: type[Exception], action: Callable[[], object]) -> Exception:
    """The `kind` error `action` raises; AssertionError if it raises none."""
    try:
        action()
    except kind as error:
        return error
    raise AssertionError(f"expected {kind.__name__}")


def add_model_version(store: MetadataStore, name: str = "churn") -> int:
    """Register the next version of model `name` (a stand-in package); its number."""
    created = store.models.create_version(
        name,
        flavor="sklearn",
        package_hash="ab" * 32,
        size_bytes=10,
        signature={"inputs": [{"name": "x", "type": "double", "nullable": False}]},
        manifest={"flavor": "sklearn"},
        created_by="tester",
    )
    return created.version

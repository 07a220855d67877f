"""Expectations and validation of dataset versions (the checks themselves are in
validation.py, done by pandera); results are stored with the version they checked."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from loopline.data.load import load, record_use
from loopline.data.versions import resolve
from loopline.errors import InvalidInput
from loopline.project import stores
from loopline.store import DatasetVersion, ValidationRecord

if TYPE_CHECKING:
    import pandas as pd

    from loopline.data.validation import ExpectationSuite, ValidationResult


def expect(
    ref: str,
    *,
    key_columns: tuple[str, ...] = (),
    margin: float = 0.1,
    out: str | Path | None = None,
) -> ExpectationSuite:
    """Infer an expectation suite from version `ref`; `out` also writes it as YAML."""
    from loopline.data.validation import infer_suite

    version = resolve(ref)
    frame = load(version.ref)
    suite = infer_suite(frame, name=version.dataset, key_columns=key_columns, margin=margin)
    if out is not None:
        suite.save(Path(out))
    return suite


def validate(
    data: pd.DataFrame | str,
    suite: ExpectationSuite | str | Path,
    *,
    report: str | Path | None = None,
) -> ValidationResult:
    """Check a DataFrame or a version reference against a suite (object or YAML path).

    For a reference, the result is stored with the version (`data show` lists it).
    `report` writes a self-contained HTML data-quality report.
    """
    import pandas as pd

    from loopline.data.compare import profile_of
    from loopline.data.report import render_html
    from loopline.data.validation import ExpectationSuite
    from loopline.data.validation import validate as check

    expectations = (
        suite if isinstance(suite, ExpectationSuite) else ExpectationSuite.load(Path(suite))
    )
    if isinstance(data, pd.DataFrame):
        result = check(data, expectations)
        title, profile = f"Validation of a DataFrame against {expectations.name}", None
    elif isinstance(data, str):
        version = resolve(data)
        result = check(load(version.ref), expectations)
        _store(version.id, expectations, result)
        record_use(version)
        stored = profile_of(version)
        title = f"Validation of {version.ref} against {expectations.name}"
        profile = None if stored is None else stored.to_dict()
    else:
        raise InvalidInput(f"validate takes a DataFrame or a reference, got {type(data).__name__}")
    if report is not None:
        Path(report).write_text(render_html(result, title=title, profile=profile), encoding="utf-8")
    return result


def history(ref: str) -> list[ValidationRecord]:
    """Stored validation results of version `ref`, newest first."""
    return stores().metadata.datasets.list_validations(resolve(ref).id)


def latest_validations(versions: Sequence[DatasetVersion]) -> dict[str, ValidationRecord]:
    """The newest stored validation of each of `versions`, by version id (a version never
    validated is left out): one query a version, none to resolve references again."""
    datasets = stores().metadata.datasets
    found = {}
    for version in versions:
        records = datasets.list_validations(version.id)
        if records:
            found[version.id] = records[0]
    return found


def read_validation(record: ValidationRecord) -> ValidationResult:
    """The full result a `history` record points at: each failure with its example rows
    (the record itself holds only the outcome and the count of failed rules)."""
    from loopline.data.validation import ValidationResult

    body = json.loads(stores().artifacts.get_bytes(record.result_hash))
    return ValidationResult.from_dict(body)


def _store(version_id: str, suite: ExpectationSuite, result: ValidationResult) -> None:
    artifacts = stores().artifacts
    suite_blob = artifacts.put_bytes(suite.to_yaml().encode())
    result_blob = artifacts.put_bytes(json.dumps(result.to_dict(), separators=(",", ":")).encode())
    stores().metadata.datasets.add_validation(
        version_id,
        suite_name=suite.name,
        suite_hash=suite_blob.hash,
        success=result.success,
        failed=len(result.failures),
        result_hash=result_blob.hash,
    )

"""Where a model version came from: its source version (for exports), the run that made
it, the run's code version and parameters, and the dataset versions it read."""

from __future__ import annotations

from typing import Any

from loopline.errors import NotFound
from loopline.project import stores
from loopline.registry import ModelRef, ModelVersion, resolve
from loopline.store import Direction, LinkKind


def model_lineage(ref: str | ModelRef | ModelVersion) -> dict[str, Any]:
    """A tree (nested dicts) from the version down to its run, code and data.

    Example:
        tree = model_lineage("churn/4")
        tree["run"]["datasets"][0]["ref"]  # e.g. "credit@3"
    """
    opened = stores()
    version = resolve(ref, opened=opened)
    node: dict[str, Any] = {
        "ref": version.ref,
        "id": version.id,
        "flavor": version.flavor,
        "status": version.status.value,
        "package": version.package_hash,
        "created_by": version.created_by,
        "created_at": version.created_at.isoformat(),
        "source": None,
        "run": None,
    }
    if version.source_version_id is not None:
        node["source"] = model_lineage(
            opened.metadata.models.get_version_by_id(version.source_version_id)
        )
    if version.run_id is not None:
        node["run"] = _run(version.run_id)
    return node


def _run(run_id: str) -> dict[str, Any]:
    metadata = stores().metadata
    try:
        run = metadata.runs.get_run(run_id)
    except NotFound:
        return {"id": run_id, "missing": True}
    datasets = []
    for link in metadata.runs.list_links(run.id, Direction.INPUT, LinkKind.DATASET_VERSION):
        try:
            found = metadata.datasets.get_version_by_id(link.ref)
        except NotFound:
            datasets.append({"ref": link.name, "id": link.ref, "missing": True})
            continue
        datasets.append(
            {
                "ref": found.ref,
                "id": found.id,
                "manifest": found.manifest_hash,
                "rows": found.row_count,
                "size": found.total_size,
            }
        )
    return {
        "id": run.id,
        "name": run.name,
        "experiment": run.experiment,
        "status": run.status.value,
        "user": run.user,
        "started": run.start_time.isoformat(),
        "code": {
            "commit": run.code.commit,
            "branch": run.code.branch,
            "dirty": run.code.dirty,
            "patch": run.code.patch_hash,
        },
        "python": run.python_version,
        "params": run.params,
        "datasets": datasets,
        "parent": None if run.parent_id is None else _run(run.parent_id),
    }

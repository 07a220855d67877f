"""Trace one prediction back to everything behind it.

    ll.trace("4bf92f3577b34da6a3ce929d0e0e4736")

A customer complains about an answer; its request id (the X-Request-Id of the response)
leads to: the inputs and output as logged, the deployment revision in force when it was
answered (who changed it, when, why), how the model version was chosen (the model, the
canary, an A/B arm; the shadow beside it), the version, the run that trained it (commit,
dirty flag, parameters, metrics), the dataset versions that run read with their
validation results, the gate checks, approvals and registry events of its promotion,
and the feedback label if one arrived. The log is searched through the per-file filters
of request ids (predictions/_lookup.py), not scanned. A missing link (a version without
a run, a run without inputs, no feedback) is None or [], never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, NotFound
from loopline.monitoring import _trace_sections as sections
from loopline.predictions import check_request_id, read_request
from loopline.project import stores
from loopline.store.deployments import check_deployment_name

if TYPE_CHECKING:
    import pyarrow as pa

    from loopline.project import Stores


@dataclass(frozen=True)
class Trace:
    """One logged prediction (a row of a request) and everything behind it. Each section
    is a JSON-safe dict (times as ISO-8601 text), None or [] when the link is missing."""

    request_id: str
    row: int
    deployment: str
    prediction: dict[str, Any]
    revision: dict[str, Any] | None
    routing: dict[str, Any] | None
    model: dict[str, Any] | None
    run: dict[str, Any] | None
    datasets: list[dict[str, Any]]
    promotion: dict[str, Any] | None
    feedback: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """The trace as one JSON-safe dict (the keys of the fields, in their order)."""
        return {
            "request_id": self.request_id,
            "row": self.row,
            "deployment": self.deployment,
            "prediction": self.prediction,
            "revision": self.revision,
            "routing": self.routing,
            "model": self.model,
            "run": self.run,
            "datasets": self.datasets,
            "promotion": self.promotion,
            "feedback": self.feedback,
        }


def trace(request_id: str, *, row: int | None = None, deployment: str | None = None) -> Trace:
    """The trace of row `row` (default 0) of the logged request `request_id`.

    `deployment` is needed only when two deployments logged the same request id.

    Raises:
        InvalidInput: a malformed request id (not 1-64 letters, digits, '_' or '-'), a
            bad deployment name, `row` not an integer >= 0, or two deployments logged
            the id and `deployment` was not given.
        InvalidInput: also when the request has no row `row` (the message says how many
            it has).
        NotFound: no delivered log file holds the request.
    """
    check_request_id(request_id)
    if deployment is not None:
        check_deployment_name(deployment)
    if row is not None and (type(row) is not int or row < 0):
        raise InvalidInput(f"row must be an integer >= 0, got {row!r}")
    opened = stores()
    found = read_request(request_id, deployment=deployment, stores=opened)
    logged = _one_deployment(found, request_id, deployment)
    by_row: dict[int, dict[str, Any]] = {}
    for logged_row in found.to_pylist():  # a file delivered twice holds a row twice
        by_row.setdefault(int(logged_row["row"]), logged_row)
    wanted = 0 if row is None else row
    if wanted not in by_row:
        count = len(by_row)
        raise InvalidInput(
            f"request {request_id} has {count} row{'s' if count != 1 else ''} "
            f"(0 to {count - 1}); there is no row {wanted}",
            hint="pass --row with one of them",
        )
    return _build(opened, request_id, wanted, logged, by_row[wanted], len(by_row))


def _one_deployment(found: pa.Table, request_id: str, deployment: str | None) -> str:
    names = sorted({str(name) for name in found.column("deployment").to_pylist()})
    if not names:
        where = f"deployment '{deployment}'" if deployment else "the prediction log"
        raise NotFound(
            f"no request {request_id} in {where}",
            hint="only delivered log files are searched: a request answered in the last "
            "seconds may still be in its server's spool",
        )
    if len(names) > 1:
        raise InvalidInput(
            f"request {request_id} was logged by {len(names)} deployments: {', '.join(names)}",
            hint="name one with --deployment (deployment= in Python)",
        )
    return names[0]


def _build(
    opened: Stores, request_id: str, row: int, deployment: str, logged: dict[str, Any], rows: int
) -> Trace:
    moment = logged["time"]
    revision = routing = None
    try:
        history = opened.metadata.deployments.history(deployment)
    except NotFound:  # the deployment's record is gone; its log remains
        history = []
    in_force = sections.revision_in_force(history, moment)
    if in_force is not None:
        revision = sections.revision_section(in_force, history[0].revision)
        routing = sections.routing_section(
            in_force.config, logged.get("model_version"), logged.get("shadow_version")
        )
    version = sections.model_version(opened, logged.get("model_version"))
    model = run = promotion = None
    datasets: list[dict[str, Any]] = []
    if version is not None:
        model = sections.model_section(opened, version, logged.get("runtime_version"))
        promotion = sections.promotion_section(opened, version)
        run_id = sections.training_run_id(opened, version)
        if run_id is not None:
            run = sections.run_section(opened, run_id)
            datasets = sections.dataset_sections(opened, run_id) if run is not None else []
    return Trace(
        request_id=request_id,
        row=row,
        deployment=deployment,
        prediction=sections.prediction_section(logged, rows),
        revision=revision,
        routing=routing,
        model=model,
        run=run,
        datasets=datasets,
        promotion=promotion,
        feedback=sections.feedback_section(opened, deployment, request_id, row),
    )

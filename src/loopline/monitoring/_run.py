"""`run`: one monitoring report of a deployment over a window of its prediction log.

The window's files are streamed once (see _log_window): each batch is split by the
model version that answered it and fed to that version's accumulators (_sections). The
labelled rows are joined with feedback in a second, small query. Then each version gets
its verdicts: drift per input and output, the multivariate figure, integrity, realised
and estimated performance; versions that answered side by side (canary, A/B) are
compared; the checks of the policy decide the report's status.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, LooplineError, NotFound
from loopline.monitoring import _log_window, _sketch_run
from loopline.monitoring._reference import Reference, classes_of, load_reference
from loopline.monitoring._sections import ALL, VersionWatch
from loopline.monitoring.report import MonitorReport

if TYPE_CHECKING:
    import pyarrow as pa

    from loopline.monitoring.policy import MonitorPolicy
    from loopline.project import Stores

METHOD_EXACT = "exact"
SHADOW_COLUMNS = ("shadow_version", "shadow_prediction", "shadow_probabilities")


def roles(config: dict[str, Any]) -> dict[str, str]:
    """Model version -> its role in a deployment's configuration: stable, canary, shadow,
    or arm A, B, ... of an A/B test."""
    found: dict[str, str] = {}
    arms = config.get("ab") or []
    if arms:
        for index, variant in enumerate(arms):
            found.setdefault(str(variant.get("model")), f"arm {chr(ord('A') + index)}")
    else:
        model = config.get("model") or {}
        found[str(model.get("model"))] = "stable"
        canary = config.get("canary")
        if canary:
            found.setdefault(str(canary.get("model")), "canary")
    shadow = config.get("shadow")
    if shadow:
        found.setdefault(str(shadow.get("model")), "shadow")
    return found


def run(
    deployment: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    reference: str | None = None,
    policy: MonitorPolicy | None = None,
    segments: tuple[str, ...] | list[str] = (),
    store: bool = True,
    schedule_key: str | None = None,
    opened: Stores | None = None,
) -> MonitorReport:
    """A monitoring report of `deployment` over [since, until) of its prediction log.

    `until` defaults to now and `since` to `until` minus the policy's window (1 h by
    default). `reference` is "training" (the dataset version the served version's run
    read) or a dataset reference NAME@V; the policy's when None. The report is stored
    (JSON and HTML in the artifact store, indexed per deployment) unless `store` is False.

    Raises NotFound for an unknown deployment, InvalidInput for a bad window or reference.
    """
    from loopline.monitoring._checks import judge
    from loopline.monitoring.policy import policy_for
    from loopline.predictions._reader import local_copies
    from loopline.project import stores
    from loopline.store.deployments import check_deployment_name

    check_deployment_name(deployment)
    opened = opened or stores()
    policy = policy or policy_for(deployment, opened.settings)
    record = opened.metadata.deployments.get(deployment)  # NotFound for an unknown one
    until = _utc(until, "until") if until is not None else datetime.now(UTC)
    since = _utc(since, "since") if since is not None else until - policy.window
    if until <= since:
        raise InvalidInput(
            f"the window ends ({until.isoformat()}) before it starts ({since.isoformat()})"
        )
    spec = reference or policy.reference
    segment_columns = tuple(segments) or tuple(policy.segments)
    files = opened.metadata.predictions.files(deployment, since, until)
    sketch, why_exact = _sketch_run.choose(
        deployment, files, since, until, max_rows=policy.exact_max_rows,
        segments=segment_columns, config=record.config, opened=opened,
    )  # fmt: skip
    read = sketch.plan.exact if sketch is not None else files
    paths = local_copies(read, opened)
    shape = _log_window.shape(paths, since, until)
    if sketch is not None:
        shape = _sketch_run.combined_shape(shape, sketch)
    base: dict[str, Any] = {
        "deployment": deployment,
        "window": {"since": since.isoformat(), "until": until.isoformat()},
        "rows": shape.rows,
        "method": METHOD_EXACT,
        "revision": record.revision,
        "strategy": _strategy(record.config),
        "segments": list(segment_columns),
        "created_at": datetime.now(UTC).isoformat(),
    }
    if why_exact is not None:
        base["method_note"] = f"read exactly although over exact_max_rows: {why_exact}"
    if shape.rows < policy.min_rows:
        body = {
            **base,
            "status": "skipped",
            "reason": f"{shape.rows} rows in the window; the policy needs {policy.min_rows}",
            "failed": [],
            "checks": {},
            "versions": {},
            "reference": None,
        }
        return _finish(MonitorReport(body), opened, store, schedule_key)
    watches = _watches(shape, record.config, spec, segment_columns, opened)
    if sketch is not None:
        try:
            windows = _sketch_run.windows_for(watches, sketch)
        except InvalidInput as exc:
            base["method_note"] = f"read exactly: the sketches cannot stand for the rows ({exc})"
            sketch, paths = None, local_copies(files, opened)
            shape = _log_window.shape(paths, since, until)
            base["rows"] = shape.rows
            watches = _watches(shape, record.config, spec, segment_columns, opened)
    _feed(watches, paths, since, until, shape)
    if sketch is not None:
        _sketch_run.apply(watches, sketch, windows)
        base["method"] = _sketch_run.METHOD_SKETCH
        base["sketch"] = sketch.describe()
    shadow_role = {v: w for v, w in watches.items() if w.shadow}
    if shadow_role:
        _feed_shadow(shadow_role, paths, since, until)
    feedback = _feedback(deployment, since, opened)
    labelled = None
    if feedback.num_rows:
        extra = SHADOW_COLUMNS if shadow_role else ()
        if sketch is not None:  # the labelled rows are joined exactly, from every file
            paths = local_copies(files, opened)
        labelled = _log_window.labelled(
            paths, since, until, feedback, inputs=segment_columns, extra=extra
        )
    versions = {name: _section(watch, policy, labelled, opened) for name, watch in watches.items()}
    body = {**base, **judge(versions, watches, labelled, policy)}
    body["reference"] = next((w.reference.ref for w in watches.values()), None)
    return _finish(MonitorReport(body), opened, store, schedule_key)


def _strategy(config: dict[str, Any]) -> str:
    base = "canary" if config.get("canary") else "ab" if config.get("ab") else "single"
    return base + ("+shadow" if config.get("shadow") else "")


def _utc(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime):
        raise InvalidInput(f"{name} must be a datetime, got {moment!r}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _watches(
    shape: _log_window.WindowShape,
    config: dict[str, Any],
    spec: str,
    segments: tuple[str, ...],
    opened: Stores,
) -> dict[str, VersionWatch]:
    from loopline.registry import resolve

    by_role = roles(config)
    names = list(shape.versions)
    shadow = next((v for v, role in by_role.items() if role == "shadow"), None)
    if shadow is not None and shadow not in names:
        names.append(shadow)
    references: dict[tuple[str, str], Reference] = {}
    watches: dict[str, VersionWatch] = {}
    for name in names:
        try:
            version = resolve(name, opened=opened)
        except (NotFound, InvalidInput):
            continue  # a version deleted since it answered: nothing to compare it with
        key = (spec, version.id)
        if key not in references:
            # the label column of the version's stored evaluation: with it, the reference's
            # labels calibrate the estimate of performance before labels (CBPE)
            evaluations = opened.metadata.reviews.list_evaluations(version.id)
            target = evaluations[0].target if evaluations else None
            references[key] = load_reference(spec, version, opened, target=target)
        role = by_role.get(name, "previous")
        watches[name] = VersionWatch.build(
            version,
            role,
            references[key],
            classes_of(version),
            segments=segments,
            window_rows=shape.versions.get(name, 0),
        )
    if not watches:
        raise InvalidInput("none of the model versions in the window is registered any more")
    return watches


def _feed(
    watches: dict[str, VersionWatch],
    paths: list[Any],
    since: datetime,
    until: datetime,
    shape: _log_window.WindowShape,
) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    inputs = sorted(
        {name for w in watches.values() for name in w.inputs}
        | {s for w in watches.values() for s in w.segments}
    )
    inputs = [name for name in inputs if name in shape.inputs]
    for batch in _log_window.batches(paths, since, until, inputs=inputs):
        versions = batch.column("model_version")
        present = pc.unique(versions).to_pylist()
        for name in present:
            watch = watches.get(str(name))
            if watch is None or watch.shadow:
                continue
            part = batch if len(present) == 1 else batch.filter(pc.equal(versions, pa.scalar(name)))
            watch.update(part)


def _feed_shadow(
    watches: dict[str, VersionWatch], paths: list[Any], since: datetime, until: datetime
) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    for batch in _log_window.batches(paths, since, until, inputs=[], extra=SHADOW_COLUMNS):
        versions = batch.column("shadow_version")
        for name, watch in watches.items():
            part = batch.filter(pc.fill_null(pc.equal(versions, pa.scalar(name)), False))
            if part.num_rows:
                watch.update(part)


def _feedback(deployment: str, since: datetime, opened: Stores) -> pa.Table:
    from loopline.predictions import read_feedback

    # labels arrive after the predictions they judge: any label recorded since the window
    # began may belong to one of its rows
    return read_feedback(deployment, since=since - timedelta(seconds=1), stores=opened)


def _section(
    watch: VersionWatch, policy: MonitorPolicy, labelled: pa.Table | None, opened: Stores
) -> dict[str, Any]:
    from loopline.monitoring._verdicts import section

    return section(watch, policy, labelled, opened)


def _finish(
    report: MonitorReport, opened: Stores, store: bool, schedule_key: str | None
) -> MonitorReport:
    if not store:
        return report
    from loopline.monitoring.report import store_report

    try:
        return store_report(report, opened, schedule_key=schedule_key)
    except LooplineError:
        raise


__all__ = ["ALL", "run"]

"""Building a model card from what the registry knows about a version.

Fields follow Google's Model Card Toolkit schema (v0.0.2); loopline's own facts (status,
aliases, gates, approvals, lineage) sit under `loopline`. Free-text parts come from the
model's and the version's tags: `intended_use`, `users`, `limitations`, `tradeoffs`,
`ethical_considerations`, `risk_category`, `license` (version tags win).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from loopline.errors import InvalidInput, NotFound
from loopline.evaluation import latest_evaluation
from loopline.project import Stores, stores
from loopline.registry import ModelRef, ModelVersion, resolve
from loopline.store import Direction, LinkKind

CardFormat = Literal["markdown", "html", "json"]


def build_card(
    ref: str | ModelRef | ModelVersion, *, opened: Stores | None = None
) -> dict[str, Any]:
    """The card of a version as a dict (Model Card Toolkit field names)."""
    opened = opened or stores()
    version = resolve(ref, opened=opened)
    model = opened.metadata.models.get_model(version.model)
    text = {**model.tags, **version.tags}
    evaluation = latest_evaluation(version, opened=opened)
    report = evaluation.report if evaluation is not None else {}
    checks = opened.metadata.reviews.list_gate_checks(version.id)
    approvals = opened.metadata.reviews.list_approvals(version.id)
    datasets, lineage = _lineage(version, opened)
    signature = version.signature
    return {
        "schema_version": "0.0.2",
        "model_details": {
            "name": version.model,
            "overview": version.description or model.description or "",
            "version": {
                "name": str(version.version),
                "date": version.created_at.isoformat(),
                "diff": _diff(version, opened),
            },
            "owners": [{"name": version.created_by, "contact": ""}],
            "licenses": [{"identifier": text["license"]}] if "license" in text else [],
            "references": [],
            "citations": [],
            "path": f"models:/{version.ref} (package {version.package_hash[:12]})",
        },
        "model_parameters": {
            "model_architecture": f"{version.manifest.get('model_class', '?')} ({version.flavor})",
            "data": datasets,
            "input_format": ", ".join(
                f"{c['name']}: {c['type']}" for c in signature.get("inputs", [])
            ),
            "output_format": ", ".join(
                f"{c['name']}: {c['type']}" for c in signature.get("outputs", [])
            ),
        },
        "quantitative_analysis": {
            "performance_metrics": _performance(report),
            "graphics": {"description": "", "collection": []},
        },
        "considerations": {
            "users": _described(text.get("users")),
            "use_cases": _described(text.get("intended_use")),
            "limitations": _described(text.get("limitations")),
            "tradeoffs": _described(text.get("tradeoffs")),
            "ethical_considerations": [
                {"name": line, "mitigation_strategy": ""}
                for line in _lines(text.get("ethical_considerations"))
            ],
        },
        "loopline": {
            "risk_category": text.get("risk_category"),
            "status": version.status.value,
            "aliases": opened.metadata.models.aliases_of(version.id),
            "evaluation": None
            if evaluation is None
            else {
                "data": evaluation.record.data_ref,
                "task": report.get("task"),
                "rows": report.get("rows"),
                "time": evaluation.record.created_at.isoformat(),
            },
            "gates": [] if not checks else checks[0].results,
            "gates_passed": None if not checks else checks[0].passed,
            "approvals": [
                {"actor": a.actor, "reason": a.reason, "time": a.created_at.isoformat()}
                for a in approvals
            ],
            "lineage": lineage,
            "fairness": report.get("fairness") or {},
            "calibration_ece": (report.get("calibration") or {}).get("ece"),
            "robustness": report.get("robustness") or {},
            "latency": report.get("latency") or {},
            "size_bytes": version.size_bytes,
            "generated_at": datetime.now(UTC).isoformat(),
        },
    }


def render_card(
    ref: str | ModelRef | ModelVersion,
    format: CardFormat = "markdown",
    *,
    opened: Stores | None = None,
) -> str:
    """The card of a version as Markdown, HTML or Model Card Toolkit JSON."""
    from loopline.cards.render import card_to_json, render_html, render_markdown

    renderers = {"markdown": render_markdown, "html": render_html, "json": card_to_json}
    if format not in renderers:
        raise InvalidInput(f"unknown card format {format!r}; use markdown, html or json")
    return renderers[format](build_card(ref, opened=opened))


def store_card(version: ModelVersion, *, opened: Stores | None = None) -> str:
    """Regenerate a version's card and keep it (JSON) with the version; returns its hash."""
    from loopline.cards.render import card_to_json

    opened = opened or stores()
    blob = opened.artifacts.put_bytes(card_to_json(build_card(version, opened=opened)).encode())
    opened.metadata.models.set_card(version.id, blob.hash)
    return blob.hash


def stored_card(ref: str | ModelRef | ModelVersion) -> dict[str, Any] | None:
    """The card generated at the version's last promotion or approval, if any."""
    opened = stores()
    version = resolve(ref, opened=opened)
    if version.card_hash is None:
        return None
    card: dict[str, Any] = json.loads(opened.artifacts.get_bytes(version.card_hash))
    return card


def _lineage(version: ModelVersion, opened: Stores) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lineage: dict[str, Any] = {"run_id": version.run_id, "git_commit": None, "dirty": None}
    datasets: list[dict[str, Any]] = []
    if version.run_id is None:
        lineage["datasets"] = []
        return datasets, lineage
    run = opened.metadata.runs.get_run(version.run_id)
    lineage.update(
        git_commit=run.code.commit,
        dirty=run.code.dirty,
        experiment=run.experiment,
        run_name=run.name,
        params=run.params,
    )
    links = opened.metadata.runs.list_links(run.id, Direction.INPUT, LinkKind.DATASET_VERSION)
    for link in links:
        try:
            data_version = opened.metadata.datasets.get_version_by_id(link.ref)
        except NotFound:
            continue
        datasets.append(
            {
                "name": data_version.ref,
                "link": f"manifest {data_version.manifest_hash[:12]}",
                "sensitive": {"sensitive_data": []},
                "loopline_profile": _profile(data_version.profile_hash, opened),
            }
        )
    lineage["datasets"] = [{"ref": d["name"], "manifest": d["link"]} for d in datasets]
    return datasets, lineage


def _profile(profile_hash: str | None, opened: Stores) -> dict[str, Any] | None:
    if profile_hash is None:
        return None
    profile = json.loads(opened.artifacts.get_bytes(profile_hash))
    return {
        "rows": profile.get("row_count"),
        "columns": [
            {key: stat.get(key) for key in ("name", "type", "nulls", "mean", "min", "max")}
            for stat in profile.get("stats", [])
        ],
    }


def _performance(report: dict[str, Any]) -> list[dict[str, Any]]:
    metrics: list[dict[str, Any]] = [
        {"type": key, "value": value, "slice": "", "confidence_interval": None}
        for key, value in (report.get("metrics") or {}).items()
    ]
    for name, found in (report.get("slices") or {}).items():
        for key, value in (found.get("metrics") or {}).items():
            metrics.append(
                {"type": key, "value": value, "slice": name, "confidence_interval": None}
            )
    return metrics


def _diff(version: ModelVersion, opened: Stores) -> str:
    if version.source_version_id is None:
        return ""
    source = opened.metadata.models.get_version_by_id(version.source_version_id)
    export = version.extra.get("export") or {}
    return f"exported from {source.ref} to {export.get('format', version.flavor)}"


def _described(text: str | None) -> list[dict[str, str]]:
    return [{"description": line} for line in _lines(text)]


def _lines(text: str | None) -> list[str]:
    return [] if not text else [line.strip() for line in text.split("\n") if line.strip()]

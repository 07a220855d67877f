"""Conformance checks of what is learned about a model version: evaluations and gate
checks kept as given (newest first), approvals in order and audited with them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from loopline.store import MetadataStore
from loopline.testing._common import Check, add_model_version


def _version_id(store: MetadataStore, name: str = "churn") -> str:
    number = add_model_version(store, name)
    return store.models.get_version(name, number).id


def check_evaluations_and_gate_checks_round_trip(store: MetadataStore) -> None:
    reviews = store.reviews
    version_id, other_id = _version_id(store), _version_id(store)
    assert reviews.list_evaluations(version_id) == []
    assert reviews.list_gate_checks(version_id) == []
    evaluations = [
        reviews.add_evaluation(
            version_id,
            data_ref=f"credit@{n}",
            dataset_version_id=None,
            target="default",
            config_hash="c" * 64,
            report_hash=f"{n:064x}",
            html_hash="d" * 64,
            metrics={"auc": 0.5 + n / 10, "slices": {"plan=pro": {"n": n}}, "name": "ünï"},
            created_by="tester",
        )
        for n in range(3)
    ]
    assert reviews.list_evaluations(version_id) == evaluations[::-1]
    assert evaluations[0].created_at.tzinfo is not None
    results: list[dict[str, Any]] = [
        {"rule": "metrics.auc >= 0.9", "passed": False, "value": 0.7},
        {"rule": "slices.min_n > 0", "passed": True, "value": None},
    ]
    failed = reviews.add_gate_check(
        version_id,
        evaluation_id=evaluations[2].id,
        policy={"rules": [r["rule"] for r in results], "stage": "production"},
        passed=False,
        results=results,
        created_by="gate",
    )
    passed = reviews.add_gate_check(
        version_id, evaluation_id=None, policy={}, passed=True, results=[], created_by="gate"
    )
    assert reviews.list_gate_checks(version_id) == [passed, failed]
    assert failed.results == results and failed.evaluation_id == evaluations[2].id
    assert reviews.list_evaluations(other_id) == []
    assert reviews.list_gate_checks(other_id) == []


def check_approvals_are_kept_in_order_and_audited(store: MetadataStore) -> None:
    reviews = store.reviews
    version_id = _version_id(store)
    first = reviews.add_approval(
        version_id, "churn/1", stage="staging", actor="alice", reason="offline metrics ok"
    )
    second = reviews.add_approval(
        version_id, "churn/1", stage="production", actor="bob", reason="canary ok"
    )
    assert reviews.list_approvals(version_id) == [first, second]  # oldest first
    assert (second.version_id, second.stage, second.actor) == (version_id, "production", "bob")
    events = store.audit.list_events(object_id="churn/1", action="model_version.approve")
    assert [(e.actor, e.after, e.reason, e.object_type) for e in events] == [
        ("bob", {"stage": "production"}, "canary ok", "model_version"),
        ("alice", {"stage": "staging"}, "offline metrics ok", "model_version"),
    ]


def check_concurrent_approvals_are_each_audited(store: MetadataStore) -> None:
    reviews = store.reviews
    version_id = _version_id(store)

    def approve(n: int) -> str:
        approval = reviews.add_approval(
            version_id, "churn/1", stage="production", actor=f"a{n}", reason=f"r{n}"
        )
        return approval.id

    with ThreadPoolExecutor(4) as pool:
        ids = set(pool.map(approve, range(8)))
    approvals = reviews.list_approvals(version_id)
    assert {a.id for a in approvals} == ids and len(ids) == 8
    events = store.audit.list_events(object_id="churn/1", action="model_version.approve")
    assert sorted(e.actor for e in events) == sorted(a.actor for a in approvals)


CHECKS: list[Check] = [
    check_evaluations_and_gate_checks_round_trip,
    check_approvals_are_kept_in_order_and_audited,
    check_concurrent_approvals_are_each_audited,
]

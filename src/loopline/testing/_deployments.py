"""Conformance checks of the deployments store: configurations kept as given, one
revision per change with its audit event, and no change lost or applied over a stale
read when writers race."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import pairwise
from typing import Any

from loopline.errors import Conflict, InvalidInput, NotFound
from loopline.store import MetadataStore
from loopline.testing._common import Check, raises


def _config(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": {"model": model, "ref": model}, "weight": 0.25, "note": "ünï", **extra}


def check_deployment_round_trip_and_history(store: MetadataStore) -> None:
    deployments = store.deployments
    first = _config("churn/1", ab=[{"model": "churn/2"}], strict_inputs=True)
    created = deployments.create("churn-live", first, actor="alice", reason="launch")
    assert (created.name, created.revision, created.config) == ("churn-live", 1, first)
    assert created.created_by == "alice" and created.created_at.tzinfo is not None
    assert created.updated_at == created.created_at
    assert deployments.get("churn-live") == created

    second = _config("churn/2")
    updated = deployments.update("churn-live", second, action="update", actor="bob")
    assert (updated.revision, updated.config, updated.created_by) == (2, second, "alice")
    assert updated.updated_at >= updated.created_at
    third = deployments.update(
        "churn-live", first, action="rollback", actor="carol", reason="bad", expected_revision=2
    )
    assert third.revision == 3 and third.config == first
    history = deployments.history("churn-live")
    assert [(r.revision, r.action, r.actor, r.reason) for r in history] == [
        (3, "rollback", "carol", "bad"),
        (2, "update", "bob", None),
        (1, "create", "alice", "launch"),
    ]
    assert [r.config for r in history] == [first, second, first]
    assert [r.revision for r in deployments.history("churn-live", limit=1)] == [3]
    events = store.audit.list_events(object_id="churn-live")
    assert [(e.action, e.actor, e.object_type) for e in events] == [
        ("deployment.rollback", "carol", "deployment"),
        ("deployment.update", "bob", "deployment"),
        ("deployment.create", "alice", "deployment"),
    ]
    assert [(e.before, e.after) for e in events] == [
        (second, first),
        (first, second),
        (None, first),
    ]


def check_deployment_names_and_not_found(store: MetadataStore) -> None:
    deployments = store.deployments
    deployments.create("b-side", _config("churn/1"), actor="t")
    deployments.create("a-side", _config("churn/1"), actor="t")
    assert [d.name for d in deployments.all()] == ["a-side", "b-side"]
    assert deployments.revisions(["a-side", "b-side", "gone"]) == {"a-side": 1, "b-side": 1}
    assert deployments.revisions([]) == {}
    raises(Conflict, lambda: deployments.create("a-side", _config("churn/2"), actor="t"))
    assert deployments.get("a-side").config == _config("churn/1")
    assert len(deployments.history("a-side")) == 1
    raises(NotFound, lambda: deployments.get("gone"))
    raises(NotFound, lambda: deployments.history("gone"))
    raises(NotFound, lambda: deployments.update("gone", {}, action="update", actor="t"))
    for bad in ("", "a/b", "../x", "-lead", "x" * 129, "a b", "a\n"):
        raises(InvalidInput, partial(deployments.create, bad, {}, actor="t"))
        raises(InvalidInput, partial(deployments.get, bad))
    assert [d.name for d in deployments.all()] == ["a-side", "b-side"]


def check_deployment_writers_never_overwrite_a_newer_revision(store: MetadataStore) -> None:
    """Writers naming the revision they read: exactly one wins each revision."""
    deployments = store.deployments
    deployments.create("race", _config("churn/1"), actor="t")

    def change(writer: int) -> str:
        try:
            deployments.update(
                "race",
                _config(f"churn/{writer}"),
                action="update",
                actor=f"writer{writer}",
                expected_revision=1,
            )
        except Conflict:
            return "conflict"
        return "changed"

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(change, range(2, 8)))
    assert sorted(outcomes) == ["changed"] + ["conflict"] * 5, outcomes
    current = deployments.get("race")
    assert current.revision == 2
    [event] = store.audit.list_events(object_id="race", action="deployment.update")
    assert event.after == current.config and event.before == _config("churn/1")


def check_concurrent_deployment_updates_lose_nothing(store: MetadataStore) -> None:
    """Unconditional updates serialize: every one is a revision, each audited against
    the configuration it replaced."""
    deployments = store.deployments
    deployments.create("busy", _config("churn/0"), actor="t")

    def change(writer: int) -> None:
        for step in range(3):
            deployments.update(
                "busy", _config(f"churn/{writer}", step=step), action="update", actor="t"
            )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(change, range(4)))
    assert deployments.get("busy").revision == 13
    history = list(reversed(deployments.history("busy")))
    assert [r.revision for r in history] == list(range(1, 14))
    events = list(reversed(store.audit.list_events(object_id="busy")))
    assert len(events) == 13
    for earlier, later in pairwise(events):
        assert later.before == earlier.after, "an update read a stale configuration"
    assert [e.after for e in events] == [r.config for r in history]


CHECKS: list[Check] = [
    check_deployment_round_trip_and_history,
    check_deployment_names_and_not_found,
    check_deployment_writers_never_overwrite_a_newer_revision,
    check_concurrent_deployment_updates_lose_nothing,
]

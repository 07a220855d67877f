"""Conformance checks of the monitoring records and the servers' heartbeats: a scheduled
window is indexed once, one open alert per deployment and check (an outbox of
notifications), the watcher's state never moves backwards, and a server's heartbeats
are replaced whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from loopline.errors import InvalidInput, NotFound
from loopline.store import MetadataStore
from loopline.store.servers import ServedState, ServerIdentity
from loopline.testing._common import Check, raises

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _report(store: MetadataStore, until: datetime, **extra: object) -> object:
    values: dict[str, object] = {
        "since": until - HOUR,
        "until": until,
        "rows": 120,
        "status": "failed",
        "failed": ["drift"],
        "reference": "credit/2",
        "report_hash": "a1" * 32,
        "html_hash": None,
        "scores": {"drift_share": 0.5, "columns": {"age": 0.01}, "note": "ünï"},
        "created_by": "watcher",
        **extra,
    }
    return store.monitoring.add_report("churn", **values)  # type: ignore[arg-type]


def check_monitoring_reports_round_trip(store: MetadataStore) -> None:
    monitoring = store.monitoring
    assert monitoring.list_reports() == []
    first = _report(store, T0, schedule_key="k1")
    again = _report(store, T0, schedule_key="k1", rows=7)  # the same window: the stored one
    assert again == first
    given = "f" * 32
    second = _report(store, T0 + HOUR, status="passed", failed=[], since=None, report_id=given)
    assert second.id == given  # type: ignore[attr-defined]
    assert (second.since, second.status, second.failed) == (None, "passed", [])  # type: ignore[attr-defined]
    assert monitoring.get_report(given) == second
    stored = monitoring.get_report(first.id)  # type: ignore[attr-defined]
    assert (stored.deployment, stored.until, stored.rows, stored.reference) == (
        "churn",
        T0,
        120,
        "credit/2",
    )
    assert stored.scores == {"drift_share": 0.5, "columns": {"age": 0.01}, "note": "ünï"}
    assert stored.created_by == "watcher" and stored.created_at.tzinfo is not None
    assert {r.id for r in monitoring.list_reports("churn")} == {first.id, given}  # type: ignore[attr-defined]
    assert len(monitoring.list_reports(limit=1)) == 1
    assert monitoring.list_reports("other") == []
    raises(NotFound, lambda: monitoring.get_report("0" * 32))
    raises(InvalidInput, lambda: _report(store, T0 + 2 * HOUR, status="maybe"))
    raises(InvalidInput, lambda: monitoring.list_reports("a/b"))
    assert len(monitoring.list_reports()) == 2


def check_monitoring_alerts_and_state(store: MetadataStore) -> None:
    monitoring = store.monitoring
    assert monitoring.open_alert_of("churn", "drift") is None
    alert, opened = monitoring.open_alert("churn", "drift", summary="drifted", report_id=None)
    assert opened and alert.pending and alert.status == "open" and alert.sends == 0
    same, opened_again = monitoring.open_alert("churn", "drift", summary="x", report_id=None)
    assert not opened_again and same.id == alert.id
    assert monitoring.open_alert_of("churn", "drift") == alert
    assert [a.id for a in monitoring.pending_alerts()] == [alert.id]
    monitoring.mark_sent(alert.id)
    sent = monitoring.open_alert_of("churn", "drift")
    assert sent is not None and sent.sends == 1 and not sent.pending
    assert sent.last_sent_at is not None and monitoring.pending_alerts() == []
    monitoring.mark_pending(alert.id, summary="still drifted", report_id="r" * 32)
    [queued] = monitoring.pending_alerts()
    assert (queued.summary, queued.report_id) == ("still drifted", "r" * 32)
    closed = monitoring.resolve_alert("churn", "drift")
    assert closed is not None and closed.status == "resolved" and closed.resolved_at is not None
    assert monitoring.resolve_alert("churn", "drift") is None
    reopened, opened = monitoring.open_alert("churn", "drift", summary="again", report_id=None)
    assert opened and reopened.id != alert.id
    assert [a.id for a in monitoring.alerts("churn")] == [reopened.id, alert.id]
    assert [a.id for a in monitoring.alerts(status="resolved")] == [alert.id]
    assert monitoring.alerts("other") == []

    assert monitoring.state("churn").last_until is None
    monitoring.set_state("churn", last_until=T0 + HOUR, report_id="r1")
    monitoring.set_state("churn", last_until=T0, report_id="r0")  # never backwards
    state = monitoring.state("churn")
    assert (state.deployment, state.last_until, state.last_report_id) == ("churn", T0 + HOUR, "r1")
    assert state.last_run_at is not None
    raises(InvalidInput, lambda: monitoring.set_state("a/b", last_until=T0, report_id=None))


def check_server_heartbeats_are_replaced_whole(store: MetadataStore) -> None:
    servers = store.servers
    started = datetime.now(UTC)
    one = ServerIdentity("s1", "host-a", "http://127.0.0.1:5001", 101, started, 2.0)
    two = ServerIdentity("s2", "host-b", "http://127.0.0.1:5002", 102, started, 2.0)
    serving = ServedState("churn", "serving", 3, {"model": "churn/2"})
    failed = ServedState(
        "other", "failed", None, {}, error="no such model", error_revision=2, error_at=started
    )
    seen = servers.beat(one, [serving, failed])
    assert seen.tzinfo is not None
    servers.beat(two, [ServedState("churn", "loading")])
    beats = servers.of_deployments(["churn"])
    assert sorted(b.server.server_id for b in beats) == ["s1", "s2"]
    mine = next(b for b in beats if b.server.server_id == "s1")
    assert mine.server == one and mine.served == serving and not mine.stale()
    [other] = servers.of_deployments(["other"])
    assert other.served == failed
    assert servers.of_deployments([]) == []
    servers.beat(one, [serving])  # replaces: s1 no longer serves "other"
    assert servers.of_deployments(["other"]) == []
    assert len(servers.of_deployments()) == 2
    servers.remove("s2")
    assert [b.server.server_id for b in servers.of_deployments()] == ["s1"]
    assert servers.prune(timedelta(days=1)) == 0
    assert servers.prune(timedelta(0)) == 1
    assert servers.of_deployments() == []


CHECKS: list[Check] = [
    check_monitoring_reports_round_trip,
    check_monitoring_alerts_and_state,
    check_server_heartbeats_are_replaced_whole,
]

"""Monitoring records through a platform server (`MonitorStore`'s methods): the index of
stored reports, alerts, and the watcher's state."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from loopline.store.deployments import check_deployment_name
from loopline.store.monitoring import AlertRecord, MonitorReportRecord, WatchState
from loopline.store.remote._codec import decode, encode
from loopline.store.remote._session import RemoteSession


class RemoteMonitorStore:
    """`MetadataStore.monitoring` of a remote store."""

    def __init__(self, session: RemoteSession) -> None:
        self._session = session

    # -- reports ----------------------------------------------------------------------

    def add_report(
        self,
        deployment: str,
        *,
        since: datetime | None,
        until: datetime,
        rows: int,
        status: str,
        failed: list[str],
        reference: str | None,
        report_hash: str,
        html_hash: str | None,
        scores: dict[str, Any],
        created_by: str,
        schedule_key: str | None = None,
        report_id: str | None = None,
    ) -> MonitorReportRecord:
        """Index a stored report. Retried only with a `schedule_key` (a repeat then gives
        back the report of that window)."""
        body = {
            "deployment": check_deployment_name(deployment),
            "since": encode(since),
            "until": encode(until),
            "rows": rows,
            "status": status,
            "failed": failed,
            "reference": reference,
            "report_hash": report_hash,
            "html_hash": html_hash,
            "scores": scores,
            "created_by": created_by,
            "schedule_key": schedule_key,
            "report_id": report_id,
        }
        answer = self._session.call(
            "POST", "/monitoring/reports", body=body, idempotent=schedule_key is not None
        )
        return decode(MonitorReportRecord, answer)  # type: ignore[no-any-return]

    def get_report(self, report_id: str) -> MonitorReportRecord:
        """A report's index row. Raises NotFound."""
        answer = self._session.call("GET", f"/monitoring/reports/{quote(report_id, safe='')}")
        return decode(MonitorReportRecord, answer)  # type: ignore[no-any-return]

    def list_reports(
        self, deployment: str | None = None, *, limit: int = 50
    ) -> list[MonitorReportRecord]:
        """Reports, newest first (of one deployment when given)."""
        params: dict[str, Any] = {"limit": limit}
        if deployment is not None:
            params["deployment"] = check_deployment_name(deployment)
        answer = self._session.call("GET", "/monitoring/reports", params=params)
        return decode(list[MonitorReportRecord], answer)  # type: ignore[no-any-return]

    # -- alerts -----------------------------------------------------------------------

    def open_alert(
        self, deployment: str, check: str, *, summary: str, report_id: str | None
    ) -> tuple[AlertRecord, bool]:
        """The open alert of (deployment, check), opened now if there is none; the flag
        says whether it was opened by this call. Not retried: a repeat would say it was
        not, and the watcher acts on a new alert only."""
        body = {
            "deployment": check_deployment_name(deployment),
            "check": check,
            "summary": summary,
            "report_id": report_id,
        }
        answer = self._session.call("POST", "/monitoring/alerts", body=body)
        return decode(AlertRecord, answer["alert"]), decode(bool, answer["opened"])

    def open_alert_of(self, deployment: str, check: str) -> AlertRecord | None:
        params = {"deployment": check_deployment_name(deployment), "check": check}
        answer = self._session.call("GET", "/monitoring/alerts/open", params=params)
        return decode(AlertRecord | None, answer)  # type: ignore[no-any-return]

    def mark_pending(self, alert_id: str, *, summary: str, report_id: str | None) -> None:
        """Queue an open alert's notification again (its cool-down has passed)."""
        body = {"summary": summary, "report_id": report_id}
        self._session.call(
            "PUT", f"/monitoring/alerts/{quote(alert_id, safe='')}/pending", body=body
        )

    def mark_sent(self, alert_id: str) -> None:
        """Record one delivery of an alert's notification (not retried: it counts sends)."""
        self._session.call("POST", f"/monitoring/alerts/{quote(alert_id, safe='')}/deliveries")

    def resolve_alert(self, deployment: str, check: str) -> AlertRecord | None:
        """Close the open alert of (deployment, check); the alert closed, or None."""
        params = {"deployment": check_deployment_name(deployment), "check": check}
        answer = self._session.call("POST", "/monitoring/alerts/resolve", params=params)
        return decode(AlertRecord | None, answer)  # type: ignore[no-any-return]

    def alerts(
        self, deployment: str | None = None, *, status: str | None = None, limit: int = 200
    ) -> list[AlertRecord]:
        """Alerts, newest first, optionally of one deployment and status (open, resolved)."""
        params: dict[str, Any] = {"limit": limit}
        if deployment is not None:
            params["deployment"] = check_deployment_name(deployment)
        if status is not None:
            params["status"] = status
        answer = self._session.call("GET", "/monitoring/alerts", params=params)
        return decode(list[AlertRecord], answer)  # type: ignore[no-any-return]

    def pending_alerts(self) -> list[AlertRecord]:
        """Alerts whose notification is still to be delivered, oldest first."""
        answer = self._session.call("GET", "/monitoring/alerts/pending")
        return decode(list[AlertRecord], answer)  # type: ignore[no-any-return]

    # -- the watcher's state ----------------------------------------------------------

    def state(self, deployment: str) -> WatchState:
        path = f"/monitoring/states/{quote(check_deployment_name(deployment), safe='')}"
        return decode(WatchState, self._session.call("GET", path))  # type: ignore[no-any-return]

    def set_state(self, deployment: str, *, last_until: datetime, report_id: str | None) -> None:
        """Record that the window ending at `last_until` is done (never moves backwards;
        a PUT, so a repeat changes nothing)."""
        path = f"/monitoring/states/{quote(check_deployment_name(deployment), safe='')}"
        body = {"last_until": encode(last_until), "report_id": report_id}
        self._session.call("PUT", path, body=body)

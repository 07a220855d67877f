"""Alerts and their delivery: a webhook POST, a log line, or a line appended to a file.

`deliver(alert, action, project_root=...)` sends one alert to the one target of an
`alert` action and returns a `Delivery` saying how it went; it does not raise when the
target refuses or fails (a watcher keeps watching), only for arguments that are wrong.

- webhook: a JSON POST that Slack and generic receivers both read:
  `{"text": one line, "blocks": [Slack sections], "loopline": the alert as a dict}`
  (Slack ignores `loopline`; other receivers need read nothing else). The SSRF
  defences and retries are `loopline.monitoring._webhook`'s; the URL appears nowhere,
  only `scheme://host`.
- log: one line at WARNING through the `loopline.monitoring.alerts` logger.
- file: one JSON line appended to a file inside the project (`O_APPEND`, one write, then
  fsync), so lines from concurrent writers never interleave and survive a crash.

De-duplication, cool-downs and audit events are the watcher's: this module only sends.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput, InvalidPath

if TYPE_CHECKING:
    from loopline.monitoring.policy import Action

logger = logging.getLogger("loopline.monitoring.alerts")

SEVERITIES = ("info", "warning", "critical")
STATUSES = ("open", "resolved")
_CHECK_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_SLACK_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


@dataclass(frozen=True)
class Alert:
    """A failed check of one deployment, as it is sent.

    `check` names the check (drift, integrity, performance, canary, ...), `severity` is
    info, warning or critical, `summary` one line for people, `details` JSON-ready facts
    (the failing features and their scores), `report_id` the monitoring report behind
    it, `opened_at` when it opened (timezone-aware), `link` where to read more, and
    `status` open or resolved (a resolved alert says the check passes again).
    """

    deployment: str
    check: str
    severity: str
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)
    report_id: str | None = None
    opened_at: datetime | None = None
    link: str | None = None
    status: str = "open"

    def __post_init__(self) -> None:
        from loopline.store.deployments import check_deployment_name

        check_deployment_name(self.deployment)
        if not isinstance(self.check, str) or not _CHECK_NAME.fullmatch(self.check):
            raise InvalidInput(
                f"an alert's check is a lower-case name like 'drift': {self.check!r}"
            )
        if self.severity not in SEVERITIES:
            raise InvalidInput(
                f"an alert's severity is one of {', '.join(SEVERITIES)}: {self.severity!r}"
            )
        if self.status not in STATUSES:
            raise InvalidInput(f"an alert's status is open or resolved: {self.status!r}")
        if not isinstance(self.summary, str) or not self.summary.strip():
            raise InvalidInput("an alert needs a summary (non-empty text)")
        for name in ("report_id", "link"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidInput(f"an alert's {name} is text or None, got {value!r}")
        if self.opened_at is not None and (
            not isinstance(self.opened_at, datetime) or self.opened_at.utcoffset() is None
        ):
            raise InvalidInput(
                f"an alert's opened_at is a timezone-aware datetime, got {self.opened_at!r}"
            )
        if not isinstance(self.details, Mapping):
            raise InvalidInput(
                f"an alert's details are a mapping, got {type(self.details).__name__}"
            )
        object.__setattr__(self, "details", _json_ready(self.details))
        object.__setattr__(self, "summary", " ".join(self.summary.split()))

    @property
    def line(self) -> str:
        """The alert as one line of text: `[warning] credit drift: ... (report R)`."""
        state = " resolved" if self.status == "resolved" else ""
        report = f" (report {self.report_id})" if self.report_id else ""
        return f"[{self.severity}] {self.deployment} {self.check}{state}: {self.summary}{report}"

    def to_dict(self) -> dict[str, Any]:
        """The alert as JSON-ready data (`opened_at` in ISO 8601)."""
        return {
            "deployment": self.deployment,
            "check": self.check,
            "severity": self.severity,
            "status": self.status,
            "summary": self.summary,
            "details": dict(self.details),
            "report_id": self.report_id,
            "opened_at": None if self.opened_at is None else self.opened_at.isoformat(),
            "link": self.link,
        }


@dataclass(frozen=True)
class Delivery:
    """How sending one alert went: `target` (a webhook as `scheme://host`, `log`, or the
    file's path in the project), `ok`, the HTTP `status` of a webhook's last answer,
    `error` (one line, None when delivered) and the number of `attempts`."""

    kind: str
    target: str
    ok: bool
    status: int | None = None
    error: str | None = None
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        """The delivery as JSON-ready data (what an audit event or a report stores)."""
        return {
            "kind": self.kind,
            "target": self.target,
            "ok": self.ok,
            "status": self.status,
            "error": self.error,
            "attempts": self.attempts,
        }


def deliver(
    alert: Alert,
    action: Action,
    *,
    project_root: str | Path,
    timeout: float = 5.0,
    attempts: int = 3,
    backoff: float = 0.5,
) -> Delivery:
    """Send `alert` to the target of the alert `action`; a Delivery says how it went.

    A webhook gets at most `attempts` tries of `timeout` seconds each (connection errors
    and 5xx answers are retried after `backoff`, then twice that, ...). A file target
    is resolved under `project_root` when the alert is written.

    Raises:
        InvalidInput: `alert` is not an Alert, `action` is not an alert action, or
            `timeout`, `attempts` or `backoff` are not positive finite numbers. A
            refused or failing target is not raised: it is a Delivery with `ok` False.
    """
    from loopline.monitoring.policy import Action

    if not isinstance(alert, Alert):
        raise InvalidInput(f"deliver sends an Alert, got {type(alert).__name__}")
    if not isinstance(action, Action) or action.kind != "alert":
        shown = action.kind if isinstance(action, Action) else type(action).__name__
        raise InvalidInput(f"deliver needs an alert action, got {shown}")
    _check_positive("timeout", timeout)
    _check_positive("backoff", backoff, zero=True)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 10:
        raise InvalidInput(f"attempts must be a whole number from 1 to 10, got {attempts!r}")
    if not isinstance(project_root, str | Path):
        raise InvalidInput(f"project_root is a folder path, got {type(project_root).__name__}")
    if action.webhook is not None:
        return _to_webhook(alert, action, timeout, attempts, backoff)
    if action.log:
        logger.warning("%s", alert.line)
        return Delivery("log", "log", True)
    assert action.file is not None  # an alert action has exactly one target
    return _to_file(alert, action.file, Path(project_root))


def webhook_payload(alert: Alert) -> dict[str, Any]:
    """The JSON a webhook receives: Slack's `text` and `blocks`, and `loopline` (the
    alert as a dict) for generic receivers."""
    text = alert.line
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(text)}}
    ]
    if alert.link:
        link = f"<{_slack_escape(alert.link)}|open the report>"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": link}]})
    return {"text": text, "blocks": blocks, "loopline": alert.to_dict()}


def _to_webhook(
    alert: Alert, action: Action, timeout: float, attempts: int, backoff: float
) -> Delivery:
    from loopline.monitoring._webhook import post_json

    assert action.webhook is not None
    body = json.dumps(webhook_payload(alert), allow_nan=False).encode("utf-8")
    result = post_json(
        action.webhook,
        body,
        allow_hosts=action.allow_hosts,
        timeout=timeout,
        attempts=attempts,
        backoff=backoff,
    )
    if not result.ok:
        logger.warning("alert for %s not delivered: %s", alert.deployment, result.error)
    return Delivery(
        "webhook", result.target, result.ok, result.status, result.error, result.attempts
    )


def _to_file(alert: Alert, logical: str, project_root: Path) -> Delivery:
    """Append the alert as one JSON line; O_APPEND makes the one write land whole at the
    end whatever other writers do, fsync makes it survive a crash."""
    from loopline.store import resolve_under

    line = json.dumps(alert.to_dict(), allow_nan=False, ensure_ascii=False) + "\n"
    data = line.encode("utf-8")
    if not project_root.is_dir():
        return Delivery("file", logical, False, error=f"no project folder at {project_root}")
    try:
        path = resolve_under(project_root, logical)
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        descriptor = os.open(path, flags, 0o644)
    except InvalidPath as exc:
        return Delivery("file", logical, False, error=exc.message, attempts=0)
    except OSError as exc:
        return Delivery("file", logical, False, error=f"cannot open {logical}: {exc.strerror}")
    try:
        written = 0
        while written < len(data):
            written += os.write(descriptor, data[written:])
        os.fsync(descriptor)
    except OSError as exc:
        return Delivery("file", logical, False, error=f"cannot append to {logical}: {exc.strerror}")
    finally:
        os.close(descriptor)
    return Delivery("file", logical, True)


def _json_ready(value: Any) -> Any:
    """`value` as plain JSON data: mappings with text keys, lists, finite numbers (NaN and
    infinity become None), numpy scalars as Python numbers, datetimes in ISO 8601."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_ready(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy scalars, without importing numpy
    if callable(item):
        try:
            return _json_ready(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def _slack_escape(text: str) -> str:
    return "".join(_SLACK_ESCAPES.get(ch, ch) for ch in text)


def _check_positive(name: str, value: object, *, zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise InvalidInput(f"{name} must be a positive finite number of seconds, got {value!r}")

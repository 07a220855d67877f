"""Verifying the audit log's hash chain (`loopline audit verify`, `AuditLog.verify`).

The walk reads the head and every event in one snapshot, in `seq` order, and checks that
each event's hash matches its fields, that its `prev_hash` is the hash of the event
before it, that `seq` runs 1, 2, 3, ... without a gap, and that the stored head is the
last event. It reports, one line each (the first `limit` of them):

- an edited event: a field (actor, action, object, before/after, reason, time, id)
  changed after the fact, or its hash replaced by one that does not match;
- a deleted event: a gap in `seq`, or events missing from the end (the head says more);
- a reordered event: one whose hash matches its fields at another position, or that is
  chained after another event than the one before it;
- a forged hash: an event edited and its hash recomputed, so that it matches its new
  fields, but the next event was chained to the old hash;
- a head that does not match the chain's end, or a chain without its head record.

What it cannot detect. The hashes are not secret (no key), so someone with write access
to the database who edits an event and then recomputes every hash after it, and the
head, leaves a chain that verifies. The defence is to keep the head elsewhere: `verify`
prints the head hash; record it outside the database (a ticket, a signed commit, another
system's log) and later pass it as `expect_head` (`--expect-head`): if any event up to
that head was rewritten, that hash is no longer in the chain and `verify` says so. Events
appended after the recorded head are only as safe as the database until the next head is
recorded. Deleting the whole log (and the head) is visible only the same way. The log
records what loopline was asked to do and by whom as loopline authenticated them; it
does not prove the actor is who they say they are beyond that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from loopline.errors import InvalidInput
from loopline.store._audit_chain import GENESIS, event_hash
from loopline.store._schema import audit_events, audit_head

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy import Connection, Engine

_HASH = re.compile(r"[0-9a-f]{64}")
_YIELD = 2000


@dataclass(frozen=True)
class AuditChainProblem:
    """One thing wrong with the chain: where (`seq`, None for the whole chain), what kind
    (edited, missing, reordered, forged, head, expected-head) and a line for people."""

    seq: int | None
    kind: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class AuditChainReport:
    """The result of a walk: how many events, the chain's end, and the problems found."""

    count: int
    head_seq: int  # the last event's seq (0: no event)
    head_hash: str  # the last event's hash (GENESIS: no event); record it elsewhere
    problems: tuple[AuditChainProblem, ...]  # the first `limit`, in chain order
    problem_count: int  # all of them
    expected_head_seq: int | None = None  # where `expect_head` was found, if it was

    @property
    def ok(self) -> bool:
        return self.problem_count == 0


def verify_chain(
    engine: Engine, *, expect_head: str | None = None, limit: int = 20, cap: int = 1000
) -> AuditChainReport:
    """Walk the whole chain in one snapshot; see the module docstring. `limit` (at most
    `cap`) is how many problems are described."""
    expected = _check_arguments(expect_head, limit, cap)
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # one snapshot for the head and every event
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            return _Walk(limit, expected).run(conn)


def _check_arguments(expect_head: str | None, limit: object, cap: int) -> str | None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= cap:
        raise InvalidInput(f"the problem limit must be an integer from 1 to {cap}, got {limit!r}")
    if expect_head is None:
        return None
    if not isinstance(expect_head, str) or not _HASH.fullmatch(expect_head.strip().lower()):
        raise InvalidInput(
            f"an expected head is 64 hexadecimal characters, got {expect_head!r}",
            hint="use the head hash a previous `loopline audit verify` printed",
        )
    return expect_head.strip().lower()


class _Walk:
    """The state of one walk: the event before, the problems so far, the suspects."""

    def __init__(self, limit: int, expected: str | None) -> None:
        self.limit = limit
        self.expected = expected
        self.expected_at: int | None = 0 if expected == GENESIS else None
        self.count = 0
        self.total = 0
        self.problems: list[AuditChainProblem] = []
        self.suspects: list[tuple[dict[str, Any], str]] = []  # (event, "content" | "link")
        self.prev_seq = 0
        self.prev_hash = GENESIS
        self.prev_intact = True

    def run(self, conn: Connection) -> AuditChainReport:
        head = conn.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        ).first()
        stream = conn.execution_options(yield_per=_YIELD).execute(
            select(audit_events).order_by(audit_events.c.seq)
        )
        for row in stream.mappings():
            self._step(row)
        found = self._classify(conn)
        head_problems = self._head(head)
        problems = sorted(self.problems + found, key=lambda p: p.seq or 0)[: self.limit]
        return AuditChainReport(
            count=self.count,
            head_seq=self.prev_seq,
            head_hash=self.prev_hash,
            problems=tuple(problems + head_problems),
            problem_count=self.total,
            expected_head_seq=self.expected_at,
        )

    def _step(self, row: Mapping[Any, Any]) -> None:
        self.count += 1
        seq = int(row["seq"])
        intact = event_hash(row) == row["hash"]
        gap = seq != self.prev_seq + 1
        if gap:
            first, last = self.prev_seq + 1, seq - 1
            self._problem(first, "missing", f"{_events(first, last)} missing: deleted")
        if not intact:
            self._suspect(row, "content")
        elif not gap and self.prev_intact and row["prev_hash"] != self.prev_hash:
            self._suspect(row, "link")
        if row["hash"] == self.expected:
            self.expected_at = seq
        self.prev_seq, self.prev_hash, self.prev_intact = seq, str(row["hash"]), intact

    def _problem(self, seq: int, kind: str, message: str) -> None:
        self.total += 1
        if len(self.problems) < self.limit:
            self.problems.append(AuditChainProblem(seq, kind, message))

    def _suspect(self, row: Mapping[str, Any], why: str) -> None:
        self.total += 1
        if len(self.suspects) < self.limit:
            self.suspects.append((dict(row), why))

    def _classify(self, conn: Connection) -> list[AuditChainProblem]:
        """Name each suspect's problem, finding where its `prev_hash` points (one query)."""
        wanted = {event["prev_hash"] for event, _ in self.suspects} - {GENESIS}
        positions = {GENESIS: 0}
        if wanted:
            query = select(audit_events.c.seq, audit_events.c.hash).where(
                audit_events.c.hash.in_(sorted(wanted))
            )
            positions.update({str(r.hash): int(r.seq) for r in conn.execute(query)})
        return [
            _named(event, why, positions.get(event["prev_hash"])) for event, why in self.suspects
        ]

    def _head(self, head: Any) -> list[AuditChainProblem]:
        problems = []
        last = self.prev_seq
        if head is None:
            if last > 0:  # an emptied store has neither events nor head: nothing is missing
                message = "the chain's head record is missing"
                problems.append(AuditChainProblem(None, "head", message))
        elif int(head.seq) > last:
            message = f"{_events(last + 1, int(head.seq))} missing from the end: deleted"
            problems.append(AuditChainProblem(None, "missing", message))
        elif int(head.seq) < last:
            message = (
                f"{_events(int(head.seq) + 1, last)} after the recorded head "
                f"(#{head.seq}): written outside loopline, or the head was moved back"
            )
            problems.append(AuditChainProblem(None, "head", message))
        elif head.hash != self.prev_hash:
            message = (
                f"the recorded head {_short(head.hash)} is not the last event's hash "
                f"{_short(self.prev_hash)}: the last event or the head was rewritten"
            )
            problems.append(AuditChainProblem(None, "head", message))
        if self.expected is not None and self.expected_at is None:
            message = (
                f"the expected head {_short(self.expected)} is in no event: the history up "
                "to it was rewritten or deleted"
            )
            problems.append(AuditChainProblem(None, "expected-head", message))
        self.total += len(problems)
        return problems


def _named(event: dict[str, Any], why: str, after: int | None) -> AuditChainProblem:
    """The problem of an event that failed a check: `why` which one, `after` the seq of
    the event its `prev_hash` names (None: no stored event has that hash)."""
    seq = int(event["seq"])
    what = _describe(event)
    if why == "content":
        if (
            after is not None
            and after + 1 != seq
            and event_hash({**event, "seq": after + 1}) == (event["hash"])
        ):
            return AuditChainProblem(
                seq, "reordered", f"event #{seq} ({what}) was moved: it was written as #{after + 1}"
            )
        return AuditChainProblem(
            seq,
            "edited",
            f"event #{seq} ({what}) was edited: its fields do not match its hash",
        )
    if after is None:
        before = (
            f"event #{seq - 1} has a forged hash" if seq > 1 else "the chain's start was forged"
        )
        return AuditChainProblem(
            seq - 1,
            "forged",
            f"{before}: event #{seq} was chained to {_short(event['prev_hash'])}, "
            "which no stored event has (an event edited and re-hashed, or replaced)",
        )
    return AuditChainProblem(
        seq,
        "reordered",
        f"event #{seq} ({what}) is chained after event #{after}, not #{seq - 1}: "
        "events were reordered or rewritten",
    )


def _describe(event: Mapping[str, Any]) -> str:
    return f"{_clip(event['action'])} on {_clip(event['object_id'])} by {_clip(event['actor'])}"


def _clip(value: object, width: int = 40) -> str:
    text = repr(value) if not isinstance(value, str) or not value.isprintable() else value
    return text if len(text) <= width else text[: width - 1] + "…"


def _short(digest: object) -> str:
    return _clip(digest, 16)


def _events(first: int, last: int) -> str:
    return f"event #{first} is" if first == last else f"events #{first}..#{last} are"

"""`loopline audit verify` on SQLite and PostgreSQL: OK with the count and the head hash to
keep, or one line per problem and exit 5; `--expect-head` catches a rewritten history."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from loopline.cli.app import run as loopline_cli
from loopline.project import Stores


def _sql(project: Stores, statement: str) -> None:
    with project.metadata.db.engine.begin() as conn:
        conn.execute(text(statement))


def _verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = loopline_cli(["audit", "verify", *args])
    captured = capsys.readouterr()
    return code, captured.out.strip().splitlines(), captured.err.strip()


def test_verify_prints_ok_and_the_head_then_one_line_per_problem_and_exit_5(
    project: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _verify(capsys)[:2] == (0, [f"audit log OK: 0 events, head #0 {'0' * 64}"])
    for n in range(8):  # an actor with Rich markup must print as it is
        project.metadata.audit.record(
            actor="[red]eve[/red]" if n == 2 else "ann",
            action="alias.set",
            object_type="model",
            object_id=f"churn@a{n}",
        )
    code, out, err = _verify(capsys)
    head = project.metadata.audit.verify().head_hash
    assert (code, out, err) == (0, [f"audit log OK: 8 events, head #8 {head}"], "")
    _sql(project, "UPDATE audit_events SET reason = 'edited' WHERE seq IN (2, 3, 4)")
    _sql(project, "DELETE FROM audit_events WHERE seq = 6")

    code, out, err = _verify(capsys)
    assert code == 5
    assert out == [
        "event #2 (alias.set on churn@a1 by ann) was edited: its fields do not match its hash",
        "event #3 (alias.set on churn@a2 by [red]eve[/red]) was edited: its fields do not "
        "match its hash",
        "event #4 (alias.set on churn@a3 by ann) was edited: its fields do not match its hash",
        "event #6 is missing: deleted",
        f"audit log BROKEN: 7 events, head #8 {head}",
    ]
    assert err == "Error: the audit log failed verification: 4 problems in 7 events"

    code, out, _ = _verify(capsys, "--max-problems", "2")
    assert code == 5 and out[2:] == ["... and 2 more problems", out[-1]] and len(out) == 4

    code, out, _ = _verify(capsys, "--json")
    body = json.loads("\n".join(out))
    assert code == 5 and body["ok"] is False and body["problem_count"] == 4
    assert [(p["seq"], p["kind"]) for p in body["problems"]] == [
        (2, "edited"),
        (3, "edited"),
        (4, "edited"),
        (6, "missing"),
    ]


def test_expect_head_finds_a_rewritten_history_and_rejects_a_malformed_hash(
    project: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(3):
        project.metadata.audit.record(
            actor="ann", action="alias.set", object_type="model", object_id=f"m{n}"
        )
    kept = project.metadata.audit.verify().head_hash
    project.metadata.audit.record(actor="bob", action="x", object_type="model", object_id="m")
    code, out, _ = _verify(capsys, "--expect-head", kept)
    assert code == 0 and out[-1].endswith("; the expected head is event #3 (1 since)")

    code, out, err = _verify(capsys, "--expect-head", "ab" * 32)
    assert code == 5
    assert out[0].startswith("the expected head abababababababa… is in no event")
    assert err.startswith("Error: the audit log failed verification: 1 problem in 4 events")

    for bad in ("xyz", "../../etc/passwd", "0" * 65):
        code, out, err = _verify(capsys, "--expect-head", bad)
        assert code == 2 and out == [], bad
        assert err.splitlines()[0].startswith("Error: an expected head is 64 hexadecimal")
        assert "Traceback" not in err
    code, out, err = _verify(capsys, "--max-problems", "0")
    assert code == 2 and "Traceback" not in err

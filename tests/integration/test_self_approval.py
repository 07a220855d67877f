"""Nobody approves their own promotion, on SQLite and PostgreSQL: the requester of a
waiting promotion cannot approve it (one clear error, audited, nothing stored), and an
approval counts towards a promotion only when someone else gave it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopline as ll
from loopline.cli.app import run as loopline_cli
from loopline.errors import Forbidden, SelfApproval
from loopline.project import Stores
from loopline.promotion import policy_from_yaml
from loopline.store import ModelStatus

NEEDS_APPROVAL = policy_from_yaml("require_approval: true\n")


def _version() -> str:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    target = (frame["a"] > 0).astype(int)
    with ll.start_run(experiment="churn"):
        model = LogisticRegression().fit(frame, target)
        return ll.models.log_model(model, name="churn", input_example=frame.head(3)).ref


def test_the_requester_cannot_approve_their_own_promotion_and_another_user_can(
    project: Stores,
) -> None:
    ref = _version()
    waiting = ll.promotion.promote(
        ref, alias="champion", reason="ready", policy=NEEDS_APPROVAL, actor="alice"
    )
    assert waiting.awaiting_approval
    with pytest.raises(SelfApproval, match="alice requested the promotion of churn/1") as caught:
        ll.promotion.approve(ref, reason="looks fine to me", actor="alice")
    assert isinstance(caught.value, Forbidden) and caught.value.http_status == 403
    assert ll.promotion.list_approvals(ref) == []  # nothing was approved
    assert ll.registry.resolve(ref).status == ModelStatus.STAGING
    assert ll.registry.get_model("churn").aliases == {}
    [refused] = ll.registry.audit_log(action="model_version.self_approval_refused")
    assert (refused.actor, refused.object_id) == ("alice", "churn/1")

    done = ll.promotion.approve(ref, reason="risk review passed", actor="bob")
    assert done is not None and done.version.status == ModelStatus.PRODUCTION
    assert ll.registry.get_model("churn").aliases == {"champion": 1}
    [approval] = ll.promotion.list_approvals(ref)
    assert approval.actor == "bob"
    status = ll.registry.audit_log(object_id=ref, action="model_version.status")[0]
    assert status.actor == "bob" and status.after == {"status": "production"}
    assert ll.registry.verify_audit_log().ok


def test_an_approval_counts_only_when_someone_other_than_the_requester_gave_it(
    project: Stores,
) -> None:
    ref = _version()
    assert ll.promotion.approve(ref, reason="pre-approved", actor="alice") is None
    waiting = ll.promotion.promote(ref, reason="ship it", policy=NEEDS_APPROVAL, actor="alice")
    assert waiting.awaiting_approval  # alice's own earlier approval is not a second check
    assert waiting.version.status == ModelStatus.STAGING
    ll.promotion.approve(ref, reason="checked", actor="bob")
    assert ll.registry.resolve(ref).status == ModelStatus.PRODUCTION

    second = _version()
    ll.promotion.approve(second, reason="pre-approved", actor="bob")
    done = ll.promotion.promote(second, reason="ship it", policy=NEEDS_APPROVAL, actor="alice")
    assert not done.awaiting_approval and done.version.status == ModelStatus.PRODUCTION


def test_self_approval_on_the_command_line_is_one_error_line_and_exit_13(
    project: Stores, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _version()
    (project.settings.root / "loopline.toml").write_text("[gates]\nrequire_approval = true\n")
    monkeypatch.setenv("LOOPLINE_USER", "carol")
    assert loopline_cli(["models", "promote", ref, "--reason", "ready"]) == 0
    capsys.readouterr()
    assert loopline_cli(["models", "approve", ref, "--reason", "mine"]) == 13
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines[0] == "Error: carol requested the promotion of churn/1 and cannot approve it"
    assert "Traceback" not in captured.err and len(lines) == 2  # the error and its hint
    monkeypatch.setenv("LOOPLINE_USER", "dave")
    assert loopline_cli(["models", "approve", ref, "--reason", "second pair of eyes"]) == 0
    assert "production" in capsys.readouterr().out

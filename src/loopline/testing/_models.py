"""Conformance checks of the model registry's storage: version numbers under concurrent
registration, status changes, and alias moves that serialize with their audit events."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

from loopline.errors import Conflict, InvalidInput, NotFound
from loopline.registry import rules
from loopline.store import MetadataStore, ModelStatus
from loopline.testing._common import Check, add_model_version
from loopline.testing._common import raises as _raises


def check_model_versions(store: MetadataStore) -> None:
    with ThreadPoolExecutor(4) as pool:
        numbers = sorted(pool.map(lambda _: add_model_version(store), range(6)))
    assert numbers == [1, 2, 3, 4, 5, 6]
    models = store.models
    assert models.latest_version("churn").version == 6
    assert models.get_version("churn", 2).status == ModelStatus.CANDIDATE
    assert [v.version for v in models.list_versions("churn")] == [6, 5, 4, 3, 2, 1]
    _raises(NotFound, lambda: models.get_version("churn", 9))
    _raises(NotFound, lambda: models.get_model("nope"))
    _raises(InvalidInput, lambda: models.get_model("../x"))
    before, moved = rules.change_status(
        models, "churn", 1, ModelStatus.STAGING, actor="t", reason=None
    )
    assert before == ModelStatus.CANDIDATE and moved.status == ModelStatus.STAGING
    _raises(
        Conflict,
        lambda: rules.change_status(
            models, "churn", 1, ModelStatus.CANDIDATE, actor="t", reason=None
        ),
    )
    rules.change_status(models, "churn", 2, ModelStatus.ARCHIVED, actor="t", reason="old")
    _raises(
        Conflict,
        lambda: rules.change_status(
            models, "churn", 2, ModelStatus.PRODUCTION, actor="t", reason=None
        ),
    )
    _raises(Conflict, lambda: rules.move_alias(models, "churn", "champion", 2, actor="t"))


def check_alias_moves_serialize(store: MetadataStore) -> None:
    for _ in range(3):
        add_model_version(store, "race")
    models = store.models

    def move(version: int) -> None:
        for _ in range(4):
            rules.move_alias(models, "race", "champion", version, actor=f"writer{version}")

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(move, [1, 2, 3]))
    champion = models.get_model("race").aliases["champion"]
    events = list(reversed(store.audit.list_events(object_id="race@champion")))
    assert len(events) == 12
    assert events[0].before is None
    for earlier, later in pairwise(events):
        assert later.before == earlier.after, "an alias move read a stale previous target"
    assert events[-1].after == {"version": champion}
    assert models.version_for_alias("race", "champion").version == champion
    assert rules.remove_alias(models, "race", "champion", actor="t") == champion
    _raises(NotFound, lambda: models.version_for_alias("race", "champion"))


CHECKS: list[Check] = [check_model_versions, check_alias_moves_serialize]

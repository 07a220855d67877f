"""Conformance checks of the runs store: experiments, runs, params, tags, metrics, search
(filters, ordering, LIKE escapes), links, and secrets masked before they are stored."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

from loopline.errors import Conflict, InvalidFilter, InvalidInput, NotFound
from loopline.store import Direction, LinkKind, MetadataStore, RunStatus
from loopline.store.query import Compare, Field
from loopline.testing._common import Check
from loopline.testing._common import raises as _raises
from loopline.tracking._filter import parse_filter, parse_order_by


def _run(store: MetadataStore, experiment: str = "exp", **kwargs: object) -> str:
    exp = store.runs.get_or_create_experiment(experiment)
    return store.runs.create_run(exp.id, user="tester", source="pytest", **kwargs).id  # type: ignore[arg-type]


def _search(store: MetadataStore, text: str | None, order: list[str] | None = None) -> list[str]:
    found = store.runs.search_runs(
        None, parse_filter(text), parse_order_by(order), max_results=1000
    )
    return [run.id for run in found]


def check_experiments(store: MetadataStore) -> None:
    first = store.runs.get_or_create_experiment("churn")
    assert store.runs.get_or_create_experiment("churn") == first
    assert store.runs.get_experiment("churn").id == first.id
    assert store.runs.get_experiment(first.id).name == "churn"
    _raises(NotFound, lambda: store.runs.get_experiment("nope"))
    _raises(InvalidInput, lambda: store.runs.get_or_create_experiment("a/b"))
    _raises(InvalidInput, lambda: store.runs.get_or_create_experiment(""))
    _run(store, "churn")
    counts = {e.name: e.run_count for e in store.runs.list_experiments()}
    assert counts == {"churn": 1}


def check_concurrent_experiment_creation(store: MetadataStore) -> None:
    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda _: store.runs.get_or_create_experiment("race").id, range(16)))
    assert len(ids) == 1


def check_run_lifecycle(store: MetadataStore) -> None:
    run_id = _run(store, name="first")
    run = store.runs.get_run(run_id)
    assert (run.name, run.status, run.end_time, run.user) == (
        "first",
        RunStatus.RUNNING,
        None,
        "tester",
    )
    assert run.start_time.tzinfo is not None
    ended = store.runs.end_run(run_id, "failed", error="ValueError: boom")
    assert ended.status is RunStatus.FAILED and ended.error == "ValueError: boom"
    assert ended.end_time is not None and ended.end_time >= ended.start_time
    _raises(InvalidInput, lambda: store.runs.end_run(run_id, "RUNNING"))
    _raises(InvalidInput, lambda: store.runs.end_run(run_id, "bogus"))
    child = _run(store, parent_id=run_id)
    assert store.runs.get_run(child).parent_id == run_id
    assert store.runs.resolve_run_id(run_id[:8]) == run_id
    _raises(InvalidInput, lambda: store.runs.resolve_run_id("../../etc"))
    _raises(NotFound, lambda: store.runs.get_run("0" * 32))
    _raises(InvalidInput, lambda: store.runs.get_run("x'; drop table runs; --"))


def check_params_are_immutable(store: MetadataStore) -> None:
    run_id = _run(store)
    store.runs.log_params(run_id, {"C": 1.0, "model": "rf", "depth": 6})
    store.runs.log_params(run_id, {"C": 1.0})  # the same value again is a no-op
    _raises(Conflict, lambda: store.runs.log_params(run_id, {"C": 2.0}))
    assert store.runs.get_run(run_id).params == {"C": "1.0", "depth": "6", "model": "rf"}
    _raises(InvalidInput, lambda: store.runs.log_params(run_id, {"../x": 1}))
    _raises(NotFound, lambda: store.runs.log_params("f" * 32, {"a": 1}))


def check_tags_are_mutable(store: MetadataStore) -> None:
    run_id = _run(store)
    store.runs.set_tags(run_id, {"team": "risk", "stage": "dev"})
    store.runs.set_tags(run_id, {"team": "growth"})
    assert store.runs.get_run(run_id).tags == {"stage": "dev", "team": "growth"}
    store.runs.delete_tag(run_id, "stage")
    assert store.runs.get_run(run_id).tags == {"team": "growth"}
    _raises(NotFound, lambda: store.runs.delete_tag(run_id, "stage"))


def check_metrics_nan_inf_and_latest(store: MetadataStore) -> None:
    run_id = _run(store)
    store.runs.log_metric_points(
        [
            (run_id, "loss", 0.5, 0, 1000),
            (run_id, "loss", 0.3, 2, 1002),
            (run_id, "loss", 0.4, 1, 1003),  # an older step arriving late
            (run_id, "odd", math.nan, 0, 1000),
            (run_id, "big", math.inf, 0, 1000),
            (run_id, "small", -math.inf, 0, 1000),
        ]
    )
    store.runs.log_metric_points([(run_id, "loss", 0.9, 1, 1004)])  # still older than step 2
    metrics = store.runs.get_run(run_id).metrics
    assert metrics["loss"] == 0.3 and math.isnan(metrics["odd"])
    assert metrics["big"] == math.inf and metrics["small"] == -math.inf
    history = store.runs.get_metric_history(run_id, "loss")
    assert [(p.step, p.value) for p in history] == [(0, 0.5), (1, 0.4), (1, 0.9), (2, 0.3)]
    assert store.runs.list_metric_keys(run_id) == ["big", "loss", "odd", "small"]
    assert store.runs.get_metric_history(run_id, "absent") == []


def check_points_of_an_unknown_run_are_refused_whole(store: MetadataStore) -> None:
    run_id = _run(store)
    unknown = "0" * 32
    points = [(run_id, "loss", 0.5, 0, 1000), (unknown, "loss", 0.4, 0, 1000)]
    error = _raises(NotFound, lambda: store.runs.log_metric_points(points))
    assert unknown in str(error)
    assert store.runs.get_metric_history(run_id, "loss") == []  # nothing of the batch


def check_a_metric_batch_is_applied_once(store: MetadataStore) -> None:
    """A batch sent again with its id (its answer was lost) is acknowledged and stored
    once, also when the copies arrive at the same time; a refused batch uses up no id."""
    run_id = _run(store)
    batch = [(run_id, "loss", 0.5, 0, 1000), (run_id, "loss", 0.4, 1, 1001)]
    store.runs.log_metric_points(batch, "ab" * 16)
    store.runs.log_metric_points(batch, "ab" * 16)
    store.runs.log_metric_points(batch[:1], "cd" * 16)  # another batch: stored again
    history = store.runs.get_metric_history(run_id, "loss")
    assert [(p.step, p.value) for p in history] == [(0, 0.5), (0, 0.5), (1, 0.4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: store.runs.log_metric_points(batch, "ef" * 16), range(8)))
    assert len(store.runs.get_metric_history(run_id, "loss")) == 5
    refused = [(run_id, "acc", 0.9, 0, 1000), ("0" * 32, "acc", 0.9, 0, 1000)]
    _raises(NotFound, lambda: store.runs.log_metric_points(refused, "12" * 16))
    store.runs.log_metric_points(refused[:1], "12" * 16)
    assert [p.value for p in store.runs.get_metric_history(run_id, "acc")] == [0.9]
    _raises(InvalidInput, lambda: store.runs.log_metric_points(batch, "../batch"))


def check_search_filters(store: MetadataStore) -> None:
    ids = []
    for index, (model, auc) in enumerate(
        [("rf", 0.95), ("rf", 0.85), ("lr", 0.91), ("lr", math.nan)]
    ):
        run_id = _run(store)
        store.runs.log_params(run_id, {"model": model, "depth": index})
        store.runs.set_tags(run_id, {"team": "risk" if index % 2 == 0 else "growth"})
        store.runs.log_metric_points([(run_id, "auc", auc, 0, 1000 + index)])
        ids.append(run_id)
    assert set(_search(store, "metrics.auc > 0.9")) == {ids[0], ids[2]}
    assert set(_search(store, "metrics.auc > 0.9 and params.model = 'rf'")) == {ids[0]}
    assert set(_search(store, "params.model = 'lr' or tags.team = 'growth'")) == set(ids[1:])
    assert set(_search(store, "params.depth = 2")) == {ids[2]}
    assert set(_search(store, "params.model in ('rf', 'xx')")) == {ids[0], ids[1]}
    assert set(_search(store, "params.model LIKE 'R%'")) == set()  # LIKE is case-sensitive
    assert set(_search(store, "params.model ILIKE 'R%'")) == {ids[0], ids[1]}
    assert set(_search(store, "metrics.auc = nan")) == {ids[3]}
    assert set(_search(store, "metrics.missing is null")) == set(ids)
    assert set(_search(store, "attributes.status = 'running'")) == set(ids)
    assert _search(store, "params.model = 'x'' or 1=1 --'") == []
    assert _search(store, None, ["metrics.auc desc"]) == [ids[0], ids[2], ids[1], ids[3]]
    assert _search(store, None, ["metrics.auc asc"]) == [ids[1], ids[2], ids[0], ids[3]]
    _raises(InvalidFilter, lambda: parse_filter("metrics.auc >> 1"))


def check_search_scoping(store: MetadataStore) -> None:
    one, two = _run(store, "one"), _run(store, "two")
    exp_one = store.runs.get_experiment("one").id
    assert [r.id for r in store.runs.search_runs([exp_one])] == [one]
    store.runs.set_deleted(two, True)
    assert [r.id for r in store.runs.search_runs()] == [one]
    assert {r.id for r in store.runs.search_runs(include_deleted=True)} == {one, two}
    store.runs.set_deleted(two, False)
    assert len(store.runs.search_runs(max_results=1)) == 1
    _raises(InvalidInput, lambda: store.runs.search_runs(max_results=0))


def check_links(store: MetadataStore) -> None:
    run_id = _run(store)
    store.runs.add_links(
        run_id, Direction.OUTPUT, LinkKind.ARTIFACT, [("a.txt", "h1", 3), ("b/c", "h2", 5)]
    )
    store.runs.add_links(run_id, Direction.OUTPUT, LinkKind.ARTIFACT, [("a.txt", "h3", 4)])
    store.runs.add_links(
        run_id, Direction.INPUT, LinkKind.DATASET_VERSION, [("credit", "v3", None)]
    )
    outputs = store.runs.list_links(run_id, Direction.OUTPUT)
    assert [(link.name, link.ref) for link in outputs] == [("a.txt", "h3"), ("b/c", "h2")]
    inputs = store.runs.list_links(run_id, Direction.INPUT)
    assert [(link.kind, link.ref) for link in inputs] == [(LinkKind.DATASET_VERSION, "v3")]


def check_like_escapes_match_alike(store: MetadataStore) -> None:
    """LIKE/ILIKE: a backslash escapes `%`, `_` and itself on every back-end."""
    values = ["%", "50%", "50x", "a_b", "axb", "A_B", "back\\slash", "backslash"]
    ids = {}
    for value in values:
        run_id = _run(store)
        store.runs.log_params(run_id, {"v": value})
        ids[value] = run_id

    def found(text: str) -> set[str]:
        by_id = {run_id: value for value, run_id in ids.items()}
        return {by_id[run_id] for run_id in _search(store, text)}

    assert found(r"params.v LIKE '\%'") == {"%"}
    assert found(r"params.v LIKE '50\%'") == {"50%"}
    assert found(r"params.v LIKE '50%'") == {"50%", "50x"}
    assert found(r"params.v LIKE 'a\_b'") == {"a_b"}
    assert found(r"params.v LIKE 'a_b'") == {"a_b", "axb"}
    assert found(r"params.v ILIKE 'a\_b'") == {"a_b", "A_B"}
    # the string literal reads \\ as \, so four backslashes are one literal backslash
    assert found(r"params.v LIKE 'back\\\\slash'") == {"back\\slash"}
    assert found(r"params.v LIKE '%\\\\%'") == {"back\\slash"}
    assert found(r"params.v LIKE 'back\\slash'") == {"backslash"}  # \s is a literal s
    _raises(InvalidFilter, lambda: parse_filter(r"params.v LIKE 'abc\\'"))
    lone = Compare(Field("param", "v"), "like", "abc\\")
    _raises(InvalidFilter, lambda: store.runs.search_runs(None, lone))


def check_secrets_never_reach_the_database(store: MetadataStore) -> None:
    """A run's command line, error, params and tags are stored with secrets masked."""
    secrets = ["hunter2", "sk-live0123456789abcdefXYZ", "s3cret"]
    source = (
        "train.py --db-password=hunter2 --api-key sk-live0123456789abcdefXYZ "
        "--db postgresql+psycopg://loopline:s3cret@db:5432/loopline"
    )
    exp = store.runs.get_or_create_experiment("exp")
    run_id = store.runs.create_run(exp.id, user="tester", source=source).id
    store.runs.log_params(run_id, {"dsn": "postgresql://u:s3cret@db/x", "model": secrets[1]})
    store.runs.set_tags(run_id, {"url": "https://u:hunter2@example.com/"})
    store.runs.end_run(
        run_id, "failed", error="OperationalError: postgresql://u:s3cret@db/x refused"
    )
    run = store.runs.get_run(run_id)
    shown = " ".join([run.source, run.error or "", *run.params.values(), *run.tags.values()])
    assert not [s for s in secrets if s in shown], shown
    assert "--db-password=***" in run.source and "loopline:***@db" in run.source
    for secret in secrets:  # the search runs on what is stored, not on what is shown
        for field in ("attributes.source", "params.dsn", "params.model", "tags.url"):
            assert _search(store, f"{field} LIKE '%{secret}%'") == [], (field, secret)


CHECKS: list[Check] = [
    check_experiments,
    check_concurrent_experiment_creation,
    check_run_lifecycle,
    check_params_are_immutable,
    check_tags_are_mutable,
    check_metrics_nan_inf_and_latest,
    check_points_of_an_unknown_run_are_refused_whole,
    check_a_metric_batch_is_applied_once,
    check_search_filters,
    check_search_scoping,
    check_like_escapes_match_alike,
    check_secrets_never_reach_the_database,
    check_links,
]

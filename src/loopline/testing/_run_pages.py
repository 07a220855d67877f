"""Conformance checks of the web UI's queries: one sorted page of a search with the
number of matches, the keys an experiment's runs hold, each experiment's last run, and
a range of a metric's points as columns (a chart's read)."""

from __future__ import annotations

import math
import time

from loopline.errors import InvalidInput, NotFound
from loopline.store import MetadataStore, MetricSpan
from loopline.testing._common import Check
from loopline.testing._common import raises as _raises
from loopline.tracking._filter import parse_filter, parse_order_by


def _paged_runs(store: MetadataStore) -> list[str]:
    """Seven ended runs of experiment "paged": metric m = index (NaN for the last), param
    p = index, tag t; run i lasted (7 - i) minutes. One run elsewhere, one deleted."""
    exp = store.runs.get_or_create_experiment("paged")
    ids = []
    for index in range(7):
        run = store.runs.create_run(
            exp.id, user="tester", params={"p": index}, tags={"t": f"v{index % 2}"}
        )
        value = math.nan if index == 6 else float(index)
        store.runs.log_metric_points([(run.id, "m", value, 0, 1000)])
        start_ms = int(run.start_time.timestamp() * 1000)
        store.runs.update_run(
            run.id, status="FINISHED", end_time_ms=start_ms + (7 - index) * 60_000
        )
        ids.append(run.id)
    other = store.runs.get_or_create_experiment("elsewhere")
    store.runs.create_run(other.id, user="tester", params={"q": 1})
    gone = store.runs.create_run(exp.id, user="tester", params={"deleted_key": 1})
    store.runs.set_deleted(gone.id, True)
    return ids


def check_search_pages(store: MetadataStore) -> None:
    ids = _paged_runs(store)
    exp = [store.runs.get_experiment("paged").id]

    def page(text: str | None, order: str, offset: int, limit: int) -> tuple[list[str], int]:
        found = store.runs.search_runs_page(
            exp, parse_filter(text), parse_order_by([order]), offset=offset, limit=limit
        )
        assert found.offset == offset
        return [run.id for run in found.runs], found.total

    by_metric = [ids[5], ids[4], ids[3], ids[2], ids[1], ids[0], ids[6]]  # NaN last
    assert page(None, "metrics.m desc", 0, 3) == (by_metric[:3], 7)
    assert page(None, "metrics.m desc", 3, 3) == (by_metric[3:6], 7)
    assert page(None, "metrics.m desc", 6, 3) == (by_metric[6:], 7)
    assert page(None, "metrics.m desc", 9, 3) == ([], 7)
    assert page("metrics.m >= 2 and tags.t = 'v0'", "params.p asc", 0, 50) == (
        [ids[2], ids[4]],
        2,
    )
    assert page("metrics.m >= 2", "params.p asc", 3, 5) == ([ids[5]], 4)  # counted alike
    assert page("metrics.m >= 2", "params.p asc", 10, 5) == ([], 4)  # past the end
    assert page(None, "attributes.duration asc", 0, 2) == ([ids[6], ids[5]], 7)
    assert page(None, "attributes.duration desc", 0, 2) == ([ids[0], ids[1]], 7)
    _raises(InvalidInput, lambda: store.runs.search_runs_page(exp, offset=-1))
    _raises(InvalidInput, lambda: store.runs.search_runs_page(exp, limit=0))


def check_run_keys_and_last_runs(store: MetadataStore) -> None:
    ids = _paged_runs(store)
    exp = store.runs.get_experiment("paged")
    keys = store.runs.run_keys(exp.id)
    assert (keys.params, keys.metrics, keys.tags) == (("p",), ("m",), ("t",))
    time.sleep(0.002)  # a start time of its own, after the others'
    newest = store.runs.create_run(exp.id, user="tester", params={"late": 1})
    assert store.runs.run_keys(exp.id, newest=1).params == ("late",)
    assert store.runs.run_keys(exp.id).params == ("late", "p")
    _raises(InvalidInput, lambda: store.runs.run_keys(exp.id, newest=0))
    store.runs.set_deleted(newest.id, True)
    newest = max(store.runs.get_runs(ids), key=lambda run: run.start_time)
    listed = {e.name: e for e in store.runs.list_experiments()}
    assert listed["paged"].last_run_at == newest.start_time
    assert listed["paged"].run_count == 7
    empty = store.runs.get_or_create_experiment("empty")
    assert store.runs.run_keys(empty.id).params == ()
    assert {e.name: e for e in store.runs.list_experiments()}["empty"].last_run_at is None


def check_metric_series(store: MetadataStore) -> None:
    exp = store.runs.get_or_create_experiment("charted")
    run_id = store.runs.create_run(exp.id, user="tester").id
    # steps 0..9 logged at times 10_000 - 10 * step (time runs backwards), step 3 twice,
    # step 5 NaN, step 7 infinite, and another key beside
    points = [(run_id, "loss", float(step), step, 10_000 - 10 * step) for step in range(10)]
    points[5] = (run_id, "loss", math.nan, 5, 9_950)
    points[7] = (run_id, "loss", math.inf, 7, 9_930)
    points.append((run_id, "loss", 33.0, 3, 9_975))
    store.runs.log_metric_points([*points, (run_id, "acc", 0.5, 0, 1)])
    whole = store.runs.get_metric_series(run_id, "loss")
    assert whole.key == "loss" and whole.step == [0, 1, 2, 3, 3, *range(4, 10)]
    assert whole.value[:5] == [0.0, 1.0, 2.0, 3.0, 33.0] and math.isnan(whole.value[6])
    assert whole.value[8] == math.inf and whole.timestamp[0] == 10_000
    history = store.runs.get_metric_history(run_id, "loss")
    assert [point.step for point in history] == whole.step  # the same order
    ranged = store.runs.get_metric_series(run_id, "loss", MetricSpan(start=2, end=4))
    assert (ranged.step, ranged.value) == ([2, 3, 3, 4], [2.0, 3.0, 33.0, 4.0])
    by_time = store.runs.get_metric_series(
        run_id, "loss", MetricSpan(x="time", start=9_930, end=9_980, limit=3)
    )
    assert by_time.timestamp == [9_930, 9_940, 9_950] and by_time.step == [7, 6, 5]
    assert (whole.total, whole.finite, whole.thinned) == (11, 9, False)
    thinned = store.runs.get_metric_series(run_id, "loss", MetricSpan(buckets=2))
    # steps 0-4 and 5-9: the lowest and highest finite point of each, NaN and inf left out
    assert (thinned.step, thinned.value) == ([0, 3, 6, 9], [0.0, 33.0, 6.0, 9.0])
    assert (thinned.total, thinned.finite, thinned.thinned) == (11, 9, True)
    assert thinned.timestamp == [10_000, 9_975, 9_940, 9_910]
    few = store.runs.get_metric_series(run_id, "loss", MetricSpan(start=2, end=4, buckets=2))
    assert (few.step, few.thinned, few.total) == ([2, 3, 3, 4], False, 4)  # 4 fit in 2 x 2
    assert store.runs.get_metric_series(run_id, "loss", MetricSpan(start=50)).step == []
    assert store.runs.get_metric_series(run_id, "absent").value == []
    _raises(NotFound, lambda: store.runs.get_metric_series("0" * 32, "loss"))
    _raises(InvalidInput, lambda: MetricSpan(limit=0))
    _raises(InvalidInput, lambda: MetricSpan(buckets=0))
    _raises(InvalidInput, lambda: MetricSpan(x="epoch"))  # type: ignore[arg-type]


CHECKS: list[Check] = [check_search_pages, check_run_keys_and_last_runs, check_metric_series]

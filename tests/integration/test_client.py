"""`ll.Client`: two projects side by side in one process, on SQLite and PostgreSQL.

Each client's runs, datasets, models, aliases and deployments go to its own stores; its
active runs are its own; the default client (`ll.*`) follows `ll.configure` and a change
of working directory; a closed client refuses calls; threads started inside a call
write to the client's stores.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import loopline as ll
from fixtures.stores import BACKENDS, drop_pg_schema, make_pg_schema
from fixtures.waiting import eventually
from loopline.config import init_project
from loopline.errors import InvalidInput, NotFound


@pytest.fixture(params=BACKENDS)
def two_projects(
    request: pytest.FixtureRequest, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> Iterator[tuple[Path, Path]]:
    """Two initialized projects, `a` and `b`, each with its own database named in its
    loopline.toml (found by discovery, as a user's script finds it); cwd is tmp_path."""
    schemas: list[str] = []
    roots = []
    for name in ("a", "b"):
        root = tmp_path / name
        root.mkdir()
        uri = None
        if request.param == "postgresql":
            if not request.getfixturevalue("postgres_available"):
                pytest.skip("PostgreSQL is not reachable (set LOOPLINE_TEST_POSTGRES_URL)")
            schema, uri = make_pg_schema()
            schemas.append(schema)
        init_project(root, store_uri=uri)
        roots.append(root)
    clean_env.chdir(tmp_path)
    clean_env.setenv("LOOPLINE_METRIC_FLUSH_INTERVAL", "0.2")
    try:
        yield roots[0], roots[1]
    finally:
        _end_default_runs()
        _close_default()
        for schema in schemas:
            drop_pg_schema(schema)


def _end_default_runs() -> None:
    while (run := ll.active_run()) is not None:
        run.end()


def _close_default() -> None:
    from loopline.project import close

    close()


def _frame(offset: float):  # type: ignore[no-untyped-def]
    import pandas as pd

    rows = [(i + offset, (i * 7) % 5 + offset) for i in range(20)]
    return pd.DataFrame(rows, columns=["x1", "x2"]), pd.Series([i % 2 for i in range(20)])


def _model(offset: float):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    features, target = _frame(offset)
    return LogisticRegression().fit(features, target), features


def test_two_clients_keep_runs_data_models_aliases_and_deployments_apart(
    two_projects: tuple[Path, Path],
) -> None:
    a_root, b_root = two_projects
    (a_root / "rows.csv").write_text("x\n1\n2\n", encoding="utf-8")
    (b_root / "rows.csv").write_text("x\n3\n4\n5\n", encoding="utf-8")
    with ll.Client(project=a_root) as a, ll.Client(project=b_root) as b:
        with a.start_run("exp-a") as run_a:
            a.log_metric("auc", 0.8)
            a.log_param("C", 1)
            a.set_tag("who", "a")
            a.data.add(a_root / "rows.csv", name="rows")
            model_a, features_a = _model(0.0)
            version_a = a.models.log_model(model_a, name="churn", input_example=features_a)
        with b.start_run("exp-b") as run_b:
            b.log_metric("auc", 0.9)
            b.data.add(b_root / "rows.csv", name="rows")
            b.data.add(b_root / "rows.csv", name="other")
            model_b, features_b = _model(10.0)
            b.models.log_model(model_b, name="churn", input_example=features_b)
            version_b2 = b.models.log_model(model_b, name="churn", input_example=features_b)

        assert [e.name for e in a.list_experiments()] == ["exp-a"]
        assert [e.name for e in b.list_experiments()] == ["exp-b"]
        assert [r.id for r in a.search_runs()] == [run_a.id]
        assert [r.id for r in b.search_runs()] == [run_b.id]
        assert a.get_run(run_a.id).params == {"C": "1"}
        assert [p.value for p in a.get_metric_history(run_a.id, "auc")] == [0.8]
        with pytest.raises(NotFound):
            b.get_run(run_a.id)

        assert [d.name for d in a.data.list_datasets()] == ["rows"]
        assert sorted(d.name for d in b.data.list_datasets()) == ["other", "rows"]
        assert len(a.data.load("rows@latest")) == 2
        assert len(b.data.load("rows@latest")) == 3

        assert version_a.version == 1 and version_b2.version == 2
        assert [v.version for v in a.registry.list_versions("churn")] == [1]
        b.registry.set_alias("churn/2", "champion")
        assert b.registry.aliases_of("churn/2") == ["champion"]
        assert a.registry.aliases_of("churn/1") == []
        with pytest.raises(NotFound):
            a.registry.resolve("churn@champion")
        assert b.models.load("churn@champion").predict(features_b).shape == (20,)

        b.deployments.create_deployment("web", "churn@champion", prefer_onnx=False)
        assert [d.name for d in b.deployments.list_deployments()] == ["web"]
        assert a.deployments.list_deployments() == []
        # the default client saw none of it: it is the (empty) project around tmp_path
        assert ll.list_experiments() == []


def test_each_client_has_its_own_active_runs(two_projects: tuple[Path, Path]) -> None:
    a_root, b_root = two_projects
    with ll.Client(project=a_root) as a, ll.Client(project=b_root) as b:
        outer = a.start_run("a")
        assert a.active_run() is outer
        assert b.active_run() is None and ll.active_run() is None
        with pytest.raises(InvalidInput, match="no active run"):
            b.log_metric("m", 1.0)
        inner = b.start_run("b")
        nested = a.start_run("a")  # a child of a's run, not of b's
        assert a.get_run(nested.id).parent_id == outer.id
        assert b.get_run(inner.id).parent_id is None
        a.log_metric("m", 2.0)  # goes to `nested`, the innermost run of a
        a.end_run()
        b.end_run()
        a.end_run()
        assert a.active_run() is None and b.active_run() is None
        assert [p.value for p in a.get_metric_history(nested.id, "m")] == [2.0]


def test_the_default_client_follows_the_working_directory(
    two_projects: tuple[Path, Path],
) -> None:
    """A script that sets up two projects in two folders writes each one's models into
    its own project (it wrote the second's into the first)."""
    a_root, b_root = two_projects
    os.chdir(a_root)
    model, features = _model(0.0)
    ll.models.log_model(model, name="first", input_example=features)
    os.chdir(b_root)
    ll.models.log_model(model, name="second", input_example=features)
    with ll.start_run("in-b"):
        ll.log_metric("m", 1.0)
    (b_root / "sub").mkdir()
    os.chdir(b_root / "sub")  # a folder inside b is still b
    assert [m.name for m in ll.registry.list_models()] == ["second"]
    with ll.Client(project=a_root) as a, ll.Client(project=b_root) as b:
        assert [m.name for m in a.registry.list_models()] == ["first"]
        assert [m.name for m in b.registry.list_models()] == ["second"]
        assert [e.name for e in b.list_experiments()] == ["in-b"]


def test_a_chdir_out_of_every_project_keeps_the_default(
    two_projects: tuple[Path, Path], tmp_path: Path
) -> None:
    a_root, _ = two_projects
    os.chdir(a_root)
    with ll.start_run("in-a"):
        pass
    outside = tmp_path / "outputs"
    outside.mkdir()
    os.chdir(outside)  # e.g. a script writing its files elsewhere
    with ll.start_run("still-a"):
        pass
    assert not (outside / ".loopline").exists()
    assert sorted(e.name for e in ll.list_experiments()) == ["in-a", "still-a"]


def test_a_run_started_before_a_chdir_keeps_writing_to_its_project(
    two_projects: tuple[Path, Path],
) -> None:
    a_root, b_root = two_projects
    os.chdir(a_root)
    with ll.start_run("in-a") as run:
        os.chdir(b_root)
        ll.log_metric("m", 1.0)
    with ll.Client(project=a_root) as a:
        assert [p.value for p in a.get_metric_history(run.id, "m")] == [1.0]


def test_ll_functions_follow_configure_and_not_a_chdir_after_it(
    two_projects: tuple[Path, Path],
) -> None:
    a_root, b_root = two_projects
    ll.configure(project=b_root)
    with ll.start_run("configured"):
        pass
    os.chdir(a_root)  # configured explicitly: the working directory no longer decides
    with ll.start_run("still-b"):
        pass
    ll.configure(project=a_root)
    with ll.start_run("now-a"):
        pass
    with ll.Client(project=a_root) as a, ll.Client(project=b_root) as b:
        assert sorted(e.name for e in b.list_experiments()) == ["configured", "still-b"]
        assert [e.name for e in a.list_experiments()] == ["now-a"]


def test_a_closed_client_refuses_calls_and_released_its_connections(
    two_projects: tuple[Path, Path],
) -> None:
    a_root, _ = two_projects
    with ll.Client(project=a_root) as client:
        with client.start_run("x") as run:
            client.log_metric("m", 1.0)
        engine = client.stores.metadata.db.engine
    assert engine.pool.checkedout() == 0 and engine.pool.checkedin() == 0
    with pytest.raises(InvalidInput, match="closed"):
        client.get_run(run.id)
    with pytest.raises(InvalidInput, match="closed"):
        client.registry.list_models()
    client.close()  # closing twice is a no-op


def test_a_run_still_active_keeps_a_closed_clients_stores_open_until_it_ends(
    two_projects: tuple[Path, Path],
) -> None:
    a_root, _ = two_projects
    client = ll.Client(project=a_root)
    run = client.start_run("x")
    client.close()
    run.log_metric("m", 3.0)
    ended = run.end()
    assert ended.status == "FINISHED"
    with ll.Client(project=a_root) as again:
        assert [p.value for p in again.get_metric_history(run.id, "m")] == [3.0]


def test_threads_started_in_a_call_write_to_the_clients_stores(
    two_projects: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The metric flusher and the system-metrics sampler run in threads of their own;
    a thread run in a copied context inherits the client's binding."""
    a_root, _ = two_projects
    monkeypatch.setenv("LOOPLINE_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")
    with ll.Client(project=a_root) as a:
        with a.start_run("threads", log_system_metrics=True) as run:
            a.log_metric("m", 1.0)
            monitor = run._monitor
            assert monitor is not None
            eventually(lambda: monitor.samples >= 1, message="the sampler took no sample")
            with a.bound():
                copied = contextvars.copy_context()
            worker = threading.Thread(target=copied.run, args=(ll.log_metric, "t", 5.0))
            worker.start()
            worker.join()
        keys = set(a.get_run(run.id).metrics)
        assert {"m", "t"} <= keys
        assert any(key.startswith("system/") for key in keys)
    assert ll.list_experiments() == []  # nothing reached the default project


def test_the_serving_poller_reads_the_deployments_of_the_client_it_was_made_in(
    two_projects: tuple[Path, Path],
) -> None:
    from loopline.serving.online._stored import StoredDeployments

    a_root, _ = two_projects
    with ll.Client(project=a_root) as a:
        model, features = _model(0.0)
        a.models.log_model(model, name="churn", input_example=features)
        a.deployments.create_deployment("web", "churn/1", prefer_onnx=False)
        with a.bound():
            source = StoredDeployments(["web"], runtime="native")
        loaded: dict[str, object] = {}
        poller = threading.Thread(target=lambda: loaded.update(source.load({})))
        poller.start()
        poller.join()
        assert list(loaded) == ["web"]


def test_a_client_call_binds_nothing_after_it_returns(two_projects: tuple[Path, Path]) -> None:
    from loopline.project import current_scope, stores

    a_root, _ = two_projects
    with ll.Client(project=a_root) as a:
        assert a.call(stores) is a.stores
        assert current_scope() is None
        assert stores() is not a.stores

"""The end-to-end demo on the embedded default (SQLite + a local artifact folder).

Stage 1 (data): version the breast-cancer data as CSV, infer an expectation suite from
it and validate it; then version a deliberately corrupted copy and watch validation
fail with a report. Split the good version, in a tracked run, into a training set and a
held-out set, each versioned as its own dataset (`breast_cancer_train`,
`breast_cancer_holdout`) and linked to the version they came from.
Stage 2 (experiment tracking): train several real scikit-learn models on the training set
with different hyper-parameters, each as a tracked run that records the dataset version
it used and registers its model, then show the runs sorted by validation ROC AUC and
compare the two best.
Stage 3 (registry): evaluate the best model on the held-out set, which no model has seen,
with slices and a sensitive attribute; promote it through the project's gates (evaluated
on the held-out set) to `champion`, watch the gates refuse a deliberately worse model,
write the champion's model card, and export it to ONNX.
Stage 4 (serving): deploy the champion, serve it on a local port (`loopline deploy
serve`, ONNX runtime), send it held-out rows, run a canary of the second-best model at
20 %, read the per-version counts from /metrics, send ground-truth feedback, roll the
canary back while the server keeps answering, and read the prediction log.
Stage 5 (monitoring and the closed loop): replay 3,000 new rows through the server (the
good version's patients, resampled and jittered) with two features shifted and, in a
segment (rows whose `worst texture` is above its 75th percentile; a model input, since
the served signature carries no other column), the labels reversed; send the labels as
feedback; `loopline monitor run` flags exactly the two shifted features and the drop in
accuracy, writes monitoring.html and exits 1. `loopline loop run` retrains on the
champion's training data + the labelled production rows, gates the candidate on a
production hold-out, canaries it; more traffic with labels, and the canary is judged and
promoted. Then, with the loop's gates relaxed by hand, a deliberately worse candidate
(a linear model) passes them, runs as a canary and is rolled back. `loopline loop show`
prints the lineage of both decisions.

The demo ends with the `loopline ui` command and URL that show all of it in a browser:
the runs, the deployment's traffic and revisions, drift per feature, both retrain loops
and the audit log.

Run with `make demo`, or `python examples/demo.py [PROJECT_DIR]` (default `.demo/`,
recreated on each run).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import loopline as ll
from loopline.cli.app import run as loopline_cli

CANDIDATES = [
    ("logreg", {"C": 0.01}),
    ("logreg", {"C": 1.0}),
    ("logreg", {"C": 100.0}),
    ("forest", {"n_estimators": 50, "max_depth": 3}),
    ("forest", {"n_estimators": 200, "max_depth": None}),
    ("boosting", {"n_estimators": 100, "learning_rate": 0.1, "max_depth": 2}),
    ("boosting", {"n_estimators": 100, "learning_rate": 0.5, "max_depth": 4}),
]


def build(kind: str, params: dict[str, object]) -> object:
    if kind == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, **params))
    if kind == "forest":
        return RandomForestClassifier(random_state=0, n_jobs=2, **params)
    return GradientBoostingClassifier(random_state=0, **params)


MODEL = "breast-cancer"
# Not features: the id, the label, and two synthetic columns (a clinic, for slices, and a
# sensitive attribute, for fairness) that the bundled dataset does not have.
NOT_FEATURES = ["patient_id", "target", "clinic", "sex"]

GATES = """
[gates]
rules = [
  "metrics.roc_auc >= 0.95",
  "slices.min.roc_auc >= 0.90",
  "fairness.sex.demographic_parity_diff <= 0.15",
  "compare.champion.roc_auc >= -0.005",
  "latency.p99_ms <= 100",
  "robustness.flip_rate <= 0.05",
]

[gates.evaluation]
data = "breast_cancer_holdout@1"
target = "target"
slices = ["clinic", "`mean radius` > 15"]
sensitive = ["sex"]
"""


def version_data(project: Path) -> str:
    """Write the data to CSV, version it (as `breast_cancer`), infer a suite and validate;
    returns its ref."""
    frame = load_breast_cancer(as_frame=True).frame
    frame.insert(0, "patient_id", range(len(frame)))
    rng = np.random.default_rng(7)
    frame["clinic"] = rng.choice(["north", "south", "east"], len(frame))
    frame["sex"] = rng.choice(["female", "male"], len(frame), p=[0.8, 0.2])
    folder = project / "data"
    folder.mkdir()
    frame.to_csv(folder / "breast_cancer.csv", index=False)
    loopline_cli(["data", "add", "data/breast_cancer.csv", "-m", "sklearn breast-cancer data"])
    loopline_cli(
        ["data", "expect", "breast_cancer@1", "--out", "suite.yaml", "--key", "patient_id"]
    )
    loopline_cli(["data", "validate", "breast_cancer@1", "--suite", "suite.yaml"])

    print("\n-- a corrupted extract arrives: negative radii, missing labels, duplicated ids")
    broken = frame.copy()
    broken.loc[:9, "mean radius"] = -1.0
    broken.loc[10:14, "target"] = None
    broken.loc[15:19, "patient_id"] = 0
    broken.to_csv(folder / "breast_cancer.csv", index=False)
    loopline_cli(["data", "add", "data/breast_cancer.csv", "-m", "corrupted extract"])
    code = loopline_cli(
        ["data", "validate", "breast_cancer@2", "--suite", "suite.yaml", "--report", "dq.html"]
    )
    print(f"(validation exit code {code}: a CI job would stop here)")
    loopline_cli(["data", "diff", "breast_cancer@1", "breast_cancer@2"])
    loopline_cli(["data", "checkout", "breast_cancer@1"])  # back to the good version
    return "breast_cancer@1"


def split_data(project: Path, ref: str) -> tuple[str, str]:
    """Hold out a quarter of `ref` (stratified) that no model trains on: both parts are
    versioned as datasets of their own, outputs of a run whose input is `ref`."""
    with ll.start_run(experiment="data-prep", params={"holdout": 0.25, "seed": 42}) as run:
        frame = ll.data.load(ref)  # the run's input
        train, holdout = train_test_split(
            frame, test_size=0.25, random_state=42, stratify=frame["target"]
        )
        refs = []
        for part, rows in (("train", train), ("holdout", holdout)):
            path = project / "data" / f"breast_cancer_{part}.csv"
            rows.sort_values("patient_id").to_csv(path, index=False)
            added = ll.data.add(path, message=f"{part} split of {ref} (stratified, seed 42)")
            refs.append(added.version.ref)  # the run's outputs
    print(f"  {refs[0]}: {len(train)} rows to train on; {refs[1]}: {len(holdout)} held out")
    print(f"  (both outputs of run {run.id[:8]}, whose input is {ref}: `loopline runs show`)")
    return refs[0], refs[1]


def train_all(workdir: Path, ref: str) -> None:
    frame = ll.data.load(ref)  # outside a run: no lineage yet
    features = frame.drop(columns=NOT_FEATURES)
    # a validation split of the training set ranks the runs; the held-out set stays unseen
    x_train, x_test, y_train, y_test = train_test_split(
        features, frame["target"], test_size=0.25, random_state=42, stratify=frame["target"]
    )
    for kind, params in CANDIDATES:
        with ll.start_run(experiment="breast-cancer", params={"model": kind, **params}) as run:
            ll.data.load(ref)  # inside the run: records the dataset version as its input
            ll.set_tags({"dataset": "sklearn.load_breast_cancer", "stage": "demo"})
            model = build(kind, params)
            model.fit(x_train, y_train)  # type: ignore[attr-defined]
            if kind == "boosting":  # a learning curve: one point per boosting stage
                for step, proba in enumerate(model.staged_predict_proba(x_test)):  # type: ignore[attr-defined]
                    ll.log_metric("test_log_loss", log_loss(y_test, proba), step=step)
            proba = model.predict_proba(x_test)[:, 1]  # type: ignore[attr-defined]
            predicted = (proba >= 0.5).astype(int)
            ll.log_metrics(
                {
                    "roc_auc": roc_auc_score(y_test, proba),
                    "accuracy": accuracy_score(y_test, predicted),
                    "f1": f1_score(y_test, predicted),
                    "log_loss": log_loss(y_test, proba),
                }
            )
            curve = workdir / "roc_curve.csv"
            fpr, tpr, thresholds = roc_curve(y_test, proba)
            with curve.open("w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["fpr", "tpr", "threshold"])
                writer.writerows(zip(fpr, tpr, thresholds, strict=True))
            ll.log_artifact(curve, artifact_path="evaluation")
            version = ll.models.log_model(model, name=MODEL, input_example=x_train.head(5))
            ll.set_tag("model_version", version.ref)
        print(f"  trained {run.name:<22} {kind:<9} {params}  -> {version.ref}")


def worse_model(ref: str) -> str:
    """A deliberately weak model (two features, a stump), registered like the others."""
    frame = ll.data.load(ref)
    with ll.start_run(experiment="breast-cancer", params={"model": "stump"}):
        ll.data.load(ref)
        features = frame[["mean fractal dimension", "texture error"]]
        stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(features, frame["target"])
        return ll.models.log_model(stump, name=MODEL, input_example=features.head(5)).ref


def registry_stage(project: Path, train: str, holdout: str, best_version: str) -> None:
    print(f"\n== 5. Evaluating {best_version} on the held-out {holdout}, with slices")
    loopline_cli(
        [
            "models",
            "evaluate",
            best_version,
            holdout,
            "--target",
            "target",
            "--slice",
            "clinic",
            "--slice",
            "`mean radius` > 15",
            "--sensitive",
            "sex",
            "--report",
            "evaluation.html",
        ]
    )
    print(f"\n== 6. Promoting it through the gates in loopline.toml (on {holdout}) to champion")
    with (project / "loopline.toml").open("a", encoding="utf-8") as fh:
        fh.write(GATES)
    ll.configure(project=project)  # re-read loopline.toml
    loopline_cli(
        [
            "models",
            "promote",
            best_version,
            "--to",
            "production",
            "--alias",
            "champion",
            "--reason",
            "best ROC AUC of the sweep",
        ]
    )
    print("\n== 7. A worse model is offered: the gates refuse it")
    worse = worse_model(train)
    code = loopline_cli(
        [
            "models",
            "promote",
            worse,
            "--to",
            "production",
            "--alias",
            "champion",
            "--reason",
            "just trying",
        ]
    )
    print(f"(promotion exit code {code}: the champion stays {best_version})")
    print("\n== 8. The champion: card, lineage, ONNX export, audit log")
    loopline_cli(["models", "card", f"{MODEL}@champion", "--html", "-o", "model_card.html"])
    loopline_cli(["models", "lineage", f"{MODEL}@champion"])
    loopline_cli(["models", "export", f"{MODEL}@champion", "--format", "onnx"])
    loopline_cli(["models", "show", MODEL])
    loopline_cli(["audit", "ls", "--model", MODEL, "--limit", "8"])


def serving_stage(client: httpx.Client, holdout: str, second_best: str) -> None:
    """Stages 9-12 on the running server `client` talks to (started by `main`)."""
    rows = _held_out_rows(holdout)
    labels = {}
    for features, label in rows[:50]:
        answer = client.post("/v1/deployments/cancer/predict", json={"inputs": [features]})
        labels[answer.json()["request_id"]] = label
    runtime = client.get("/v2/models/cancer").json()["platform"]
    print(f"  50 held-out rows answered by {answer.json()['model_version']} ({runtime})")

    print(f"\n== 10. A canary: {second_best} gets 20 % of the traffic")
    loopline_cli(["deploy", "update", "cancer", "--canary", second_best, "--weight", "20"])
    _wait(client, lambda ready: _revision(ready) == 2)
    for features, label in rows[50:]:
        answer = client.post("/v1/deployments/cancer/predict", json={"inputs": [features]})
        labels[answer.json()["request_id"]] = label
    print("  requests answered per model version so far (50 before the canary), from /metrics:")
    for version, count in _counts(client.get("/metrics").text).items():
        print(f"    {version:<22} {count:>5}")
    feedback = [{"request_id": rid, "label": label} for rid, label in labels.items()]
    recorded = client.post("/v1/deployments/cancer/feedback", json={"feedback": feedback})
    print(f"  ground truth sent for {recorded.json()['recorded']} requests")

    print("\n== 11. Rolling the canary back (the server swaps without a restart)")
    loopline_cli(["deploy", "rollback", "cancer", "-m", "canary not needed"])
    _wait(client, lambda ready: _revision(ready) == 3)
    answer = client.post("/v1/deployments/cancer/predict", json={"inputs": [rows[0][0]]})
    print(f"  now answered by {answer.headers['x-model-version']} only")
    loopline_cli(["deploy", "history", "cancer"])
    print("\n== 12. The prediction log (what monitoring reads)")
    _wait_for_log(len(rows) + 1)  # the server writes its log out every 5 s
    loopline_cli(["deploy", "logs", "cancer", "--since", "1h", "--limit", "5"])
    loopline_cli(["deploy", "logs", "cancer", "--since", "1h", "-o", "predictions.parquet"])
    loopline_cli(["deploy", "export", "cancer", "--target", "kubernetes", "-o", "k8s"])


# Stages 13-15: the closed loop. The stream replays patients of the good data version
# with two features shifted and, in a segment, the label relation reversed.
SHIFTED = ("mean smoothness", "worst symmetry")  # +1.5 sd in every replayed row
SEGMENT = "worst texture"  # above its 75th percentile, the labels are reversed
STREAM_ROWS = 3000
REQUEST_ROWS = 50
JUDGE_ROWS = 300  # labelled canary rows before a canary is judged

TRAINER = '''"""The demo's training functions: the retrain loop calls fit(data, target, params) with
its new training set (the champion's training data + labelled production rows)."""

from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def fit(data, target, params):
    """A random forest: trees can learn a relation that reverses inside a segment (small
    trees: the server converts the candidate to ONNX before it serves it)."""
    forest = RandomForestClassifier(random_state=0, **params)
    return forest.fit(data.drop(columns=[target]), data[target])


def fit_linear(data, target, params):
    """Deliberately worse: the champion's recipe, a linear model, cannot learn that."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, **params))
    return model.fit(data.drop(columns=[target]), data[target])
'''

POLICY = """deployment: cancer
window: 1h
actions:
  - when: performance
    do: retrain
    train: "cancer_trainer:{function}"
    target: target
    params: {params}
    canary_weight: 0.3
    judge_min_rows: {judge_rows}
    judge_after: 1h
"""

# The loop gates a candidate on the production hold-out it cuts, which holds the model's
# inputs and the label only (no clinic, no sex): breast-cancer gets gates of its own.
LOOP_GATES = ["metrics.roc_auc >= 0.95", "compare.champion.roc_auc >= -0.005"]
RELAXED_GATES = ["metrics.roc_auc >= 0.75"]  # stage 15: a low bar, no comparison


def _gates_table(rules: list[str]) -> str:
    listed = ", ".join(f'"{rule}"' for rule in rules)
    return f"\n[gates.{MODEL}]\nrules = [{listed}]\n"


def make_stream(ref: str, rows: int, seed: int) -> pd.DataFrame:
    """`rows` patients drawn (with replacement) from all of `ref`'s, each feature jittered
    by 0.05 sd, with SHIFTED moved up by 1.5 sd and the labels reversed where SEGMENT is
    above its 75th percentile; the model's inputs and `target`.

    All of `ref`'s 569 patients, not the 143 held out: 3,000 rows drawn from 143 patients
    repeat their sampling differences from the 426 training rows twenty-fold, and the KS
    test then calls 3 to 6 unshifted features drifted (checked with seeds 0-4)."""
    source = ll.data.load(ref)
    features = source.drop(columns=NOT_FEATURES)
    scale = features.std().to_numpy()
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, len(source), rows)
    values = features.to_numpy()[picked] + rng.normal(0, 0.05, (rows, features.shape[1])) * scale
    # jitter must not invent out-of-range values (a negative concavity)
    values = np.clip(values, features.min().to_numpy(), features.max().to_numpy())
    stream = pd.DataFrame(values, columns=features.columns)
    labels = source["target"].to_numpy()[picked]
    segment = stream[SEGMENT].to_numpy() > features[SEGMENT].quantile(0.75)
    stream["target"] = np.where(segment, 1 - labels, labels)
    for name in SHIFTED:
        stream[name] += 1.5 * features[name].std()
    return stream


def monitoring_stage(client: httpx.Client, project: Path, ref: str) -> tuple[str, str]:
    """Stages 13-15 (see the module docstring); the ids of the two retrain loops."""
    from loopline.monitoring import list_reports, load_report
    from loopline.serving.deployments import get_deployment

    print(
        f"\n== 13. Production drifts: {STREAM_ROWS:,} new rows (patients of {ref}, jittered),"
        f" {' and '.join(SHIFTED)} shifted by +1.5 sd, labels reversed where {SEGMENT} is"
        " above its 75th percentile"
    )
    stream = make_stream(ref, STREAM_ROWS, seed=11)
    segment_share = (stream[SEGMENT] > ll.data.load(ref)[SEGMENT].quantile(0.75)).mean()
    since = datetime.now(UTC)
    _replay(client, stream)
    print(
        f"  {len(stream):,} rows sent in requests of {REQUEST_ROWS}, then their labels"
        f" (reversed for the {segment_share:.0%} of rows in the segment)"
    )
    code = loopline_cli(
        [
            "monitor",
            "run",
            "cancer",
            "--since",
            since.isoformat(),
            "--report",
            "monitoring.html",
        ]
    )
    report = load_report(list_reports("cancer", limit=1)[0].id)
    body = report.data["versions"][get_deployment("cancer").spec.model.model]
    drifted = body["drifted"]
    realised = body["performance"]["realised"]["metrics"]
    stored = body["performance"]["baseline"]["metrics"]
    print(
        f"(monitor exit code {code}: failed {', '.join(report.failed)}; drifted:"
        f" {', '.join(drifted)}; accuracy {realised['accuracy']:.3f} against"
        f" {stored['accuracy']:.3f} in the stored evaluation)"
    )
    if sorted(drifted) != sorted(SHIFTED):
        raise RuntimeError(f"expected exactly {SHIFTED} to drift, the report says {drifted}")

    print("\n== 14. The retrain loop: new training set, run, gates, canary, promotion")
    (project / "cancer_trainer.py").write_text(TRAINER, encoding="utf-8")
    for name, function, params in (
        ("loop.yaml", "fit", "{n_estimators: 30, max_depth: 8}"),
        ("loop-linear.yaml", "fit_linear", "{C: 1.0}"),
    ):
        policy = POLICY.format(function=function, params=params, judge_rows=JUDGE_ROWS)
        (project / name).write_text(policy, encoding="utf-8")
    settings = (project / "loopline.toml").read_text(encoding="utf-8")
    (project / "loopline.toml").write_text(settings + _gates_table(LOOP_GATES), encoding="utf-8")
    ll.configure(project=project)
    print(
        "  loop.yaml retrains with cancer_trainer:fit (a random forest) on the champion's"
        " training data + the window's labelled rows, and canaries it at 30 %;\n"
        f"  loopline.toml [gates.{MODEL}] judges it on the loop's production hold-out:"
        f" {', '.join(LOOP_GATES)}"
    )
    first = _loop(client, project, ref, "loop.yaml", 12, "promoted")

    print("\n== 15. A worse candidate passes relaxed gates; its canary is rolled back")
    (project / "loopline.toml").write_text(settings + _gates_table(RELAXED_GATES), encoding="utf-8")
    ll.configure(project=project)
    print(
        f"  [gates.{MODEL}] relaxed by hand to {', '.join(RELAXED_GATES)} (no comparison with"
        " the champion), and loop-linear.yaml retrains with cancer_trainer:fit_linear,\n"
        "  a linear model, which cannot learn the reversed segment: only the canary can"
        " catch it now"
    )
    second = _loop(client, project, ref, "loop-linear.yaml", 13, "rolled_back")
    return first, second


def _loop(
    client: httpx.Client, project: Path, ref: str, policy_file: str, seed: int, expected: str
) -> str:
    """`loopline loop run` with `policy_file`, then shifted traffic until its canary has
    JUDGE_ROWS labelled rows, then the judgement; the loop's id. Raises RuntimeError
    unless the loop ends `expected` (promoted, rolled_back)."""
    from loopline.loop.canary import judge_canaries, show_loop
    from loopline.monitoring.policy import load_policy
    from loopline.serving.deployments import get_deployment

    with contextlib.redirect_stdout(io.StringIO()) as printed:  # summarised below
        code = loopline_cli(["loop", "run", "cancer", "--policy", policy_file, "--json"])
    loop = show_loop(json.loads(printed.getvalue())["id"])
    data, gates = loop.detail("loop.dataset"), loop.detail("loop.gates")
    candidate, champion = str(gates.get("candidate")), str(gates.get("champion"))
    scores = gates.get("metrics") or {}
    print(
        f"loopline loop run cancer --policy {policy_file}: loop {loop.id[:8]}, {loop.status}"
        f" (exit code {code})\n"
        f"  {candidate} trained on {data['training']} ({data['reference']} +"
        f" {data['production_rows']:,} labelled production rows);\n"
        f"  on the hold-out {data['holdout']} ({data['holdout_rows']:,} newer rows) its ROC AUC"
        f" is {scores[candidate]['roc_auc']:.3f}, the champion {champion}'s"
        f" {scores[champion]['roc_auc']:.3f}: gates {'passed' if gates['passed'] else 'failed'}"
    )
    if loop.status != "canary":
        raise RuntimeError(f"the loop ended {loop.status}: {loop.steps[-1].detail}")
    revision = get_deployment("cancer").revision
    _wait(client, lambda ready: _revision(ready) == revision)
    answered = _replay(client, make_stream(ref, 4000, seed=seed), canary=candidate)
    print(
        "  more shifted traffic, with labels: "
        + ", ".join(f"{version} answered {rows:,} rows" for version, rows in answered.items())
    )
    for judged in judge_canaries(load_policy(project / policy_file, project_root=project)):
        ended = show_loop(judged.id)
        evidence = ended.steps[-1].detail.get("comparison") or {}
        print(
            f"  judged on {evidence.get('count_b', 0):,} labelled canary rows: accuracy"
            f" {evidence.get('mean_b', float('nan')):.3f} against the stable version's"
            f" {evidence.get('mean_a', float('nan')):.3f} (p = {evidence.get('p_value') or 1:.2g})"
            f" -> {ended.status}"
        )
    if show_loop(loop.id).status != expected:
        raise RuntimeError(f"loop {loop.id} is {show_loop(loop.id).status}, not {expected}")
    return loop.id


def _replay(
    client: httpx.Client, stream: pd.DataFrame, canary: str | None = None
) -> dict[str, int]:
    """Send `stream`'s rows in requests of REQUEST_ROWS, then their labels as feedback, and
    wait until the server's prediction log holds them (it flushes every 5 s); with
    `canary`, stop once that version has answered JUDGE_ROWS rows. The rows each version
    answered."""
    before = _logged_rows()
    inputs = stream.drop(columns=["target"]).to_dict(orient="records")
    labels = stream["target"].astype(int).tolist()
    answered: dict[str, int] = {}
    feedback = []
    for first in range(0, len(inputs), REQUEST_ROWS):
        response = client.post(
            "/v1/deployments/cancer/predict", json={"inputs": inputs[first : first + REQUEST_ROWS]}
        )
        response.raise_for_status()
        answer = response.json()
        part = labels[first : first + REQUEST_ROWS]
        answered[answer["model_version"]] = answered.get(answer["model_version"], 0) + len(part)
        feedback += [
            {"request_id": answer["request_id"], "row": row, "label": label}
            for row, label in enumerate(part)
        ]
        if canary is not None and answered.get(canary, 0) >= JUDGE_ROWS:
            break
    client.post("/v1/deployments/cancer/feedback", json={"feedback": feedback}).raise_for_status()
    _wait_for_log(before + len(feedback))
    return answered


def _logged_rows() -> int:
    from loopline.project import stores

    return sum(f.rows for f in stores().metadata.predictions.files("cancer"))


def _wait_for_log(rows: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while _logged_rows() < rows:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the prediction log did not reach {rows} rows")
        time.sleep(0.25)


@contextlib.contextmanager
def _serve(project: Path, *options: str) -> Iterator[httpx.Client]:
    """`loopline deploy serve cancer` on a free port, as a subprocess (it inherits this
    process's environment, PYTHONPATH included); a client of it until the block ends, then
    a clean stop, which writes out the prediction log."""
    port = _free_port()
    command = [str(Path(sys.executable).parent / "loopline"), "deploy", "serve", "cancer"]
    errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [*command, "--port", str(port), "--poll", "0.5", *options],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=errors,  # a file, not a pipe nobody reads: a full pipe would stall the server
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            _wait(client, lambda ready: ready.status_code == 200)
            yield client
    except Exception:
        errors.seek(0)
        print("the server's last words:\n" + errors.read()[-2000:], file=sys.stderr)
        raise
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        errors.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(
    client: httpx.Client, done: Callable[[httpx.Response], bool], timeout: float = 60.0
) -> None:
    """Poll /health/ready until `done(response)` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if done(client.get("/health/ready")):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the prediction server did not become ready")


def _revision(ready: httpx.Response) -> int | None:
    revision = ready.json().get("deployments", {}).get("cancer", {}).get("revision")
    return None if revision is None else int(revision)


def _held_out_rows(ref: str) -> list[tuple[dict[str, float], int]]:
    held_out = ll.data.load(ref)
    features = held_out.drop(columns=NOT_FEATURES)
    labels = held_out["target"].astype(int).tolist()
    return list(zip(features.to_dict(orient="records"), labels, strict=True))


def _counts(metrics: str) -> dict[str, int]:
    """Successful requests per answering version, from the Prometheus text."""
    counts: dict[str, int] = {}
    pattern = r'loopline_serving_requests_total\{code="200",deployment="cancer",endpoint="v1",'
    pattern += r'model_version="([^"]+)"\} ([0-9.e+]+)'
    for version, value in re.findall(pattern, metrics):
        counts[version] = counts.get(version, 0) + int(float(value))
    return counts


def main() -> int:
    if not sys.stdout.isatty():  # logs and pipes: tables as wide as a typical terminal
        os.environ.setdefault("COLUMNS", "140")
    project = Path(sys.argv[1] if len(sys.argv) > 1 else ".demo").resolve()
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    print(f"== loopline demo in {project}\n")
    if loopline_cli(["init", str(project)]) != 0:
        return 1
    ll.configure(project=project)

    os.chdir(project)

    print("\n== 1. Versioning and validating the training data (loopline data ...)")
    ref = version_data(project)
    print(f"\n-- holding out a quarter of {ref} that no model will train on")
    train, holdout = split_data(project, ref)

    print(f"\n== 2. Training tracked runs on {train}")
    with tempfile.TemporaryDirectory() as workdir:
        train_all(Path(workdir), train)

    print("\n== 3. Runs sorted by validation ROC AUC (loopline runs ls)")
    loopline_cli(["runs", "ls", "-e", "breast-cancer", "-o", "metrics.roc_auc desc"])
    best = ll.search_runs(
        "breast-cancer", filter="metrics.roc_auc > 0.9", order_by=["metrics.roc_auc desc"]
    )
    print("\n== 4. The two best runs side by side (loopline runs compare)")
    loopline_cli(["runs", "compare", best[0].id, best[1].id])
    print(
        f"\nBest run: {best[0].name} ({best[0].id[:8]}), ROC AUC {best[0].metrics['roc_auc']:.4f}"
    )
    registry_stage(project, train, holdout, best[0].tags["model_version"])
    print("\n== 9. Deploying the champion and serving it (loopline deploy ...)")
    loopline_cli(["deploy", "create", "cancer", "--model", f"{MODEL}@champion", "-m", "launch"])
    with _serve(project) as client:  # stages 9-15 talk to one server
        serving_stage(client, holdout, best[1].tags["model_version"])
        first, second = monitoring_stage(client, project, ref)
    print("\n-- the lineage of both decisions (loopline loop show)")
    loopline_cli(["loop", "show", first])
    loopline_cli(["loop", "show", second])
    print("\n== 16. Checking the stores and what a clean-up would free (loopline fsck, gc)")
    scratch = project / "scratch.txt"
    scratch.write_text("a throw-away experiment's notes\n", encoding="utf-8")
    with ll.start_run(experiment="scratch") as run:
        run.log_artifact(scratch)
    scratch.unlink()
    loopline_cli(["runs", "delete", run.id])
    if loopline_cli(["fsck"]) != 0:
        return 1
    # --grace 0s: nothing else writes to this project now (the default, 1h, protects
    # writes in flight; a blob stored seconds ago would be kept)
    loopline_cli(["gc", "--dry-run", "--grace", "0s"])
    loopline_cli(["gc", "--grace", "0s"])
    print(f"\nData-quality report of the corrupted extract: {project / 'dq.html'}")
    print(f"Evaluation report of the champion: {project / 'evaluation.html'}")
    print(f"Model card of the first champion: {project / 'model_card.html'}")
    print(f"Monitoring report of the drifted stream: {project / 'monitoring.html'}")
    print(f"Try: cd {project} && loopline runs show {best[0].id[:8]}   (its lineage names {train})")
    print(
        "Browse it (runs; the deployment's traffic, revisions, drift and retrain loops; the "
        "audit log):"
    )
    print(f"  cd {project} && loopline ui   then http://127.0.0.1:5000/deployments/cancer")
    return 0


if __name__ == "__main__":
    sys.exit(main())

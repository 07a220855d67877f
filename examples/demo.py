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

Run with `make demo`, or `python examples/demo.py [PROJECT_DIR]` (default `.demo/`,
recreated on each run).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
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


def serving_stage(project: Path, holdout: str, second_best: str) -> None:
    print("\n== 9. Deploying the champion and serving it (loopline deploy ...)")
    loopline_cli(["deploy", "create", "cancer", "--model", f"{MODEL}@champion", "-m", "launch"])
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).parent / "loopline"), "deploy", "serve", "cancer"]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--poll", "0.5"],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = httpx.Client(base_url=url, timeout=10)
        _wait(client, lambda ready: ready.status_code == 200)
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
        client.close()
    finally:
        server.send_signal(signal.SIGINT)  # a clean stop writes out the prediction log
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    loopline_cli(["deploy", "history", "cancer"])
    print("\n== 12. The prediction log (what monitoring reads)")
    loopline_cli(["deploy", "logs", "cancer", "--since", "1h", "--limit", "5"])
    loopline_cli(["deploy", "logs", "cancer", "--since", "1h", "-o", "predictions.parquet"])
    loopline_cli(["deploy", "export", "cancer", "--target", "kubernetes", "-o", "k8s"])


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
    serving_stage(project, holdout, best[1].tags["model_version"])
    print("\n== 13. Checking the stores and what a clean-up would free (loopline fsck, gc)")
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
    print(f"Model card of the champion: {project / 'model_card.html'}")
    print(f"Try: cd {project} && loopline runs show {best[0].id[:8]}   (its lineage names {train})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reading a running MLflow tracking server over its REST API (httpx; no `mlflow`).

Experiments, runs, metric histories and the model registry come from `/api/2.0/mlflow/`;
artifacts from `artifacts/list` and `/get-artifact` (a run's), or the proxied
`/api/2.0/mlflow-artifacts/` API (a model version stored at `mlflow-artifacts:/...`).
Every path the server lists is checked before it names a file (InvalidPath).
A token in MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME/PASSWORD, is sent.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from loopline.errors import InvalidInput, LooplineError, NotFound, StoreUnavailable
from loopline.importers._mlflow_records import (
    Series,
    SourceExperiment,
    SourceModel,
    SourceModelVersion,
    SourceRun,
)
from loopline.redact import redact_text
from loopline.store import resolve_under, validate_logical_path

API = "/api/2.0/mlflow"
PAGE = 1000


class MlflowServer:
    """A tracking server, read through its REST API."""

    def __init__(self, uri: str, *, timeout: float = 30.0) -> None:
        self.uri = redact_text(uri)
        auth: tuple[str, str] | None = None
        headers = {}
        if os.environ.get("MLFLOW_TRACKING_TOKEN"):
            headers["Authorization"] = f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"
        elif os.environ.get("MLFLOW_TRACKING_USERNAME"):
            auth = (
                os.environ["MLFLOW_TRACKING_USERNAME"],
                os.environ.get("MLFLOW_TRACKING_PASSWORD", ""),
            )
        self._keys: dict[str, list[str]] = {}  # run id -> metric keys, from search pages
        self._http = httpx.Client(
            base_url=uri.rstrip("/"), headers=headers, auth=auth, timeout=timeout
        )
        try:
            self._call("GET", "/experiments/search", params={"max_results": 1})
        except LooplineError:
            self.close()
            raise

    def close(self) -> None:
        self._http.close()

    def experiments(self) -> list[SourceExperiment]:
        found = []
        for page in self._pages("GET", "/experiments/search", {"max_results": PAGE}):
            for exp in page.get("experiments", []):
                found.append(
                    SourceExperiment(
                        str(exp["experiment_id"]), exp["name"], exp.get("lifecycle_stage", "active")
                    )
                )
        return found

    def runs(self, experiment: SourceExperiment) -> list[SourceRun]:
        body = {"experiment_ids": [experiment.id], "run_view_type": "ALL", "max_results": PAGE}
        found = []
        for page in self._pages("POST", "/runs/search", body):
            for item in page.get("runs", []):
                found.append(_run(item, experiment.id))
        return sorted(found, key=lambda r: (r.start_time, r.id))

    def metric_history(self, run: SourceRun) -> dict[str, Series]:
        history: dict[str, Series] = {}
        for key in self._keys.get(run.id, ()):
            params = {"run_id": run.id, "metric_key": key, "max_results": 25_000}
            for page in self._pages("GET", "/metrics/get-history", params):
                for point in page.get("metrics", []):
                    value = point.get("value", math.nan)
                    history.setdefault(key, []).append(
                        (_float(value), int(point.get("step", 0)), int(point["timestamp"]))
                    )
        return history

    def download_artifacts(self, run: SourceRun, dest: Path) -> Iterator[tuple[str, Path]]:
        """Every artifact of the run, fetched file by file into `dest`."""
        pending = [""]
        while pending:
            folder = pending.pop()
            params = {"run_id": run.id, **({"path": folder} if folder else {})}
            listing = self._call("GET", "/artifacts/list", params=params)
            for entry in listing.get("files", []):
                path = validate_logical_path(str(entry["path"]))
                if entry.get("is_dir"):
                    pending.append(path)
                    continue
                target = resolve_under(dest, path)
                self._download("/get-artifact", {"path": path, "run_uuid": run.id}, target)
                yield path, target

    def download_model(self, version: SourceModelVersion, dest: Path) -> Path:
        location = version.storage_location or version.source
        if location.startswith("mlflow-artifacts:"):
            root = validate_logical_path(location.split(":", 1)[1].lstrip("/"))
            self._proxied_folder(root, root, dest)
            return dest
        if location.startswith("runs:/"):
            run_id, _, path = location[len("runs:/") :].partition("/")
            return self._run_folder(run_id, validate_logical_path(path), dest)
        raise NotFound(
            f"the files of model {version.name} version {version.version} are at "
            f"{redact_text(location)!r}, which the server does not serve"
        )

    def models(self) -> list[SourceModel]:
        found = []
        for page in self._pages("GET", "/registered-models/search", {"max_results": PAGE}):
            for item in page.get("registered_models", []):
                name = item["name"]
                found.append(
                    SourceModel(
                        name=name,
                        description=item.get("description"),
                        tags=_pairs(item.get("tags")),
                        aliases={a["alias"]: int(a["version"]) for a in item.get("aliases", [])},
                        versions=self._versions(name),
                    )
                )
        return found

    def _versions(self, name: str) -> list[SourceModelVersion]:
        quoted = name.replace("'", "\\'")
        params = {"filter": f"name='{quoted}'", "max_results": PAGE}
        versions = []
        for page in self._pages("GET", "/model-versions/search", params):
            for item in page.get("model_versions", []):
                if item.get("status", "READY") != "READY":
                    continue
                versions.append(
                    SourceModelVersion(
                        name=name,
                        version=int(item["version"]),
                        creation_time=_int(item.get("creation_timestamp")),
                        description=item.get("description"),
                        user=item.get("user_id", ""),
                        source=item.get("source", ""),
                        run_id=item.get("run_id") or None,
                        storage_location=item.get("storage_location"),
                        stage=item.get("current_stage"),
                        tags=_pairs(item.get("tags")),
                    )
                )
        return sorted(versions, key=lambda v: v.version)

    # -- plumbing -------------------------------------------------------------------

    def _run_folder(self, run_id: str, path: str, dest: Path) -> Path:
        pending = [path]
        while pending:
            folder = pending.pop()
            listing = self._call(
                "GET", "/artifacts/list", params={"run_id": run_id, "path": folder}
            )
            for entry in listing.get("files", []):
                name = validate_logical_path(str(entry["path"]))
                if entry.get("is_dir"):
                    pending.append(name)
                else:
                    target = resolve_under(dest, name[len(path) :].lstrip("/"))
                    self._download("/get-artifact", {"path": name, "run_uuid": run_id}, target)
        return dest

    def _proxied_folder(self, root: str, folder: str, dest: Path) -> None:
        listing = self._call("GET", "-artifacts/artifacts", params={"path": folder})
        for entry in listing.get("files", []):
            name = validate_logical_path(f"{folder}/{entry['path']}")
            if entry.get("is_dir"):
                self._proxied_folder(root, name, dest)
            else:
                target = resolve_under(dest, name[len(root) :].lstrip("/"))
                self._download(f"/api/2.0/mlflow-artifacts/artifacts/{name}", {}, target)

    def _download(self, path: str, params: dict[str, str], target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._http.stream("GET", path, params=params) as answer:
                _check(answer, path)
                with open(target, "wb") as out:
                    for chunk in answer.iter_bytes():
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"downloading {path} from {self.uri} failed: {exc}") from exc

    def _pages(self, method: str, path: str, args: dict[str, Any]) -> Iterator[dict[str, Any]]:
        token = None
        while True:
            page_args = {**args, **({"page_token": token} if token else {})}
            if method == "GET":
                page = self._call("GET", path, params=page_args)
            else:
                page = self._call("POST", path, json=page_args)
            if path == "/runs/search":
                self._keys.update(_metric_keys(page))
            yield page
            token = page.get("next_page_token")
            if not token:
                return

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            answer = self._http.request(method, API + path, **kwargs)
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"cannot reach {self.uri}: {exc}") from exc
        _check(answer, path)
        try:
            found = answer.json()
        except ValueError:
            raise InvalidInput(f"{self.uri} is not an MLflow tracking server") from None
        if not isinstance(found, dict):
            raise InvalidInput(f"{self.uri} is not an MLflow tracking server")
        return found


def _metric_keys(page: dict[str, Any]) -> dict[str, list[str]]:
    return {
        item["info"]["run_id"]: sorted({m["key"] for m in item.get("data", {}).get("metrics", [])})
        for item in page.get("runs", [])
    }


def _check(answer: httpx.Response, path: str) -> None:
    if answer.status_code == 404:
        raise NotFound(f"the server has no {path} (is it an MLflow tracking server?)")
    if answer.status_code in (401, 403):
        raise InvalidInput(
            f"the server refused {path} ({answer.status_code})",
            hint="set MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD",
        )
    if answer.status_code >= 400:
        raise StoreUnavailable(f"the server answered {answer.status_code} to {path}")


def _run(item: dict[str, Any], experiment_id: str) -> SourceRun:
    info, data = item.get("info", {}), item.get("data", {})
    run = SourceRun(
        id=info["run_id"],
        experiment_id=experiment_id,
        name=info.get("run_name", ""),
        status=info.get("status", "FINISHED"),
        start_time=_int(info.get("start_time")) or 0,
        end_time=_int(info.get("end_time")),
        user=info.get("user_id", ""),
        lifecycle_stage=info.get("lifecycle_stage", "active"),
        artifact_uri=info.get("artifact_uri", ""),
        params=_pairs(data.get("params")),
        tags=_pairs(data.get("tags")),
    )
    latest = sorted(
        (m["key"], m.get("step", 0), m.get("timestamp"), str(m.get("value")))
        for m in data.get("metrics", [])
    )
    content = [info, sorted(run.params.items()), sorted(run.tags.items()), latest]
    digest = hashlib.blake2b(json.dumps(content, default=str).encode(), digest_size=16)
    return SourceRun(**{**run.__dict__, "fingerprint": digest.hexdigest()})


def _pairs(items: Any) -> dict[str, str]:
    return {str(i["key"]): str(i.get("value", "")) for i in items or []}


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float:
    if isinstance(value, str):  # MLflow's JSON spells NaN and infinities as strings
        return float(value)
    return math.nan if value is None else float(value)

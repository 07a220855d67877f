"""`loopline models ...`: the registry, cards, lineage and export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from loopline.cli._output import console, moment, number, size
from loopline.cli._trust import allow_pickle_option, trust_option

if TYPE_CHECKING:
    from loopline.store import ModelVersion

app = typer.Typer(help="Registered models: versions, aliases, status, cards.", no_args_is_help=True)


def _open() -> None:
    from loopline.cli._project import open_project

    open_project()


@app.command("ls")
def list_models(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List registered models with their latest version and aliases.

    Example: loopline models ls
    """
    from rich.table import Table

    from loopline import registry

    _open()
    models = registry.list_models()
    if as_json:
        body = [{"name": m.name, "latest": m.latest_version, "aliases": m.aliases} for m in models]
        console.print_json(json.dumps(body))
        return
    if not models:
        console.print("no models yet: `ll.models.log_model(model, name=...)` registers one")
        return
    table = Table("Model", "Latest", "Aliases", "Updated", "Description")
    for model in models:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(model.aliases.items()))
        table.add_row(
            model.name,
            str(model.latest_version or ""),
            aliases,
            moment(model.updated_at, short=True),
            model.description or "",
        )
    console.print(table)


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="churn, churn/4 or churn@champion"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a model's versions, or one version: metrics, gate results, lineage.

    Example: loopline models show churn@champion
    """
    from loopline import registry

    _open()
    parsed = registry.parse_ref(ref)
    if parsed.version is None and parsed.alias is None and parsed.run_id is None and "@" not in ref:
        _print_model(parsed.name or ref, as_json)
        return
    _print_version(registry.resolve(parsed), as_json)


@app.command("alias")
def alias(
    ref: str = typer.Argument(..., help="The version, e.g. churn/4"),
    name: str = typer.Argument(..., help="The alias, e.g. champion"),
    reason: str | None = typer.Option(None, "--reason", help="Why (kept in the audit log)."),
    delete: bool = typer.Option(False, "--delete", help="Remove the alias instead."),
) -> None:
    """Point an alias at a version (atomic, audited), or remove it with --delete.

    Example: loopline models alias churn/4 champion --reason "beats v3 on March data"
    """
    from loopline import registry

    _open()
    if delete:
        model = registry.parse_ref(ref).name or ref
        before = registry.delete_alias(model, name, reason=reason)
        console.print(f"removed {model}@{name} (was version {before})")
        return
    version = registry.set_alias(ref, name, reason=reason)
    console.print(f"{version.model}@{name} → {version.ref}")


@app.command("archive")
def archive(
    ref: str = typer.Argument(..., help="The version, e.g. churn/2"),
    reason: str | None = typer.Option(None, "--reason", help="Why (kept in the audit log)."),
) -> None:
    """Archive a version: its aliases are removed and it can no longer be promoted.

    Example: loopline models archive churn/2 --reason "superseded"
    """
    from loopline import registry

    _open()
    version = registry.archive(ref, reason=reason)
    console.print(f"{version.ref} is archived")


@app.command("describe")
def describe(
    ref: str = typer.Argument(..., help="A model (churn) or a version (churn/4)."),
    description: str | None = typer.Option(None, "--description", "-d", help="Free text."),
    tag: list[str] | None = typer.Option(
        None, "--tag", "-t", help="KEY=VALUE (repeatable), e.g. intended_use=..."
    ),
) -> None:
    """Set a description or tags; card fields come from tags such as intended_use,
    limitations, users, risk_category.

    Example: loopline models describe churn -t risk_category=limited -t "limitations=EU only"
    """
    from loopline import registry
    from loopline.errors import InvalidInput

    _open()
    tags: dict[str, str] = {}
    for item in tag or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--tag expects KEY=VALUE, got {item!r}")
        tags[key] = value
    parsed = registry.parse_ref(ref)
    if parsed.version is None and parsed.alias is None and "@" not in ref:
        model = registry.describe_model(
            parsed.name or ref, description=description, tags=tags or None
        )
        console.print(f"updated model {model.name}")
        return
    version = registry.describe(ref, description=description, tags=tags or None)
    console.print(f"updated {version.ref}")


@app.command("lineage")
def lineage(
    ref: str = typer.Argument(..., help="The version, e.g. churn/4"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show the tree from a version to its run, code and data versions.

    Example: loopline models lineage churn/4
    """
    from rich.tree import Tree

    from loopline.models import model_lineage

    _open()
    tree = model_lineage(ref)
    if as_json:
        console.print_json(json.dumps(tree))
        return
    root = Tree(f"[bold]model {tree['ref']}[/] ({tree['flavor']}, {tree['status']})")
    _add_lineage(root, tree)
    console.print(root)


@app.command("card")
def card(
    ref: str = typer.Argument(..., help="e.g. churn@champion"),
    html: bool = typer.Option(False, "--html", help="HTML instead of Markdown."),
    as_json: bool = typer.Option(False, "--json", help="Model Card Toolkit JSON."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write to this file."),
) -> None:
    """Generate a model card from the registry (Markdown, HTML or JSON).

    Example: loopline models card churn@champion --html -o card.html
    """
    from loopline.cards import render_card

    _open()
    text = render_card(ref, "json" if as_json else "html" if html else "markdown")
    if out is None:
        print(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.print(f"wrote {out}")


@app.command("export")
def export(
    ref: str = typer.Argument(..., help="The version to convert, e.g. churn/4"),
    format: str = typer.Option("onnx", "--format", help="Target format (onnx)."),
    quantize: str | None = typer.Option(None, "--quantize", help="dynamic: int8 weights."),
    data: str | None = typer.Option(
        None,
        "--data",
        help="Reference data (NAME@V) for the parity check; default: the "
        "training data the run recorded.",
    ),
    tolerance: float = typer.Option(1e-4, "--tolerance", help="Largest allowed difference."),
    trust: list[str] | None = trust_option(),
    allow_pickle: bool = allow_pickle_option(),
) -> None:
    """Convert a version to ONNX, check parity, and register it as a new version.

    Example: loopline models export churn/4 --format onnx --quantize dynamic
    """
    from rich.table import Table

    from loopline.models import export as export_model

    _open()
    result = export_model(
        ref,
        format=format,
        quantize=quantize,
        data=data,
        tolerance=tolerance,
        trusted=trust or [],
        allow_pickle=allow_pickle,
    )
    parity = result.parity
    table = Table("", "original", "onnx", title=f"{result.source.ref} → {result.version.ref}")
    table.add_row("size", size(parity.original_bytes), size(parity.onnx_bytes))
    table.add_row(
        "p50 one row",
        f"{parity.original_p50_ms_one_row:.3f} ms",
        f"{parity.onnx_p50_ms_one_row:.3f} ms",
    )
    table.add_row(
        f"p50 {parity.batch_rows} rows",
        f"{parity.original_p50_ms_batch:.3f} ms",
        f"{parity.onnx_p50_ms_batch:.3f} ms",
    )
    console.print(table)
    proba = (
        ""
        if parity.max_abs_diff_proba is None
        else f", probabilities {parity.max_abs_diff_proba:.2e}"
    )
    console.print(
        f"parity on {parity.rows:,} rows: max |Δ| predictions "
        f"{parity.max_abs_diff_prediction:.2e}{proba} (tolerance {parity.tolerance:g})"
    )
    console.print(f"registered [bold]{result.version.ref}[/] (onnx, from {result.source.ref})")


def _print_model(name: str, as_json: bool) -> None:
    from rich.table import Table

    from loopline import registry

    model = registry.get_model(name)
    versions = registry.list_versions(name)
    by_version: dict[int, list[str]] = {}
    for alias_name, number_ in model.aliases.items():
        by_version.setdefault(number_, []).append(alias_name)
    if as_json:
        body = {
            "name": model.name,
            "description": model.description,
            "tags": model.tags,
            "aliases": model.aliases,
            "versions": [_version_json(v) for v in versions],
        }
        console.print_json(json.dumps(body))
        return
    console.print(f"[bold]{model.name}[/]  {model.description or ''}")
    table = Table("Version", "Status", "Flavor", "Aliases", "Size", "Run", "Created")
    for version in versions:
        table.add_row(
            str(version.version),
            version.status.value,
            version.flavor,
            ", ".join(sorted(by_version.get(version.version, []))),
            size(version.size_bytes),
            (version.run_id or "")[:8],
            moment(version.created_at, short=True),
        )
    console.print(table)


def _print_version(version: ModelVersion, as_json: bool) -> None:
    from rich.table import Table

    from loopline.evaluation import latest_evaluation
    from loopline.promotion import list_approvals, list_gate_checks
    from loopline.registry import aliases_of

    aliases = aliases_of(version)
    evaluation = latest_evaluation(version)
    checks = list_gate_checks(version)
    approvals = list_approvals(version)
    if as_json:
        body = _version_json(version)
        body["aliases"] = aliases
        body["metrics"] = None if evaluation is None else evaluation.metrics
        body["gates"] = (
            None if not checks else {"passed": checks[0].passed, "rules": checks[0].results}
        )
        console.print_json(json.dumps(body, default=str))
        return
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    for label, value in (
        ("version", version.ref),
        ("status", version.status.value),
        ("aliases", ", ".join(aliases)),
        ("flavor", f"{version.flavor} ({version.manifest.get('model_class', '')})"),
        ("size", size(version.size_bytes)),
        ("package", version.package_hash),
        ("run", version.run_id or "(none)"),
        ("created", f"{moment(version.created_at)} by {version.created_by}"),
        ("description", version.description or ""),
        ("trusted", ", ".join(version.extra.get("trusted") or []) or "(defaults)"),
        (
            "inputs",
            ", ".join(f"{c['name']}:{c['type']}" for c in version.signature.get("inputs", [])),
        ),
    ):
        info.add_row(label, value)
    console.print(info)
    if evaluation is not None:
        table = Table("Metric", "Value", title=f"Metrics on {evaluation.record.data_ref}")
        for key, value in evaluation.metrics.items():
            table.add_row(key, number(value) if isinstance(value, int | float) else str(value))
        console.print(table)
    if checks:
        print_gate_results(checks[0].results, title=f"Gates ({moment(checks[0].created_at)})")
    from rich.tree import Tree

    from loopline.models import model_lineage

    tree = model_lineage(version)
    root = Tree(f"[bold]lineage of {version.ref}[/]")
    _add_lineage(root, tree)
    console.print(root)
    for approval in approvals:
        console.print(
            f"approved by {approval.actor}: {approval.reason} ({moment(approval.created_at)})"
        )


def print_gate_results(results: list[dict[str, Any]], *, title: str) -> None:
    """A table of gate rules: rule, verdict, actual value, reason."""
    from rich.table import Table

    table = Table("Rule", "Result", "Actual", "Reason", title=title, title_justify="left")
    for result in results:
        verdict = "[green]pass[/]" if result["passed"] else "[red]FAIL[/]"
        actual = result.get("actual")
        table.add_row(
            result["rule"], verdict, "" if actual is None else number(actual, 4), result["reason"]
        )
    console.print(table)


def _version_json(version: ModelVersion) -> dict[str, Any]:
    return {
        "ref": version.ref,
        "id": version.id,
        "status": version.status.value,
        "flavor": version.flavor,
        "size": version.size_bytes,
        "package": version.package_hash,
        "run_id": version.run_id,
        "source_version_id": version.source_version_id,
        "created_by": version.created_by,
        "created_at": version.created_at.isoformat(),
        "description": version.description,
        "tags": version.tags,
        "signature": version.signature,
        "trusted": list(version.extra.get("trusted") or []),
    }


def _add_lineage(branch: Any, node: dict[str, Any]) -> None:
    if node.get("source"):
        source = node["source"]
        child = branch.add(f"exported from model {source['ref']} ({source['flavor']})")
        _add_lineage(child, source)
    run = node.get("run")
    if run:
        _add_run(branch, run)
    elif not node.get("source"):
        branch.add("[dim]no run recorded[/]")


def _add_run(branch: Any, run: dict[str, Any]) -> None:
    if run.get("missing"):
        branch.add(f"run {run['id']} (deleted)")
        return
    child = branch.add(
        f"run {run['id'][:8]} {run['name']} in {run['experiment']} ({run['status']})"
    )
    code = run["code"]
    if code["commit"]:
        dirty = " + uncommitted changes" if code["dirty"] else ""
        child.add(f"code {code['commit'][:12]} on {code['branch'] or '?'}{dirty}")
    else:
        child.add("code: not in a git repository")
    if run["params"]:
        child.add("params " + ", ".join(f"{k}={v}" for k, v in sorted(run["params"].items())))
    for dataset in run["datasets"]:
        rows = "" if dataset.get("rows") is None else f", {dataset['rows']:,} rows"
        child.add(f"data {dataset['ref']}{rows}")
    if run.get("parent"):
        _add_run(child, run["parent"])

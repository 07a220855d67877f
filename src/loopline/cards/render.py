"""Model cards as Markdown, self-contained HTML and Model Card Toolkit JSON, from one dict.

The card dict uses the field names of Google's Model Card Toolkit (MCT) JSON schema v0.0.2,
plus loopline's own facts under `"loopline"` (and two small extensions marked below; MCT's
strict schema forbids extra top-level keys, so a validator must drop `"loopline"` first).
Only `schema_version`, `model_details.name` and `model_details.version.name` are required;
every other section may be missing (a fresh model has no metrics and no gates) and is then
shown as "—" or "not evaluated yet".

    {"schema_version": "0.0.2",
     "model_details": {"name", "overview", "documentation",
                       "version": {"name", "date", "diff"},
                       "owners": [{"name", "contact"}], "licenses": [{"identifier"|"custom_text"}],
                       "references": [{"reference"}], "citations": [{"style", "citation"}],
                       "path": artifact location                       (loopline extension)},
     "model_parameters": {"model_architecture", "input_format", "output_format",
                          "data": [{"name", "link", "description",
                                    "sensitive": {"sensitive_data": [str]},
                                    "graphics": {"description", "collection": [{"name", "image"}]},
                                    "loopline_profile": {"rows", "columns":   (loopline extension)
                                        [{"name", "type", "nulls", "mean", "min", "max"}]}}]},
     "quantitative_analysis": {"performance_metrics": [{"type", "value", "slice",
                                   "confidence_interval": {"lower_bound", "upper_bound"} | None}],
                               "graphics": {"description", "collection": [{"name", "image"}]}},
     "considerations": {"users" | "use_cases" | "limitations" | "tradeoffs": [{"description"}],
                        "ethical_considerations": [{"name", "mitigation_strategy"}]},
     "loopline": {"risk_category", "status", "aliases": [str],
                  "gates": [{"rule", "passed", "actual", "reason"}], "gates_passed": bool | None,
                  "approvals": [{"actor", "reason", "time"}],
                  "lineage": {"run_id", "git_commit", "dirty", "datasets": [{"ref", "manifest"}],
                              "experiment", "run_name", "params": {...}},
                  "evaluation": {"data", "task", "rows", "time"} | None,
                  "fairness": {...}, "calibration_ece": float, "robustness": {...},
                  "latency": {...}, "size_bytes": int, "generated_at": ISO-8601 time}}

A performance metric without a slice (or with slice "overall") is an overall metric.
Images are base64 PNGs (MCT) or `data:image/...;base64,` URIs; HTML shows them inline.
Every value is escaped: by Jinja2's autoescaping in HTML, and for `<`, `|` and `\\` in
Markdown, so a description holding `<script>` stays text in both.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.errors import InvalidInput

if TYPE_CHECKING:
    import jinja2

_TEMPLATES = Path(__file__).parent / "templates"
_DASH = "—"
_OVERALL = ("", "overall")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_DATA_URI = re.compile(r"data:image/(?:png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/]+={0,2}")
# fmt: off
_CONSIDERATIONS = (
    ("users", "Intended users"), ("use_cases", "Use cases"), ("limitations", "Limitations"),
    ("tradeoffs", "Trade-offs"),
)
_RUN_FACTS = (("experiment", "Experiment"), ("run_name", "Run name"))
_PARAMS = (
    ("model_architecture", "Architecture"), ("input_format", "Input format"),
    ("output_format", "Output format"),
)
# Optional parts of a card, and the container each must be when present.
_MAPPINGS = (
    "model_details.version", "model_parameters", "quantitative_analysis",
    "quantitative_analysis.graphics", "considerations", "loopline", "loopline.lineage",
    "loopline.evaluation",
)
_LISTS = (
    "model_details.owners", "model_details.licenses", "model_details.references",
    "model_details.citations", "model_parameters.data", "quantitative_analysis.performance_metrics",
    "quantitative_analysis.graphics.collection", "considerations.users", "considerations.use_cases",
    "considerations.limitations", "considerations.tradeoffs",
    "considerations.ethical_considerations", "loopline.gates", "loopline.approvals",
    "loopline.lineage.datasets",
)
# fmt: on


def render_markdown(card: Mapping[str, Any]) -> str:
    """The card as GitHub-flavoured Markdown: headings, tables, ✅/❌ for gates."""
    validate_card(card)
    return _template("card.md.j2").render(card=_view(card))


def render_html(card: Mapping[str, Any]) -> str:
    """The card as one self-contained HTML page (inline CSS and images, no scripts)."""
    validate_card(card)
    return _template("card.html.j2").render(card=_view(card))


def card_to_json(card: Mapping[str, Any]) -> str:
    """The card as MCT-style JSON; dates and datetimes become ISO-8601 text.

    Raises InvalidInput for a broken structure, NaN or infinity, or values JSON cannot hold.
    """
    validate_card(card)
    try:
        return json.dumps(
            card, indent=2, sort_keys=False, allow_nan=False, ensure_ascii=False, default=_iso
        )
    except (TypeError, ValueError) as exc:
        where = _unjsonable(card, "card") or "card"
        raise InvalidInput(f"model card cannot be written as JSON: {where}: {exc}") from exc


def validate_card(card: Mapping[str, Any]) -> None:
    """Check the required fields and the shape of the optional sections present.

    Raises InvalidInput naming the first broken field, e.g. `model_details.name`.
    """
    if not isinstance(card, Mapping):
        raise InvalidInput(f"a model card must be a mapping, got {type(card).__name__}")
    for path in ("schema_version", "model_details.name", "model_details.version.name"):
        value = _at(card, path)
        if not isinstance(value, str) or not value.strip():
            shown = "missing" if value is None else f"{type(value).__name__} {value!r}"
            raise InvalidInput(f"model card needs a non-empty string at {path}, got {shown}")
    for path in _MAPPINGS:
        _check(card, path, Mapping, "a mapping")
    for path in _LISTS:
        items = _check(card, path, list, "a list")
        for index, item in enumerate(items or ()):
            if not isinstance(item, Mapping):
                raise InvalidInput(f"model card: {path}[{index}] must be a mapping, got {item!r}")
    for index, metric in enumerate(_at(card, "quantitative_analysis.performance_metrics") or ()):
        if not isinstance(metric.get("type"), str) or not metric["type"]:
            raise InvalidInput(f"model card: performance_metrics[{index}] needs a 'type' name")
    if not isinstance(_at(card, "loopline.gates_passed"), bool | None):
        raise InvalidInput("model card: loopline.gates_passed must be true, false or null")
    for index, data in enumerate(_at(card, "model_parameters.data") or ()):
        for key in ("sensitive", "graphics", "loopline_profile"):
            _check(data, key, Mapping, "a mapping", f"model_parameters.data[{index}].")


def _check(card: Mapping[str, Any], path: str, kind: type, name: str, prefix: str = "") -> Any:
    value = _at(card, path)
    if value is not None and not isinstance(value, kind):
        shown = type(value).__name__
        raise InvalidInput(f"model card: {prefix}{path} must be {name}, got {shown}")
    return value


def _at(card: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or None when any step is missing or not a mapping."""
    node: Any = card
    for key in path.split("."):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


@functools.cache
def _template(name: str) -> jinja2.Template:
    import jinja2

    markdown = name.endswith(".md.j2")
    env = jinja2.Environment(
        autoescape=not markdown,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_markdown_escape if markdown else None,
    )
    env.filters["cell"] = _cell
    return env.from_string((_TEMPLATES / name).read_text(encoding="utf-8"))


# --- the view: every section as display-ready text --------------------------------------------


def _view(card: Mapping[str, Any]) -> dict[str, Any]:
    details = card["model_details"]
    ext = _section(card, "loopline")
    passed = ext.get("gates_passed")
    return {
        "name": details["name"],
        "version": details["version"]["name"],
        "schema_version": card["schema_version"],
        "overview": _text(details.get("overview"), ""),
        "documentation": _text(details.get("documentation"), ""),
        "status": _text(ext.get("status")),
        "aliases": ", ".join(_text(a) for a in ext.get("aliases") or ()) or _DASH,
        "risk": _text(ext.get("risk_category"), "not assessed"),
        "generated_at": _text(ext.get("generated_at")),
        "gates_state": "not evaluated yet" if passed is None else "passed" if passed else "failed",
        "details": _details(details),
        "parameters": [_row(label, _at(card, f"model_parameters.{key}")) for key, label in _PARAMS],
        "datasets": [_dataset(d) for d in _at(card, "model_parameters.data") or ()],
        **_metrics(_at(card, "quantitative_analysis.performance_metrics") or ()),
        "graphics": _graphics(_at(card, "quantitative_analysis.graphics")),
        "analysis": _analysis(ext),
        "evaluated_on": _evaluated_on(_section(ext, "evaluation")),
        "gates": [_gate(g) for g in ext.get("gates") or ()],
        "approvals": [_texts(a, "actor", "reason", "time") for a in ext.get("approvals") or ()],
        "lineage": _lineage(_section(ext, "lineage")),
        "considerations": _considerations(_section(card, "considerations")),
    }


def _texts(item: Mapping[str, Any], *keys: str) -> dict[str, str]:
    return {key: _text(item.get(key)) for key in keys}


def _section(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, Mapping) else {}


def _details(details: Mapping[str, Any]) -> list[dict[str, Any]]:
    version = _section(details, "version")
    owners = [
        _text(o.get("name")) + (f" ({_text(o['contact'])})" if o.get("contact") else "")
        for o in details.get("owners") or ()
    ]
    licenses = [
        _text(x.get("identifier") or x.get("custom_text")) for x in details.get("licenses") or ()
    ]
    citations = [_text(c.get("citation")) for c in details.get("citations") or ()]
    rows = [
        _row("Version", version.get("name")),
        _row("Version date", version.get("date")),
        _row("Changes", version.get("diff")),
        _row("Owners", ", ".join(owners)),
        _row("Licenses", ", ".join(licenses)),
        _row("Artifact", details.get("path")),
        _row("Citations", "; ".join(citations)),
    ]
    references = [r.get("reference") for r in details.get("references") or ()]
    rows.append({**_row("References", ""), "links": [_link(r) for r in references if r]})
    return rows


def _row(label: str, value: object) -> dict[str, Any]:
    return {"label": label, "text": _text(value), "links": []}


def _link(target: object) -> dict[str, Any]:
    """A link target, clickable in HTML only for http(s) addresses."""
    text = _text(target)
    return {"text": text, "href": text if re.match(r"https?://", text) else None}


def _dataset(data: Mapping[str, Any]) -> dict[str, Any]:
    profile = _section(data, "loopline_profile")
    sensitive = _section(data, "sensitive").get("sensitive_data") or ()
    columns = profile.get("columns") or ()
    return {
        "name": _text(data.get("name")),
        "link": _link(data.get("link")) if data.get("link") else None,
        "description": _text(data.get("description"), ""),
        "sensitive": ", ".join(_text(s) for s in sensitive) or "none declared",
        "rows": _number(profile.get("rows")),
        "columns": [
            {key: _number(c.get(key)) for key in ("name", "type", "nulls", "mean", "min", "max")}
            for c in columns
            if isinstance(c, Mapping)
        ],
        "graphics": _graphics(data.get("graphics")),
    }


def _metrics(metrics: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Overall metrics as rows; sliced ones as a table of slices × metric types."""
    overall: list[dict[str, str]] = []
    types: list[str] = []
    slices: dict[str, dict[str, str]] = {}
    for metric in metrics:
        name, value, where = metric["type"], _number(metric.get("value")), metric.get("slice")
        if where is None or str(where).strip().lower() in _OVERALL:
            interval = _section(metric, "confidence_interval")
            low, high = interval.get("lower_bound"), interval.get("upper_bound")
            ci = f"[{_number(low)}, {_number(high)}]" if interval else _DASH
            overall.append({"type": name, "value": value, "ci": ci})
            continue
        types.extend([] if name in types else [name])
        slices.setdefault(_text(where), {})[name] = value
    rows = [{"slice": s, "cells": [v.get(t, _DASH) for t in types]} for s, v in slices.items()]
    return {"overall": overall, "slice_types": types, "slice_rows": rows}


def _graphics(section: object) -> dict[str, Any]:
    section = section if isinstance(section, Mapping) else {}
    items = []
    for graphic in section.get("collection") or ():
        image = graphic.get("image") if isinstance(graphic, Mapping) else None
        uri = None
        if isinstance(image, str):
            compact = "".join(image.split())
            if _DATA_URI.fullmatch(compact):
                uri = compact
            elif _BASE64.fullmatch(compact):
                uri = "data:image/png;base64," + compact
        name = graphic.get("name") if isinstance(graphic, Mapping) else None
        items.append({"name": _text(name, "graphic"), "uri": uri})
    return {"description": _text(section.get("description"), ""), "collection": items}


def _analysis(ext: Mapping[str, Any]) -> list[dict[str, str]]:
    """Fairness, calibration, robustness, latency and size, flattened to name/value rows.

    A list (the features robustness perturbed) is a count, with its items as one
    comma-separated text in `items` for the templates to wrap, never a Python repr.
    """
    rows: list[dict[str, str]] = []
    for key in ("fairness", "calibration_ece", "robustness", "latency", "size_bytes"):
        _flatten(ext.get(key), key, rows)
    return rows


def _flatten(value: object, name: str, rows: list[dict[str, str]]) -> None:
    if value is None:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(item, f"{name}.{key}", rows)
    elif isinstance(value, list | tuple):
        items = ", ".join(_cell(_number(item)) for item in value)
        rows.append({"name": name, "value": _number(len(value)), "items": items})
    else:
        rows.append({"name": name, "value": _number(value), "items": ""})


def _evaluated_on(evaluation: Mapping[str, Any]) -> str:
    """One line about the evaluation the metrics come from, or "" when none is known."""
    if not evaluation.get("data"):
        return ""
    facts = [_text(evaluation["task"])] if evaluation.get("task") else []
    facts += [f"{_number(evaluation['rows'])} rows"] if evaluation.get("rows") is not None else []
    extra = f" ({', '.join(facts)})" if facts else ""
    when = f" at {_text(evaluation['time'])}" if evaluation.get("time") else ""
    return f"Evaluated on {_text(evaluation['data'])}{extra}{when}."


def _gate(gate: Mapping[str, Any]) -> dict[str, str]:
    passed = gate.get("passed")
    return {
        "mark": "✅" if passed is True else "❌",
        "result": "passed" if passed is True else "failed",
        "rule": _text(gate.get("rule")),
        "actual": _number(gate.get("actual")),
        "reason": _text(gate.get("reason")),
    }


def _lineage(lineage: Mapping[str, Any]) -> dict[str, Any]:
    commit = _text(lineage.get("git_commit"))
    if lineage.get("dirty") is True:
        commit += " (uncommitted changes)"
    params = lineage.get("params")
    rows = [_row("Training run", lineage.get("run_id")), _row("Git commit", commit)]
    rows += [_row(label, lineage[key]) for key, label in _RUN_FACTS if lineage.get(key)]
    if isinstance(params, Mapping) and params:
        rows.append(_row("Parameters", ", ".join(f"{k}={_text(v)}" for k, v in params.items())))
    return {
        "rows": rows,
        "datasets": [_texts(d, "ref", "manifest") for d in lineage.get("datasets") or ()],
    }


def _considerations(section: Mapping[str, Any]) -> list[dict[str, Any]]:
    groups = [
        {"title": title, "entries": [_text(x.get("description")) for x in section.get(key) or ()]}
        for key, title in _CONSIDERATIONS
    ]
    risks = []
    for risk in section.get("ethical_considerations") or ():
        mitigation = risk.get("mitigation_strategy")
        risks.append(
            _text(risk.get("name")) + (f" — mitigation: {mitigation}" if mitigation else "")
        )
    return [*groups, {"title": "Ethical considerations", "entries": risks}]


# --- formatting -------------------------------------------------------------------------------


def _text(value: object, missing: str = _DASH) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return missing
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)


def _number(value: object) -> str:
    """Numbers for people: about four significant digits; text is shown as it is."""
    if value is None:
        return _DASH
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _text(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return {math.inf: "∞", -math.inf: "-∞"}.get(value, "NaN")
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1e6 or abs(value) < 1e-3:
        return f"{value:.4g}"
    decimals = max(0, 3 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _cell(value: object) -> str:
    """One line of text for a table cell."""
    return " ".join(str(value).split())


def _markdown_escape(value: object) -> str:
    """Keep values as text in Markdown: no raw HTML, no stray table pipes or escapes."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def _iso(value: object) -> str:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _unjsonable(value: object, path: str) -> str | None:
    """The path of the first value JSON cannot hold (NaN, infinity, an unknown type)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            return path
        found = (_unjsonable(item, f"{path}.{key}") for key, item in value.items())
    elif isinstance(value, list | tuple):
        found = (_unjsonable(item, f"{path}[{i}]") for i, item in enumerate(value))
    else:
        ok = value is None or isinstance(value, str | int | dt.date | dt.datetime)
        return None if ok else path
    return next((where for where in found if where), None)

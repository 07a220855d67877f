"""Model card rendering: Markdown, self-contained HTML and MCT JSON from one card dict."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import math
import re
from html.parser import HTMLParser
from typing import Any, ClassVar

import pytest

from loopline.cards import render
from loopline.cards.render import card_to_json, render_html, render_markdown, validate_card
from loopline.errors import InvalidInput

EVIL = "<script>alert('x')</script>"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image bytes").decode()


def minimal_card() -> dict[str, Any]:
    return {
        "schema_version": "0.0.2",
        "model_details": {"name": "credit-risk", "version": {"name": "1"}},
    }


def full_card() -> dict[str, Any]:
    return {
        "schema_version": "0.0.2",
        "model_details": {
            "name": "credit-risk",
            "overview": f"Scores loan applications. {EVIL}",
            "documentation": "Gradient-boosted trees over 12 features.",
            "version": {"name": "7", "date": "2024-05-01", "diff": "more trees | deeper"},
            "owners": [{"name": "Risk team", "contact": "risk@example.com"}],
            "licenses": [{"identifier": "Apache-2.0"}],
            "references": [
                {"reference": "https://example.com/credit"},
                {"reference": "javascript:alert(1)"},
            ],
            "citations": [{"style": "text", "citation": "Risk team, 2024"}],
            "path": "models/credit-risk/7",
        },
        "model_parameters": {
            "model_architecture": "xgboost.XGBClassifier",
            "input_format": "12 numeric columns",
            "output_format": "probability of default",
            "data": [
                {
                    "name": "credit.csv@3",
                    "link": "https://data.example.com/credit",
                    "sensitive": {"sensitive_data": ["sex", "age"]},
                    "graphics": {},
                    "loopline_profile": {
                        "rows": 12_000,
                        "columns": [
                            {
                                "name": "age",
                                "type": "integer",
                                "nulls": 0,
                                "mean": 41.23456,
                                "min": 18,
                                "max": 90,
                            },
                            {
                                "name": "income|usd",
                                "type": "float",
                                "nulls": 12,
                                "mean": 52000.5,
                                "min": 0.0,
                                "max": 1.5e6,
                            },
                        ],
                    },
                }
            ],
        },
        "quantitative_analysis": {
            "performance_metrics": [
                {
                    "type": "roc_auc",
                    "value": 0.91234,
                    "slice": None,
                    "confidence_interval": {"lower_bound": 0.9, "upper_bound": 0.925},
                },
                {
                    "type": "accuracy",
                    "value": 0.88,
                    "slice": "overall",
                    "confidence_interval": None,
                },
                {"type": "roc_auc", "value": 0.86, "slice": "sex=F"},
                {"type": "roc_auc", "value": 0.93, "slice": "sex=M"},
                {"type": "accuracy", "value": 0.87, "slice": "sex=M"},
            ],
            "graphics": {
                "description": "ROC curves",
                "collection": [
                    {"name": "roc", "image": PNG},
                    {"name": "broken", "image": 'not base64 " onerror=alert(1)'},
                ],
            },
        },
        "considerations": {
            "users": [{"description": "Loan officers"}],
            "use_cases": [{"description": "Pre-screening applications"}],
            "limitations": [{"description": "Not calibrated for applicants under 21"}],
            "tradeoffs": [],
            "ethical_considerations": [
                {"name": "Disparate impact by sex", "mitigation_strategy": "Parity gate <= 0.1"}
            ],
        },
        "loopline": {
            "risk_category": "high",
            "status": "staging",
            "aliases": ["champion", "candidate"],
            "gates": [
                {
                    "rule": "metrics.roc_auc >= 0.9",
                    "passed": True,
                    "actual": 0.91234,
                    "reason": "0.91234 >= 0.9",
                },
                {
                    "rule": "slices.min.roc_auc >= 0.88",
                    "passed": False,
                    "actual": 0.86,
                    "reason": "0.86 is not >= 0.88",
                },
            ],
            "gates_passed": False,
            "approvals": [{"actor": "alice", "reason": "reviewed", "time": "2024-05-02T10:00:00Z"}],
            "lineage": {
                "run_id": "run-abc123",
                "git_commit": "0f3e9a1",
                "dirty": True,
                "datasets": [{"ref": "credit.csv@3", "manifest": "blake3:77aa"}],
                "experiment": "credit",
                "run_name": "xgb-deep",
                "params": {"max_depth": 6, "eta": 0.1},
            },
            "evaluation": {
                "data": "credit.csv@3",
                "task": "binary",
                "rows": 2400,
                "time": "2024-05-02T09:00:00+00:00",
            },
            "robustness": {"flip_rate": 0.01},
            "size_bytes": 123456,
            "fairness": {"sex": {"demographic_parity_diff": 0.04}},
            "calibration_ece": 0.031,
            "latency": {"p50_ms": 1.2, "p99_ms": 3.5},
            "generated_at": "2024-05-02T10:05:00+00:00",
        },
    }


class _Collector(HTMLParser):
    """Collects tags and text to check the page is well formed and has no scripts."""

    VOID: ClassVar[set[str]] = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.open: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, (tag, self.open[-3:])
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    collector.close()
    assert collector.open == []
    return collector


# Markdown ------------------------------------------------------------------------------------


def test_full_card_markdown_has_every_section() -> None:
    text = render_markdown(full_card())
    assert text.startswith("# Model card: credit-risk (version 7)\n")
    for heading in (
        "Model details",
        "Data",
        "Performance",
        "Promotion gates",
        "Approvals",
        "Lineage",
        "Considerations",
    ):
        assert f"\n## {heading}\n" in text
    assert "| roc_auc | 0.9123 | [0.9, 0.925] |" in text
    assert "| Slice | roc_auc | accuracy |" in text
    assert "| sex=F | 0.86 | — |" in text
    assert "| sex=M | 0.93 | 0.87 |" in text
    assert "| ✅ | metrics.roc_auc >= 0.9 | 0.9123 | 0.91234 >= 0.9 |" in text
    assert "| ❌ | slices.min.roc_auc >= 0.88 |" in text
    assert "Overall: failed." in text
    assert "| alice | reviewed | 2024-05-02T10:00:00Z |" in text
    assert "0f3e9a1 (uncommitted changes)" in text
    assert "| credit.csv@3 | blake3:77aa |" in text
    assert "| age | integer | 0 | 41.23 | 18 | 90 |" in text
    assert "- Rows: 12,000" in text
    assert "| high |" in text and "champion, candidate" in text
    assert "- Disparate impact by sex — mitigation: Parity gate &lt;= 0.1" in text
    assert "| fairness.sex.demographic_parity_diff | 0.04 |" in text
    assert "| latency.p99_ms | 3.5 |" in text
    assert "| robustness.flip_rate | 0.01 |" in text and "| size_bytes | 123,456 |" in text
    assert "Evaluated on credit.csv@3 (binary, 2,400 rows) at 2024-05-02T09:00:00+00:00." in text
    assert "| Experiment | credit |" in text and "| Parameters | max_depth=6, eta=0.1 |" in text


def test_markdown_tables_keep_their_shape_when_values_hold_pipes() -> None:
    text = render_markdown(full_card())
    assert "| Changes | more trees \\| deeper |" in text
    assert "| income\\|usd | float | 12 | 52,000 | 0 | 1,500,000 |" in text
    for line in text.splitlines():
        if line.startswith("| Slice"):
            assert line.count("|") == 4


def test_minimal_card_markdown_says_what_is_missing() -> None:
    text = render_markdown(minimal_card())
    assert "# Model card: credit-risk (version 1)" in text
    assert "Not evaluated yet." in text
    assert "Gates: not evaluated yet." in text
    assert "No dataset versions recorded." in text
    assert "None recorded." in text
    assert "| Training run | — |" in text
    assert "None" not in text.replace("None recorded.", "")
    assert "\n\n\n" not in text


def fresh_card() -> dict[str, Any]:
    """A just-registered version: every section present but empty, as the registry fills it."""
    return {
        "schema_version": "0.0.2",
        "model_details": {
            "name": "churn",
            "overview": "",
            "version": {"name": "1", "date": "2024-05-01", "diff": ""},
            "owners": [{"name": "bob", "contact": ""}],
            "licenses": [],
            "references": [],
            "citations": [],
            "path": "models:/churn/1",
        },
        "model_parameters": {
            "model_architecture": "LogisticRegression (sklearn)",
            "data": [
                {
                    "name": "churn.csv@1",
                    "link": "manifest 0a1b",
                    "sensitive": {"sensitive_data": []},
                    "loopline_profile": None,
                }
            ],
            "input_format": "",
            "output_format": "",
        },
        "quantitative_analysis": {
            "performance_metrics": [],
            "graphics": {"description": "", "collection": []},
        },
        "considerations": {
            "users": [],
            "use_cases": [],
            "limitations": [],
            "tradeoffs": [],
            "ethical_considerations": [],
        },
        "loopline": {
            "risk_category": None,
            "status": "none",
            "aliases": [],
            "evaluation": None,
            "gates": [],
            "gates_passed": None,
            "approvals": [],
            "lineage": {"run_id": None, "git_commit": None, "dirty": None, "datasets": []},
            "fairness": {},
            "calibration_ece": None,
            "robustness": {},
            "latency": {},
            "size_bytes": None,
            "generated_at": "2024-05-01T00:00:00+00:00",
        },
    }


def test_fresh_card_with_empty_sections_renders_everywhere() -> None:
    card = fresh_card()
    text = render_markdown(card)
    assert "Not evaluated yet." in text and "Gates: not evaluated yet." in text
    assert "| Owners | bob |" in text and "- Link: manifest 0a1b" in text
    assert "- Rows: —" in text and "Fairness" not in text
    assert "None" not in text.replace("None recorded.", "")
    page = render_html(card)
    assert "not evaluated yet" in page and "<a " not in page
    parse_html(page)
    assert json.loads(card_to_json(card)) == card


def test_markdown_escapes_html() -> None:
    text = render_markdown(full_card())
    assert EVIL not in text
    assert "&lt;script>alert('x')&lt;/script>" in text


# HTML ----------------------------------------------------------------------------------------


def test_full_card_html_is_self_contained_and_escaped() -> None:
    page = render_html(full_card())
    parsed = parse_html(page)
    assert "script" not in parsed.tags
    assert EVIL not in page and "&lt;script&gt;" in page
    assert EVIL in "".join(parsed.text)  # shown to the reader as text
    sources = [value for name, value in parsed.attrs if name in ("src", "href")]
    assert sources == [
        "https://example.com/credit",
        "https://data.example.com/credit",
        f"data:image/png;base64,{PNG}",
    ]  # no javascript: link, no broken image
    assert "GATES FAILED" in page
    text = " ".join("".join(parsed.text).split())
    for words in (
        "Promotion gates",
        "metrics.roc_auc >= 0.9",
        "0.86 is not >= 0.88",
        "alice",
        "run-abc123",
        "credit.csv@3",
        "Loan officers",
        "sex=M",
        "Parity gate <= 0.1",
    ):
        assert words in text


def test_minimal_card_html_renders() -> None:
    page = render_html(minimal_card())
    text = " ".join("".join(parse_html(page).text).split())
    assert "credit-risk" in text
    assert "Not evaluated yet." in text and "Gates: not evaluated yet." in text
    assert "GATES" not in page


def test_html_template_is_found_next_to_the_module() -> None:
    assert (render._TEMPLATES / "card.html.j2").is_file()
    assert (render._TEMPLATES / "card.md.j2").is_file()


# JSON and validation -------------------------------------------------------------------------


@pytest.mark.parametrize("make", [full_card, minimal_card])
def test_json_round_trips_with_mct_field_names(make: Any) -> None:
    card = make()
    data = json.loads(card_to_json(card))
    assert data == card
    assert list(data) == list(card)  # key order kept
    assert data["model_details"]["version"]["name"] == card["model_details"]["version"]["name"]


def test_json_uses_mct_names() -> None:
    data = json.loads(card_to_json(full_card()))
    assert set(data) >= {
        "schema_version",
        "model_details",
        "model_parameters",
        "quantitative_analysis",
        "considerations",
    }
    assert data["quantitative_analysis"]["performance_metrics"][0]["type"] == "roc_auc"
    assert data["considerations"]["ethical_considerations"][0]["mitigation_strategy"]


def test_json_writes_dates_and_refuses_nan() -> None:
    card = minimal_card()
    card["loopline"] = {"generated_at": dt.datetime(2024, 5, 2, tzinfo=dt.UTC)}
    assert json.loads(card_to_json(card))["loopline"]["generated_at"] == "2024-05-02T00:00:00+00:00"
    card["loopline"] = {"calibration_ece": math.nan}
    with pytest.raises(InvalidInput, match=r"card\.loopline\.calibration_ece"):
        card_to_json(card)
    card["loopline"] = {"latency": {"p99_ms": object()}}
    with pytest.raises(InvalidInput, match=r"card\.loopline\.latency\.p99_ms"):
        card_to_json(card)


def without(path: str) -> dict[str, Any]:
    card = copy.deepcopy(full_card())
    *parents, last = path.split(".")
    node = card
    for key in parents:
        node = node[key]
    del node[last]
    return card


@pytest.mark.parametrize(
    "path",
    [
        "schema_version",
        "model_details",
        "model_details.name",
        "model_details.version",
        "model_details.version.name",
    ],
)
def test_validate_card_rejects_missing_required_fields(path: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(path.split(".")[-1])):
        validate_card(without(path))
    for function in (render_markdown, render_html, card_to_json):
        with pytest.raises(InvalidInput):
            function(without(path))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["model_details"].update(name=""), "model_details.name"),
        (lambda c: c["model_details"]["version"].update(name=7), "model_details.version.name"),
        (lambda c: c.update(considerations=["x"]), "considerations must be a mapping"),
        (lambda c: c["loopline"].update(gates={"a": 1}), "loopline.gates must be a list"),
        (lambda c: c["loopline"].update(gates=["x"]), r"loopline.gates\[0\] must be a mapping"),
        (lambda c: c["loopline"].update(gates_passed="yes"), "gates_passed"),
        (
            lambda c: c["quantitative_analysis"]["performance_metrics"].append({"value": 1}),
            r"performance_metrics\[5\] needs a 'type'",
        ),
        (
            lambda c: c["model_parameters"]["data"][0].update(loopline_profile=[1]),
            r"data\[0\].loopline_profile must be a mapping",
        ),
    ],
)
def test_validate_card_rejects_broken_structure(change: Any, message: str) -> None:
    card = full_card()
    change(card)
    with pytest.raises(InvalidInput, match=message):
        validate_card(card)


def test_validate_card_needs_a_mapping() -> None:
    with pytest.raises(InvalidInput, match="must be a mapping"):
        validate_card([("schema_version", "0.0.2")])  # type: ignore[arg-type]


# --- lists in the analysis table ------------------------------------------------------------

# the 13 inputs of a wine model, long enough that a repr in a `nowrap` cell broke the page
INPUTS = [f"feature_number_{index:02d}_with_a_long_name" for index in range(13)]


class _Cells(HTMLParser):
    """Each table row as (cell text, cell class, whether the cell holds a <details>)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[str, str, bool]]] = []
        self._cell: list[Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = ["", dict(attrs).get("class") or "", False]
        elif tag == "details" and self._cell is not None:
            self._cell[2] = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append((self._cell[0], self._cell[1], self._cell[2]))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[0] += data


def _robust_card() -> dict[str, Any]:
    card = full_card()
    card["loopline"]["robustness"] = {"flip_rate": 0.01, "noise": 0.01, "features": INPUTS}
    return card


def test_a_list_in_the_analysis_table_is_a_count_with_the_items_wrapped() -> None:
    parser = _Cells()
    parser.feed(render_html(_robust_card()))
    cells = [cell for row in parser.rows for cell in row]
    assert not any(re.search(r"\[\s*'", text) for text, _, _ in cells)  # no Python list repr
    row = next(r for r in parser.rows if r and r[0][0] == "robustness.features")
    text, css, has_details = row[1]
    assert has_details and css == "list"  # wraps: not the `num` cell, which is nowrap
    assert text.startswith("13") and int(text[:2]) == len(INPUTS)
    assert ", ".join(INPUTS) in text
    flip = next(r for r in parser.rows if r and r[0][0] == "robustness.flip_rate")
    assert flip[1] == ("0.01", "num", False)


def test_a_list_in_the_markdown_card_is_a_count_and_a_comma_list() -> None:
    text = render_markdown(_robust_card())
    assert f"| robustness.features | 13: {', '.join(INPUTS)} |" in text
    assert "['" not in text


def test_an_empty_or_hostile_list_renders_as_text() -> None:
    card = full_card()
    card["loopline"]["robustness"] = {"features": []}
    assert "| robustness.features | 0 |" in render_markdown(card)
    card["loopline"]["robustness"] = {"features": [EVIL, "a|b", 1.23456789]}
    page = render_html(card)
    assert EVIL not in page and "&lt;script&gt;" in page
    assert "3: " in render_markdown(card) and "a\\|b, 1.235" in render_markdown(card)

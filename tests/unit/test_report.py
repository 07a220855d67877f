"""The HTML data-quality report: self-contained, escaped, with failures, rules and charts."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from loopline.data import report
from loopline.data.report import render_html
from loopline.data.validation import (
    Expectation,
    ExpectationSuite,
    ValidationResult,
    infer_suite,
    validate,
)
from loopline.errors import InvalidInput

EVIL = "<script>alert('x')</script>"


@pytest.fixture
def failed() -> ValidationResult:
    frame = pd.DataFrame(
        {
            "id": range(40),
            "age": range(20, 60),  # distinct ages: a range (few repeated integers get a set)
            EVIL: ["a", "b"] * 20,
            "größe & name": np.linspace(0, 1, 40),
        }
    )
    suite = infer_suite(frame, name="people <v2>")
    bad = frame.copy()
    bad.loc[:2, "age"] = 999
    bad.loc[5, EVIL] = "<img src=x onerror=alert(1)>"
    bad.loc[6, "größe & name"] = np.inf
    return validate(bad, suite, examples=2)


def profile_of(frame: pd.DataFrame) -> dict[str, object]:
    stats: list[dict[str, object]] = []
    for name in frame.columns:
        column = frame[name]
        stat: dict[str, object] = {
            "name": name,
            "type": str(column.dtype),
            "count": int(column.notna().sum()),
            "nulls": int(column.isna().sum()),
            "distinct": int(column.nunique()),
        }
        if column.dtype.kind in "if":
            counts, edges = np.histogram(column.dropna(), bins=10)
            stat |= {
                "min": float(column.min()),
                "max": float(column.max()),
                "mean": float(column.mean()),
                "std": "nan",
                "quantiles": {"p50": float(column.median())},
                "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
            }
        else:
            top = column.astype(str).value_counts().head(5)
            stat["top_values"] = [[value, int(count)] for value, count in top.items()]
        stats.append(stat)
    return {"row_count": len(frame), "columns": [], "stats": stats}


class _Tags(HTMLParser):
    """Collects tags and attributes, and checks that the elements nest properly."""

    VOID: ClassVar[set[str]] = {"meta", "br", "img", "input", "link", "hr", "line", "rect"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1:]}>"
        self.open.pop()


def parse(html: str) -> _Tags:
    tags = _Tags()
    tags.feed(html)
    tags.close()
    assert tags.open == []
    return tags


def test_report_shows_summary_failures_with_examples_and_passed_rules(
    failed: ValidationResult,
) -> None:
    html = render_html(failed, title="Validation of people@2")
    parse(html)
    assert "FAILED" in html and "people &lt;v2&gt;" in html
    assert "age: 3 values outside [16, 63]" in html  # 20..59, widened by 10% of the range
    assert "Failed expectations" in html and "Passed expectations" in html
    assert len(re.findall(r'<div class="failure">', html)) == len(failed.failures) == 3
    assert ">999<" in html  # a failing value in the examples table
    assert html.count("row_count_between") == 1  # the table rule is among the passed ones


def test_report_escapes_every_user_value(failed: ValidationResult) -> None:
    html = render_html(
        failed, title=f"Report {EVIL}", profile=profile_of(pd.DataFrame({EVIL: ["<b>"]}))
    )
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "größe &amp; name" in html


def test_report_is_self_contained(failed: ValidationResult) -> None:
    frame = pd.DataFrame({"x": np.arange(100.0), "city": ["a", "b"] * 50})
    html = render_html(failed, title="t", profile=profile_of(frame))
    tags = parse(html)
    names = {tag for tag, _ in tags.tags}
    assert not names & {"script", "link", "img", "iframe", "object", "embed"}
    for _, attrs in tags.tags:
        assert not {"src", "srcset"} & attrs.keys()
        assert (attrs.get("href") or "#").startswith("#")
    assert "url(" not in html and "@import" not in html and "@font-face" not in html


def test_passing_result_says_so() -> None:
    frame = pd.DataFrame({"x": [1, 2, 3]})
    result = validate(frame, infer_suite(frame, name="tiny"))
    html = render_html(result, title="ok")
    parse(html)
    assert "PASSED" in html and "every expectation held" in html


def test_profile_adds_a_section_per_column_with_charts(failed: ValidationResult) -> None:
    frame = pd.DataFrame({"age": np.arange(50.0), "city": ["Berlin", "Paris"] * 25})
    profile = profile_of(frame)
    stats = profile["stats"]
    assert isinstance(stats, list)
    stats.append({"name": "old style", "histogram": [[0, 1, 2], [3, 4]], "count": 7, "nulls": 0})
    stats.append({"name": "broken", "histogram": {"edges": ["x"], "counts": [1]}, "count": 1})
    html = render_html(failed, title="t", profile=profile)
    parse(html)
    sections = re.findall(r'<section class="col[^"]*" id="column-(\d+)">', html)
    assert sections == ["0", "1", "2", "3"]
    histograms = html.count('aria-label="histogram"')
    assert histograms == 2  # age, and the [edges, counts] form; "broken" has none
    assert html.count('<rect class="bar"') == 10 + 2 + 2  # 10 + 2 bins, and 2 city bars
    assert "Berlin" in html and "<title>[0, 4.9): 5</title>" in html
    assert "(50 rows profiled)" in html


def test_failed_column_sections_are_marked_and_linked(failed: ValidationResult) -> None:
    frame = pd.DataFrame({"age": [30.0], "id": [1]})
    html = render_html(failed, title="t", profile=profile_of(frame))
    assert '<section class="col failed" id="column-0">' in html
    assert '<a href="#column-0">age</a>' in html


def test_bad_arguments_are_rejected(failed: ValidationResult) -> None:
    with pytest.raises(InvalidInput, match="ValidationResult"):
        render_html({"suite": "s"}, title="t")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="profile must be a mapping"):
        render_html(failed, title="t", profile=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="'stats' must be a list of mappings"):
        render_html(failed, title="t", profile={"stats": [1]})


def test_report_of_a_missing_column_and_a_table_rule() -> None:
    suite = ExpectationSuite(
        "s",
        (
            Expectation("row_count_between", None, {"min": 10, "max": None}),
            Expectation("not_null", "gone"),
        ),
    )
    html = render_html(validate(pd.DataFrame({"x": [1]}), suite), title="t")
    assert "row count 1 is outside [10, inf]" in html and "[10, ∞]" in html
    assert "gone: column is missing from the data (not_null)" in html


def test_template_ships_inside_the_package() -> None:
    template = Path(report.__file__).parent / "templates" / "validation_report.html.j2"
    assert template.is_file()

"""No module of loopline passes 600 lines: one that grows so is asking to be split by
concept (STYLE.md), and this test names it."""

from __future__ import annotations

from pathlib import Path

import loopline

MAX_LINES = 600
SOURCE = Path(loopline.__file__).parent


def _lines(path: Path) -> int:
    with path.open("rb") as file:
        return sum(1 for _ in file)


def test_no_module_passes_600_lines() -> None:
    sizes = {path.relative_to(SOURCE.parent): _lines(path) for path in SOURCE.rglob("*.py")}
    assert sizes, f"no modules found under {SOURCE}"
    too_long = [
        f"{path} ({count} lines)" for path, count in sorted(sizes.items()) if count > MAX_LINES
    ]
    assert not too_long, (
        f"modules over {MAX_LINES} lines, to split by concept: {', '.join(too_long)}"
    )

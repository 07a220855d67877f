"""A version's input example, kept with it: the rows `log_model(input_example=...)` got.

The package keeps only the signature the example implies; the rows themselves are kept
in the version's `extra["input_example"]` (JSON, "split" orientation, at most
`MAX_ROWS` rows and `MAX_CHARS` characters) so that an ONNX conversion at serve time has
reference rows for its parity check when the version's run recorded no dataset.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from loopline.registry import ModelVersion

KEY = "input_example"
MAX_ROWS = 100
MAX_CHARS = 65_536


def example_extra(input_example: Any) -> dict[str, Any]:
    """{"input_example": {"columns": [...], "data": [[...], ...]}} for a version's extra,
    or {} when there is no example or it does not fit in `MAX_CHARS` even as one row."""
    if input_example is None:
        return {}
    from loopline.packaging import example_frame

    frame = example_frame(input_example).head(MAX_ROWS)
    while len(frame):
        # to_json writes NaN and inf as null and dates as ISO text: plain JSON for any store
        text = frame.to_json(orient="split", index=False, date_format="iso")
        if len(text) <= MAX_CHARS:
            body = json.loads(text)
            return {KEY: {"columns": body["columns"], "data": body["data"]}}
        frame = frame.head(len(frame) // 2)
    return {}


def example_rows(version: ModelVersion) -> pd.DataFrame | None:
    """The input example kept with `version`, or None (logged before examples were kept,
    or without one)."""
    import pandas as pd

    kept = version.extra.get(KEY)
    if not isinstance(kept, dict) or not kept.get("data"):
        return None
    return pd.DataFrame(kept["data"], columns=kept.get("columns"))

"""The feedback route's body: one {"request_id", "label"} object, a list of them, or
{"feedback": [...]}, turned into the items `loopline.predictions.record_feedback` checks
and stores."""

from __future__ import annotations

from typing import Any

from loopline.errors import InvalidField, InvalidInput
from loopline.serving._inputs import describe

_INT64 = (-(2**63), 2**63 - 1)


def feedback_items(body: Any) -> list[dict[str, Any]]:
    """The labels of a feedback body: one {"request_id", "label"} object, a list of them,
    or {"feedback": [...]}; each item is checked by `record_feedback`, an integer label
    past 64 bits here (stored, it could never be read back as a number)."""
    if isinstance(body, dict) and "feedback" in body:
        if set(body) != {"feedback"}:
            raise InvalidInput('a feedback batch is {"feedback": [...]} with nothing else')
        body = body["feedback"]
    if isinstance(body, dict):
        body = [body]
    if isinstance(body, list):
        for index, item in enumerate(body):
            label = item.get("label") if type(item) is dict else None
            if type(label) is int and not _INT64[0] <= label <= _INT64[1]:
                raise InvalidField(
                    f"feedback item {index}: label {describe(label)} is an integer past 64 "
                    "bits; send it as a string or a decimal number",
                    field="label",
                    row=index,
                )
        return body
    raise InvalidInput(
        'feedback is {"request_id": ..., "label": ...}, a list of them, or {"feedback": [...]}',
        hint="the request id is the X-Request-Id header of the prediction's response",
    )

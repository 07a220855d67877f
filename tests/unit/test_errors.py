"""Each error class carries its HTTP status and CLI exit code."""

from __future__ import annotations

from loopline import errors


def test_every_error_type_is_registered_and_distinct_in_exit_code() -> None:
    classes = list(errors.ERROR_TYPES.values())
    assert all(issubclass(cls, errors.LooplineError) for cls in classes)
    top_level = [c for c in classes if c.__bases__ == (errors.LooplineError,)]
    assert len({c.exit_code for c in top_level}) == len(top_level)


def test_error_body_and_hint() -> None:
    exc = errors.NotFound("no run with id 'x'", hint="list them")
    assert exc.to_dict() == {
        "type": "NotFound",
        "message": "no run with id 'x'",
        "hint": "list them",
    }
    assert (exc.http_status, exc.exit_code) == (404, 3)
    missing = errors.MissingExtra("s3:// artifact stores", "s3")
    assert missing.hint == "pip install 'loopline[s3]'" and missing.http_status == 501

"""The suite's one wait, `eventually`: it returns the first value that holds, fails with
what it waited for and the last value seen, and retries only the errors it is told to."""

from __future__ import annotations

import pytest

from fixtures.waiting import eventually


def _counter(values: list[object]):  # type: ignore[no-untyped-def]
    seen = iter(values)
    return lambda: next(seen)


def test_it_returns_the_first_truthy_value() -> None:
    assert eventually(_counter([0, None, [], "ready", "later"]), interval=0) == "ready"


def test_until_judges_the_value_and_the_value_is_returned() -> None:
    check = _counter([503, 503, 200])
    assert eventually(check, until=lambda status: status == 200, interval=0) == 200


def test_a_timeout_names_the_message_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"never ready after 0\.05 s; last seen: 'loading'"):
        eventually(
            lambda: "loading", until=lambda v: v == "ok", timeout=0.05, message="never ready"
        )


def test_a_message_can_be_computed_when_the_wait_fails() -> None:
    waited = []
    with pytest.raises(AssertionError, match="after 1 tries"):
        eventually(
            lambda: waited.append(1),
            timeout=0,
            message=lambda: f"nothing after {len(waited)} tries",
        )


def test_ignored_errors_are_retried_and_others_end_the_wait() -> None:
    attempts: list[int] = []

    def up_on_the_third_try() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("refused")
        return "up"

    assert eventually(up_on_the_third_try, interval=0, ignoring=(ConnectionError,)) == "up"
    attempts.clear()
    with pytest.raises(ConnectionError):
        eventually(up_on_the_third_try, interval=0)
    assert len(attempts) == 1


def test_an_ignored_error_is_the_last_value_seen() -> None:
    def refused() -> None:
        raise ConnectionError("refused")

    with pytest.raises(AssertionError, match=r"last seen: ConnectionError\('refused'\)"):
        eventually(refused, timeout=0, ignoring=(ConnectionError,))

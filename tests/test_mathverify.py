"""The time-limited math-verify worker: a slow check gives False quickly and never hangs.

The slow check is injected (`check=`), so no pathological math-verify input is needed. Check
functions live at module level because the spawned worker imports them by name.
"""

from __future__ import annotations

import time

import pytest

from coevolve.domains.mathverify import TimedVerifier, math_verify_check


def _hang_or_compare(a: str, b: str) -> bool:
    if a == "hang":
        time.sleep(3600)
    if a == "raise":
        raise ZeroDivisionError("boom")
    return a == b


@pytest.fixture
def verifier():
    with TimedVerifier(timeout_s=0.5, check=_hang_or_compare) as timed:
        yield timed


def test_timeout_gives_false_quickly_and_recovers(verifier: TimedVerifier) -> None:
    assert verifier.equivalent("a", "a")  # starts and warms the worker
    start = time.monotonic()
    assert verifier.equivalent("hang", "hang") is False
    assert time.monotonic() - start < 2.0
    assert verifier.timeouts == 1
    assert verifier.equivalent("b", "b")  # a fresh worker answers
    assert not verifier.equivalent("b", "c")


def test_failing_check_gives_false(verifier: TimedVerifier) -> None:
    assert verifier.equivalent("raise", "raise") is False
    assert verifier.errors == 1
    assert verifier.equivalent("a", "a")  # the worker survived


def test_close_then_reuse(verifier: TimedVerifier) -> None:
    assert verifier.equivalent("a", "a")
    verifier.close()
    assert verifier.equivalent("a", "a")  # restarts on demand


def test_rejects_non_positive_timeout() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        TimedVerifier(timeout_s=0)


@pytest.mark.parametrize("a, b, expected", [
    (r"\frac{1}{2}", "0.5", True),  # fraction and decimal
    ("12", "12.0", True),  # integer and float
    (r"\{1, 2\}", r"\{2, 1\}", True),  # sets ignore order
    ("3", "4", False),
    ("", "1", False),  # nothing to parse
])
def test_math_verify_check(a: str, b: str, expected: bool) -> None:
    assert math_verify_check(a, b) is expected  # in-process: math-verify's own limits apply

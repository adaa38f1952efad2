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


def _hang_on_hostile(a: str, b: str) -> bool:
    if a.startswith("hostile") or b.startswith("hostile"):
        time.sleep(3600)
    return a == b


def _allocate(a: str, b: str) -> bool:
    if a == "big":
        return len(bytearray(2 << 30)) > 0  # 2 GiB, over the worker's cap in the test
    return a == b


def test_ten_hostile_answers_cost_at_most_fifteen_time_limits() -> None:
    from coevolve.selfplay.vote import majority_vote

    answers = [f"hostile{i}" for i in range(10)]
    with TimedVerifier(timeout_s=0.3, check=_hang_on_hostile) as timed:
        assert timed.equivalent("a", "a")  # start the worker outside the timing
        start = time.monotonic()
        vote = majority_vote(answers, timed.equivalent)
        elapsed = time.monotonic() - start
    assert vote.count == 1  # every answer is its own class: no false match
    # 45 pairs: at most 5 run to the limit together, then each hostile answer once alone
    assert timed.timeouts <= 15 and timed.skipped >= 45 - 5
    assert elapsed < 15 * (0.3 + 3.0)  # a limit plus a worker restart each


def test_an_innocent_partner_of_a_hostile_answer_still_matches() -> None:
    with TimedVerifier(timeout_s=0.3, check=_hang_on_hostile) as timed:
        assert timed.equivalent("hostile", "innocent") is False  # times out
        assert timed.equivalent("innocent", "innocent")  # not blocked by its hostile partner
        assert timed.equivalent("hostile", "hostile") is False and timed.skipped == 1  # blocked


def test_the_worker_memory_is_capped() -> None:
    with TimedVerifier(timeout_s=10, check=_allocate, memory_bytes=1 << 30) as timed:
        assert timed.equivalent("big", "big") is False
        assert timed.errors == 1
        assert timed.equivalent("a", "a")  # the worker survived


@pytest.mark.parametrize("a, b", [
    ("x", "7$ and the answer is $x"),  # a hidden second formula after a `$`
    ("7", "$7$ or $8"),  # the same, with a leading formula
])
def test_a_dollar_inside_an_answer_never_matches_by_accident(a: str, b: str) -> None:
    from coevolve.domains.math import MathDomain

    with TimedVerifier(timeout_s=10, check=_hang_or_compare) as timed:
        assert timed.equivalent(a, b) is False and timed.skipped == 1  # refused before the worker
    domain = MathDomain()
    assert domain.equivalent(a, b) is False
    assert domain._verifier is not None and domain._verifier._process is None  # refused before math-verify


@pytest.mark.parametrize("a, b, skipped", [
    ("1" * 301, "1" * 301, 1),  # over MAX_ANSWER_CHARS, though equal: never sent
    ("x$", "x$", 1),  # a `$` inside, though equal
    ("1" * 300, "1" * 300, 0),  # at the bound: checked
])
def test_the_verifier_refuses_long_and_dollar_answers(a: str, b: str, skipped: int) -> None:
    with TimedVerifier(timeout_s=10, check=_hang_or_compare) as timed:
        assert timed.equivalent(a, b) is (skipped == 0)
        assert timed.skipped == skipped


def test_a_long_answer_is_not_sent_to_math_verify() -> None:
    from coevolve.domains.math import MathDomain

    domain = MathDomain()
    long = "x + " * 100 + "1"
    assert domain.equivalent(long, long + " ")  # identical: a match without math-verify
    assert domain.equivalent(long, "1 + " + long) is False
    assert domain._verifier is not None and domain._verifier.skipped == 1  # refused by the verifier
    assert domain._verifier._process is None  # no worker started

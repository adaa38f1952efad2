"""The bandit curriculum: TD(0), Boltzmann probabilities, seeded sampling, state round-trip."""

import math

import pytest

from coevolve.selfplay.curriculum import Bandit, arm_rewards


def test_td0_update_moves_only_given_arms():
    bandit = Bandit(["a", "b", "c"], alpha=0.5, temperature=1.0)
    bandit.update({"a": 1.0})
    bandit.update({"a": 0.0, "b": 2.0})
    # a: 0 -> 0.5 -> 0.25; b: 0 -> 1.0; c untouched
    assert bandit.q == pytest.approx({"a": 0.25, "b": 1.0, "c": 0.0})
    assert bandit.updates == 2


@pytest.mark.parametrize(
    "q, temperature, expected",
    [
        # equal values: uniform whatever the temperature
        ({"a": 0.3, "b": 0.3}, 0.2, {"a": 0.5, "b": 0.5}),
        # softmax(Q/τ) with τ = 1
        ({"a": 1.0, "b": 0.0}, 1.0, {"a": math.e / (math.e + 1), "b": 1 / (math.e + 1)}),
        # a lower temperature sharpens: Q/τ = (2, 0)
        ({"a": 1.0, "b": 0.0}, 0.5, {"a": math.e**2 / (math.e**2 + 1), "b": 1 / (math.e**2 + 1)}),
        # large values do not overflow
        ({"a": 1000.0, "b": 999.0}, 1.0, {"a": math.e / (math.e + 1), "b": 1 / (math.e + 1)}),
    ],
)
def test_probabilities(q, temperature, expected):
    bandit = Bandit(list(q), temperature=temperature)
    bandit.q = dict(q)
    assert bandit.probabilities() == pytest.approx(expected)


def test_sampling_is_seeded_and_follows_probabilities():
    first = Bandit(["a", "b"], seed=7)
    second = Bandit(["a", "b"], seed=7)
    assert first.sample(20) == second.sample(20)
    skewed = Bandit(["a", "b"], temperature=0.1, seed=0)
    skewed.q = {"a": 1.0, "b": 0.0}  # p(a) = 1 / (1 + e^-10)
    assert skewed.sample(200).count("a") >= 195


def test_state_round_trip_resumes_the_same_sequence():
    bandit = Bandit(["x", "y", "z"], alpha=0.3, seed=3)
    bandit.update({"x": 0.9})
    bandit.sample(5)
    state = bandit.state_dict()
    expected = bandit.sample(10)
    restored = Bandit(["x", "y", "z"], seed=999)
    restored.load_state_dict(state)
    assert restored.q == bandit.q and restored.alpha == 0.3
    assert restored.sample(10) == expected


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(arms=[]), "at least one arm"),  # nothing to choose from
        (dict(arms=["a", "a"]), "distinct"),  # duplicate arm
        (dict(arms=["a"], alpha=0.0), "alpha"),  # alpha must be > 0
        (dict(arms=["a"], temperature=0.0), "temperature"),  # τ must be > 0
    ],
)
def test_bad_bandit_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Bandit(**kwargs)


def test_update_rejects_unknown_arm():
    with pytest.raises(KeyError, match="valid"):
        Bandit(["a"]).update({"b": 1.0})


def test_load_rejects_other_arms():
    with pytest.raises(ValueError, match="differ"):
        Bandit(["a", "b"]).load_state_dict(Bandit(["a", "c"]).state_dict())


@pytest.mark.parametrize(
    "categories, advantages, expected",
    [
        (["a", "a", "b"], [1.0, -1.0, 0.0], {"a": 1.0, "b": 0.0}),  # |±1| averages to 1
        (["a", "b", "a"], [0.5, -2.0, -0.5], {"a": 0.5, "b": 2.0}),  # order does not matter
        ([], [], {}),  # empty step
    ],
)
def test_arm_rewards(categories, advantages, expected):
    assert arm_rewards(categories, advantages) == pytest.approx(expected)


@pytest.mark.parametrize(
    "allowed, expected",
    [
        (["b"], {"b"}),  # only one arm allowed: every draw is that arm
        (["a", "c"], {"a", "c"}),  # restricted to two of three arms
    ],
)
def test_sample_restricted_to_allowed_arms(allowed, expected):
    bandit = Bandit(["a", "b", "c"], seed=1)
    assert set(bandit.sample(50, allowed=allowed)) == expected


def test_sample_with_no_allowed_arm_fails():
    with pytest.raises(ValueError, match="no arm allowed"):
        Bandit(["a"]).sample(1, allowed=["z"])

"""The paired bootstrap: no false alarm on identical arms, a real shift is found, and it is reproducible."""

from __future__ import annotations

import random

import pytest

from rrtf_lite.stats import average_over_seeds, bootstrap_mean, paired_bootstrap, paired_values


def _coin_flips(n: int, p: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.random() < p) for _ in range(n)]


def test_identical_arms_give_an_interval_around_zero():
    a = _coin_flips(120, 0.3, seed=1)
    out = paired_bootstrap(a, list(a), resamples=2000, seed=0)
    assert out["delta"] == 0.0 and out["ci95"] == [0.0, 0.0]


def test_two_arms_with_the_same_rate_have_an_interval_containing_zero():
    a, b = _coin_flips(120, 0.3, seed=1), _coin_flips(120, 0.3, seed=2)
    lo, hi = paired_bootstrap(a, b, resamples=4000, seed=0)["ci95"]
    assert lo < 0 < hi


def test_a_known_shift_is_detected():
    base = _coin_flips(150, 0.2, seed=3)
    # the better arm solves everything the base solves plus about 30 % of the rest
    rng = random.Random(4)
    better = [1.0 if b else float(rng.random() < 0.3) for b in base]
    out = paired_bootstrap(better, base, resamples=4000, seed=0)
    assert out["delta"] == pytest.approx(sum(better) / 150 - sum(base) / 150)
    assert out["ci95"][0] > 0.1 and out["ci95"][1] > out["delta"] > out["ci95"][0]


def test_a_shift_the_other_way_gives_an_interval_below_zero():
    base = [1.0] * 40 + [0.0] * 60
    worse = [0.0] * 20 + [1.0] * 20 + [0.0] * 60
    assert paired_bootstrap(worse, base, resamples=2000, seed=0)["ci95"][1] < 0


def test_same_seed_same_interval_other_seed_other_interval():
    a, b = _coin_flips(100, 0.4, seed=5), _coin_flips(100, 0.3, seed=6)
    first = paired_bootstrap(a, b, resamples=3000, seed=7)
    assert paired_bootstrap(a, b, resamples=3000, seed=7) == first
    assert paired_bootstrap(a, b, resamples=3000, seed=8)["ci95"] != first["ci95"]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="at least one"):
        paired_bootstrap([], [])


def test_bootstrap_mean_brackets_the_mean():
    scores = _coin_flips(100, 0.5, seed=9)
    out = bootstrap_mean(scores, resamples=2000)
    assert out["ci95"][0] < out["mean"] < out["ci95"][1]


def test_average_over_seeds_is_per_problem_and_needs_the_same_problems():
    assert average_over_seeds([{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 0.0}]) == {"a": 0.5, "b": 0.0}
    with pytest.raises(ValueError, match="same problems"):
        average_over_seeds([{"a": 1.0}, {"b": 1.0}])


def test_paired_values_keep_the_pairing_and_refuse_different_problems():
    assert paired_values({"x": 1.0, "y": 0.0}, {"y": 0.5, "x": 0.25}) == ([1.0, 0.0], [0.25, 0.5])
    with pytest.raises(ValueError, match="different problems"):
        paired_values({"x": 1.0}, {"y": 1.0})

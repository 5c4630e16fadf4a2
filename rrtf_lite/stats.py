"""Paired bootstrap over problems: is one arm's score really different from another's on the same problems?

Two arms answer the same problems, so their per-problem scores are paired; resampling problems (with
replacement) and recomputing the mean difference keeps that pairing, which makes the interval much tighter
than comparing two independent means. The interval is the percentile interval of the resampled differences
(Efron & Tibshirani 1993, ch. 13), the standard choice for pass@1 comparisons over a fixed problem set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def paired_bootstrap(
    scores: Sequence[float],
    baseline: Sequence[float],
    resamples: int = 10000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Mean of ``scores - baseline`` over problems and its bootstrap interval (problems resampled together).

    Returns ``{"delta": float, "ci95": [lo, hi], "n": int}``; the same seed gives the same interval.
    """
    a = np.asarray(scores, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired scores must be two 1-d sequences of one length, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("paired_bootstrap needs at least one problem")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 1000):  # chunks: 10k x 164 indices at once would be needlessly large
        stop = min(start + 1000, resamples)
        idx = rng.integers(0, diff.size, size=(stop - start, diff.size))
        means[start:stop] = diff[idx].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return {"delta": float(diff.mean()), "ci95": [float(lo), float(hi)], "n": int(diff.size)}


def bootstrap_mean(scores: Sequence[float], resamples: int = 10000, seed: int = 0, confidence: float = 0.95) -> dict:
    """An interval for one arm's own mean score (the bars of the arms plot): the paired bootstrap against 0."""
    out = paired_bootstrap(scores, [0.0] * len(scores), resamples, seed, confidence)
    return {"mean": out["delta"], "ci95": out["ci95"], "n": out["n"]}


def average_over_seeds(per_seed: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per-problem scores of several training seeds -> one score per problem, their mean.

    Every seed must score the same problems: a problem missing in one seed would bias the pairing.
    """
    if not per_seed:
        raise ValueError("no seeds to average")
    ids = set(per_seed[0])
    for scores in per_seed[1:]:
        if set(scores) != ids:
            raise ValueError("every seed must score the same problems")
    return {pid: sum(scores[pid] for scores in per_seed) / len(per_seed) for pid in per_seed[0]}


def paired_values(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[list[float], list[float]]:
    """Two arms' per-problem scores in one order, over the problems both have (they should have all)."""
    ids = [pid for pid in a if pid in b]
    if len(ids) != len(a) or len(ids) != len(b):
        raise ValueError(f"arms scored different problems ({len(a)} vs {len(b)}, {len(ids)} in common)")
    return [a[pid] for pid in ids], [b[pid] for pid in ids]

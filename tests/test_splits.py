"""Splits: near-duplicates land on one side, HumanEval look-alikes are left out, rates are stratified."""

from __future__ import annotations

import json
from pathlib import Path

from rrtf_lite import data, splits
from rrtf_lite.decontam import NearPair

REPO = Path(__file__).resolve().parent.parent


def _p(pid: str, parent: str | None = None) -> dict:
    return {"id": pid, "parent_id": parent}


def test_build_splits_keeps_near_duplicates_on_one_side():
    seeds = [_p("seed/a"), _p("seed/b"), _p("heldout/c")]
    bank = [_p(f"bank/{i:03d}") for i in range(40)]
    evolutions = [_p("evol/seed/a/r1/x", "seed/a")]
    humaneval = [_p("HumanEval/1")]
    rates = {p["id"]: (0.25, 0.5, 0.0, 0.75, 1.0)[i % 5] for i, p in enumerate(bank)}
    pairs = [
        NearPair("bank/000", "bank/001", "ast", 0.9),  # a bank pair: dealt together
        NearPair("bank/002", "seed/a", "solves", 1.0),  # near training data: train
        NearPair("bank/003", "HumanEval/1", "text", 0.7),  # near HumanEval: excluded
        NearPair("seed/b", "heldout/c", "solves", 1.0),  # near the old held-out set: held out with it
        NearPair("evol/seed/a/r1/x", "heldout/c", "ast", 0.6),  # an evolution near it: excluded
    ]
    result = splits.build_splits(seeds, {"heldout/c"}, bank, evolutions, humaneval, rates, 10, 5, pairs=pairs)
    side = {i: name for name in splits.SPLIT_NAMES for i in result[name]}
    assert side["bank/000"] == side["bank/001"]
    assert side["bank/002"] == "train" and side["seed/a"] == "train"
    assert "bank/003" in result["excluded"] and "bank/003" not in side
    assert side["seed/b"] == side["heldout/c"] == "heldout_hard"
    assert "evol/seed/a/r1/x" in result["excluded"]
    assert result["crossing_pairs"] == []
    assert 9 <= len(result["heldout"]) <= 13 and 4 <= len(result["validation"]) <= 8  # per-stratum rounding
    assert sorted(side) == sorted(p["id"] for p in seeds + bank if p["id"] != "bank/003")


def test_deal_lifts_a_low_mean_rate_into_range():
    ids = [f"b/{i}" for i in range(200)]
    rates = {i: (0.25 if n % 5 == 0 else 0.0) for n, i in enumerate(ids)}  # mean 0.05: mostly never solved
    out = splits.deal([[i] for i in ids], rates, 40, 10)
    held = [rates[i] for i in out["heldout"]]
    assert len(held) >= 38 and 0.15 <= sum(held) / len(held) <= 0.60
    assert sorted(out["heldout"] + out["validation"] + out["train"]) == sorted(ids)


def test_committed_splits_partition_the_data():
    committed = data.load_splits()
    listed = [i for name in splits.SPLIT_NAMES for i in committed[name]]
    assert len(listed) == len(set(listed)), "a problem is in two splits"
    every = {p["id"] for p in data.load_seed_problems() + data.load_bank()}
    excluded = {i for i in committed.get("excluded", {}) if not i.startswith("evol/")}  # and recorded evolutions
    assert set(listed) | excluded == every and not set(listed) & excluded
    assert set(committed.get("train_frontier", [])) <= set(committed["train"])


def test_committed_splits_meet_their_targets():
    """At least 150 held-out problems with a mean calibrated rate in [0.15, 0.60], at least 50 for validation, and
    no near-duplicate pair across the train / evaluation boundary (data/decontamination.json)."""
    committed = data.load_splits()
    assert len(committed["heldout"]) >= splits.HELDOUT_MIN and len(committed["validation"]) >= splits.VALIDATION_MIN
    low, high = splits.HELDOUT_RATE
    assert low <= committed["mean_rate"]["heldout"] <= high
    rates = splits.load_rates(REPO / committed["calibration"]["file"], committed["calibration"]["prompt_format"])
    assert all(i in rates for i in committed["heldout"] + committed["validation"])
    report = json.loads((REPO / "data" / "decontamination.json").read_text())
    assert report["crossing_at_or_above_threshold"] == []
    side = {i: name for name in splits.SPLIT_NAMES for i in committed[name]}
    for group in report["groups"]:
        assert len({side[i] for i in group if i in side}) <= 1, group


def test_pipeline_problems_and_split_lookup():
    committed = data.load_splits()
    frontier = data.pipeline_problems("train_frontier") if committed.get("train_frontier") else []
    assert {p["id"] for p in frontier} == set(committed.get("train_frontier", []))
    assert [p["id"] for p in data.pipeline_problems("train")] == [p["id"] for p in data.load_seed_problems("train")]
    assert data.split_of("evol/seed/a001/r1/breadth") == data.split_of("seed/a001")
    for name in splits.SPLIT_NAMES:
        assert all(data.split_of(i) == name for i in committed[name][:20])

"""Leak-proof splits stratified by the student's calibrated pass rate: ``data/splits.json``.

Four lists of problem ids:

- ``heldout``: bank problems at the student's frontier, for the before/after measurement (at least
  ``HELDOUT_MIN`` problems whose mean calibrated rate lies in ``HELDOUT_RATE``);
- ``validation``: bank problems drawn the same way, for choosing settings (never the held-out set);
- ``heldout_hard``: the problems written to be held out before the bank existed (``data/heldout`` and the seed
  problems the hash rule holds out), reported apart: the student almost never solves them;
- ``train``: everything else (seed and bank problems), which training may use; ``train_frontier`` lists its
  problems the student solved at least once in its calibration (where its answers reach every level and the
  teacher's tie-break can fire).

Near-duplicates (``decontam.find_pairs`` over the seed, held-out, bank and recorded-evolution problems and
HumanEval) are joined into groups that land on one side: a group that touches ``heldout_hard`` goes there
whole, a bank problem near a HumanEval problem is excluded (HumanEval is evaluated), and the bank's other groups
are dealt to the three bank splits whole. Within each stratum of calibrated rate (passed out of n), groups are
dealt in a fixed pseudo-random order, so each split gets the same mix of rates.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from rrtf_lite.decontam import NearPair, crossing, find_pairs, leak_groups
from rrtf_lite.stages import digest

HELDOUT_MIN, VALIDATION_MIN = 150, 50
HELDOUT_RATE = (0.15, 0.60)  # the held-out set's mean calibrated rate must lie here
# what ``deal`` aims for: above the bottom of the range, since n=4 rates selected as non-zero regress towards the
# bank's mean when the base student is measured again
HELDOUT_TARGET = (0.17, 0.60)
SPLIT_NAMES = ("train", "validation", "heldout", "heldout_hard")


def _order(key: str, seed: int) -> str:
    return digest(f"{seed}/{key}")


def load_rates(path: str | Path, prompt_format: str) -> dict[str, float]:
    """id -> sampled pass rate (passed / n) of one prompt format in a calibration file."""
    rates = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        if r["prompt_format"] == prompt_format:
            rates[r["id"]] = r["passed"] / r["n"]
    return rates


def frontier(rate: float) -> bool:
    """A problem the student solves sometimes, but not always, in its calibration."""
    return 0.0 < rate < 1.0


def deal(
    groups: list[list[str]],
    rates: dict[str, float],
    heldout: int,
    validation: int,
    seed: int = 0,
    rate_range: tuple[float, float] = HELDOUT_TARGET,
) -> dict[str, list[str]]:
    """Deal whole groups of bank ids into heldout / validation / train, stratified by calibrated rate.

    Each stratum (a group's mean rate) gives heldout and validation a share of its groups in proportion to its
    size, in a fixed random order. Strata at the frontier (solved sometimes) keep weight 1; those never or
    always solved get the largest weight ``alpha`` <= 1 for which the heldout mean rate still lies in
    ``rate_range``: the before/after comparison needs problems whose rate can move.
    """
    strata: dict[float, list[list[str]]] = defaultdict(list)
    unrated = []
    for g in groups:
        if all(i in rates for i in g):
            strata[round(sum(rates[i] for i in g) / len(g), 3)].append(g)
        else:
            unrated.append(g)
    for k in strata:
        strata[k].sort(key=lambda g: _order(g[0], seed))
    size = {k: sum(len(g) for g in v) for k, v in strata.items()}

    def mean_with(alpha: float) -> float:
        weight = {k: size[k] * (1.0 if frontier(k) else alpha) for k in size}
        total = sum(weight.values()) or 1.0
        return sum(k * w for k, w in weight.items()) / total

    low, high = rate_range
    alpha = 1.0
    while alpha > 0 and not (low <= mean_with(alpha) <= high):
        alpha = round(alpha - 0.05, 2)
    alpha = max(alpha, 0.0)
    weight = {k: size[k] * (1.0 if frontier(k) else alpha) for k in size}
    total = sum(weight.values()) or 1.0
    out: dict[str, list[str]] = {"heldout": [], "validation": [], "train": []}
    for k, members in sorted(strata.items()):
        quota = {
            name: round(target * weight[k] / total)
            for name, target in (("heldout", heldout), ("validation", validation))
        }
        for g in members:  # a group goes whole where it fits (a big cluster of look-alikes stays in train)
            name = next((n for n in ("heldout", "validation") if quota[n] > 0 and len(g) <= quota[n] + 1), "train")
            out[name] += g
            if name != "train":
                quota[name] -= len(g)
    # rounding and whole groups can leave a split short: top it up from what went to train, never solved first
    # (that keeps the frontier the stratified deal gave each split, and some for training)
    spare = sorted(
        (g for g in (x for members in strata.values() for x in members) if g[0] in set(out["train"])),
        key=lambda g: (sum(rates[i] for i in g) > 0, _order(g[0], seed)),
    )
    for name, target in (("heldout", heldout), ("validation", validation)):
        for g in list(spare):
            if len(out[name]) >= target:
                break
            out[name] += g
            out["train"] = [i for i in out["train"] if i not in set(g)]
            spare.remove(g)
    out["train"] += [i for g in unrated for i in g]
    return {k: sorted(v) for k, v in out.items()}


def build_splits(
    seeds: list[dict],
    old_heldout: set[str],
    bank: list[dict],
    evolutions: list[dict],
    humaneval: list[dict],
    rates: dict[str, float],
    heldout: int = HELDOUT_MIN + 10,
    validation: int = VALIDATION_MIN + 10,
    seed: int = 0,
    pairs: list[NearPair] | None = None,
) -> dict:
    """The content of ``data/splits.json`` (see the module docstring); ``pairs``: precomputed near pairs."""
    everything = seeds + bank + evolutions + humaneval
    pairs = pairs if pairs is not None else find_pairs(everything)
    kind = {p["id"]: "seed" for p in seeds} | {p["id"]: "bank" for p in bank}
    kind |= {p["id"]: "evol" for p in evolutions} | {p["id"]: "humaneval" for p in humaneval}
    groups = leak_groups([p["id"] for p in everything], pairs)
    split: dict[str, str] = {}
    excluded: dict[str, str] = {}
    bank_groups = []
    for g in groups:
        kinds = {kind[i] for i in g}
        if "humaneval" in kinds:  # HumanEval is evaluated: nothing near it is trained on or counted twice
            for i in g:
                if i in old_heldout:  # evaluated apart already: stays where it was
                    split[i] = "heldout_hard"
                elif kind[i] != "humaneval":
                    excluded[i] = "near " + ", ".join(j for j in g if kind[j] == "humaneval")
            continue
        if any(i in old_heldout for i in g):  # near something held out since before the bank: held out with it
            for i in g:
                if kind[i] in ("seed", "bank"):
                    split[i] = "heldout_hard"
                elif kind[i] == "evol":  # the evolve stage drops it (evol's held-out filter)
                    excluded[i] = "near " + ", ".join(j for j in g if j in old_heldout)
            continue
        if "seed" in kinds or "evol" in kinds:  # near training data: train
            for i in g:
                if kind[i] in ("seed", "bank"):
                    split[i] = "train"
            continue
        bank_groups.append(g)
    dealt = deal(bank_groups, rates, heldout, validation, seed)
    for name, ids in dealt.items():
        for i in ids:
            split[i] = name
    lists = {name: sorted(i for i, s in split.items() if s == name) for name in SPLIT_NAMES}
    side = dict(split) | {p["id"]: "train" for p in evolutions if p["id"] not in excluded}
    side |= {p["id"]: "humaneval" for p in humaneval}
    leaks = crossing(pairs, side)
    return {
        **lists,
        "excluded": dict(sorted(excluded.items())),
        "groups": [g for g in groups if len(g) > 1 and any(kind[i] in ("seed", "bank") for i in g)],
        "crossing_pairs": [p.to_dict() for p in leaks],
    }


def mean_rate(ids: list[str], rates: dict[str, float]) -> float | None:
    known = [rates[i] for i in ids if i in rates]
    return round(sum(known) / len(known), 4) if known else None


def top_pairs(pairs: list[NearPair], per_check: int = 10) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for p in sorted(pairs, key=lambda p: -p.value):
        bucket = out.setdefault(p.check, [])
        if len(bucket) < per_check:
            bucket.append(p.to_dict())
    return out


def _family(problem_id: str) -> str:
    """The seed an evolved problem descends from (evolutions keep their parent's entry point by design)."""
    return problem_id[len("evol/") :].rsplit("/r", 1)[0] if problem_id.startswith("evol/") else problem_id


def main(argv: list[str] | None = None) -> int:
    """Regenerate data/splits.json and data/decontamination.json from the data and a calibration file."""
    import argparse
    import sys
    import time

    from rrtf_lite import data
    from rrtf_lite.calibrate import default_path
    from rrtf_lite.decontam import SOLVES_TIMEOUT, THRESHOLDS, statement
    from rrtf_lite.prompts import PROMPT_FORMAT
    from rrtf_lite.records import read_jsonl, write_json, write_jsonl

    parser = argparse.ArgumentParser(prog="python -m rrtf_lite.splits", description=main.__doc__)
    parser.add_argument("--calibration", default=str(default_path("smollm2-135m-instruct")))
    parser.add_argument("--prompt-format", default=PROMPT_FORMAT)
    parser.add_argument("--heldout", type=int, default=HELDOUT_MIN + 10)
    parser.add_argument("--validation", type=int, default=VALIDATION_MIN + 10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reuse-pairs",
        action="store_true",
        help="reuse data/decontamination_pairs.jsonl if the problems are unchanged",
    )
    args = parser.parse_args(argv)
    started = time.time()
    seeds, bank = data.load_seed_problems(), data.load_bank()
    old_heldout = {p["id"] for p in seeds if data.held_out_by_rule(p["id"])}
    evolutions, humaneval = data.load_recorded_evolutions(include_excluded=True), data.load_humaneval()
    rates = load_rates(args.calibration, args.prompt_format)
    report_limits = {"text": 0.3, "ast": 0.4, "solves": 0.5}  # lower, to report the nearest pairs below the bar
    everything = seeds + bank + evolutions + humaneval
    pairs_path = data.data_dir() / "decontamination_pairs.jsonl"
    checked = digest(json.dumps([[p["id"], p["tests"], p.get("reference_solution"), statement(p)] for p in everything]))
    checked = digest(checked + json.dumps([report_limits, THRESHOLDS, SOLVES_TIMEOUT]))
    cached = read_jsonl(pairs_path) if args.reuse_pairs and pairs_path.exists() else []
    if cached and cached[0].get("problems_digest") == checked:
        near = [NearPair(**{k: v for k, v in r.items() if k != "problems_digest"}) for r in cached[1:]]
    else:  # the slow part: about 58k reference-on-tests runs in the sandbox
        near = find_pairs(everything, report_limits, progress=True)
        write_jsonl(pairs_path, [{"problems_digest": checked}] + [p.to_dict() for p in near])
    flagged = [p for p in near if p.check == "entry_point" or p.value >= THRESHOLDS[p.check]]
    result = build_splits(
        seeds, old_heldout, bank, evolutions, humaneval, rates, args.heldout, args.validation, args.seed, flagged
    )
    side = {i: name for name in SPLIT_NAMES for i in result[name]}
    side |= {p["id"]: "train" for p in evolutions if p["id"] not in result["excluded"]}
    side |= {p["id"]: "humaneval" for p in humaneval}
    below = [p for p in crossing(near, side) if p not in flagged]
    command = "python -m rrtf_lite.splits " + " ".join(argv if argv is not None else sys.argv[1:])
    splits = {
        "rule": __doc__.split("\n\n")[0],
        "command": command.strip(),
        "calibration": {
            "file": str(Path(args.calibration).relative_to(data.data_dir().parent)),
            "prompt_format": args.prompt_format,
        },
        "mean_rate": {name: mean_rate(result[name], rates) for name in ("train", "validation", "heldout")},
        **{name: result[name] for name in SPLIT_NAMES},
        "train_frontier": sorted(i for i in result["train"] if rates.get(i, 0.0) > 0),
        "excluded": result["excluded"],
    }
    write_json(data.data_dir() / "splits.json", splits)
    write_json(
        data.data_dir() / "decontamination.json",
        {
            "command": command.strip(),
            "seconds": round(time.time() - started, 1),
            "problems": {
                "seed": len(seeds),
                "bank": len(bank),
                "evol_recorded": len(evolutions),
                "humaneval": len(humaneval),
            },
            "thresholds": {"entry_point": "equal", **THRESHOLDS},
            "flagged_pairs": [
                p.to_dict() for p in flagged if not (p.check == "entry_point" and p.b.startswith("evol/" + p.a))
            ],
            "groups": result["groups"],
            "crossing_at_or_above_threshold": result["crossing_pairs"],
            "nearest_crossing_below_threshold": top_pairs(below),
        },
    )
    print(json.dumps({k: len(v) if isinstance(v, (list, dict)) else v for k, v in splits.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

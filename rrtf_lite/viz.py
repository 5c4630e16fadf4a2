"""Plots for reports and notebooks, and an ipywidgets explorer of ranked responses.

Every plot function returns the matplotlib Figure and, given ``path``, also saves it as a PNG (and closes
it, so a report run over many plots does not keep figures alive). matplotlib and ipywidgets are imported
inside the functions: importing this module stays cheap and the CLI never needs a display.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from pathlib import Path

LEVEL_NAMES = {0: "compile error", 1: "runtime error", 2: "partial", 3: "all pass"}
PHASE_COLORS = {"before": "#9aa5b1", "after": "#2f7ed8"}


def _pyplot():
    """pyplot; headless it falls back to Agg by itself (tests set MPLBACKEND=Agg), notebooks stay inline."""
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, path: str | Path | None):
    fig.tight_layout()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        _pyplot().close(fig)
    return fig


# ---------------------------------------------------------------- evaluation
def plot_pass_at_1(rows: list[dict] | dict, path: str | Path | None = None, title: str = "pass@1 before / after"):
    """Bars of pass@1 (in %) per dataset, before and after training; ``rows`` as in ``report["rows"]``."""
    plt = _pyplot()
    rows = rows["rows"] if isinstance(rows, dict) else rows
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    phases = [p for p in ("before", "after") if any(r["phase"] == p for r in rows)]
    width = 0.8 / max(len(phases), 1)
    fig, ax = plt.subplots(figsize=(max(4, 2.2 * len(datasets) + 1), 3.6))
    for j, phase in enumerate(phases):
        by_name = {r["dataset"]: r for r in rows if r["phase"] == phase}
        xs, heights, labels = [], [], []
        for i, name in enumerate(datasets):
            row = by_name.get(name)
            if row is None or row.get("pass@1") is None:
                continue
            xs.append(i + (j - (len(phases) - 1) / 2) * width)
            heights.append(100 * row["pass@1"])
            labels.append(f"{100 * row['pass@1']:.1f}\n{row['solved']}/{row['n']}")
        bars = ax.bar(xs, heights, width, label=phase, color=PHASE_COLORS.get(phase))
        ax.bar_label(bars, labels=labels, fontsize=8)
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_ylabel("pass@1 (%)")
    top = max([100 * r["pass@1"] for r in rows if r.get("pass@1") is not None] + [10])
    ax.set_ylim(0, min(100, top * 1.35 + 5))
    ax.set_title(title)
    if phases:
        ax.legend()
    return _finish(fig, path)


# ---------------------------------------------------------------- ranking
def plot_levels(stats: dict, path: str | Path | None = None, title: str = "execution outcome per source"):
    """Histogram of levels (compile error .. all pass) per source, from rank stats ``{"levels": {src: {l: n}}}``.

    Level keys may be ints or strings (after a JSON round trip).
    """
    plt = _pyplot()
    levels = stats.get("levels", stats)
    sources = list(levels)
    width = 0.8 / max(len(sources), 1)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for j, source in enumerate(sources):
        counts = {int(k): v for k, v in levels[source].items()}
        xs = [lv + (j - (len(sources) - 1) / 2) * width for lv in range(4)]
        bars = ax.bar(xs, [counts.get(lv, 0) for lv in range(4)], width, label=source)
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(range(4), [LEVEL_NAMES[lv] for lv in range(4)])
    ax.set_ylabel("responses")
    ax.set_title(title)
    if sources:
        ax.legend()
    return _finish(fig, path)


# ---------------------------------------------------------------- training
def plot_loss(log_history: list[dict], path: str | Path | None = None, title: str = "training loss"):
    """Loss curves (total, rank, SFT; eval loss if logged) from ``trainer.state.log_history``, and the pair
    accuracy on a second axis when it was logged (not NaN)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))

    def series(key):
        points = [(h["step"], h[key]) for h in log_history if isinstance(h.get(key), (int, float))]
        return [(s, v) for s, v in points if not math.isnan(v)]

    for key in ("loss", "rank_loss", "sft_loss", "eval_loss"):
        points = series(key)
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, label=key, marker="." if len(points) < 50 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left")
    accuracy = series("pair_accuracy")
    if accuracy:
        ax2 = ax.twinx()
        ax2.plot(*zip(*accuracy, strict=True), color="gray", linestyle="--", label="pair accuracy")
        ax2.set_ylabel("pair accuracy")
        ax2.set_ylim(-0.05, 1.05)
        ax2.legend(loc="upper right")
    return _finish(fig, path)


# ---------------------------------------------------------------- evolution
def evolution_table(stats: list[dict] | dict) -> list[dict]:
    """Rows ``{"round", "method", "kept", "dropped"}`` from any of:

    - the evolve stage's ``evol_stats.json`` (its ``table``: attempted/kept/dropped-by-reason per round and method);
    - problem records (``evol_method``/``evol_round``; originals count as method "seed", round 0), all kept;
    - a mapping ``{method: {round: kept}}`` or ``{method: kept}``.
    """
    if isinstance(stats, dict) and "table" in stats:
        return [
            {
                "round": int(r["round"]),
                "method": r["method"],
                "kept": int(r.get("kept", 0)),
                "dropped": sum(r["dropped"].values())
                if isinstance(r.get("dropped"), dict)
                else int(r.get("dropped", 0)),
            }
            for r in stats["table"]
        ]
    if isinstance(stats, dict):
        return [
            {"round": int(rnd), "method": str(m), "kept": int(n), "dropped": 0}
            for m, v in stats.items()
            for rnd, n in (v.items() if isinstance(v, dict) else [(1, v)])
        ]
    counts = Counter((p.get("evol_method") or "seed", int(p.get("evol_round") or 0)) for p in stats)
    return [{"round": r, "method": m, "kept": n, "dropped": 0} for (m, r), n in sorted(counts.items())]


def plot_evolution(stats: list[dict] | dict, path: str | Path | None = None, title: str = "Evol-Instruct"):
    """Per method, one bar per round: kept problems (solid) with the eliminated ones stacked on top (hatched);
    with ``evol_stats.json`` a second panel shows why problems were eliminated."""
    plt = _pyplot()
    rows = evolution_table(stats)
    reasons = stats.get("dropped") if isinstance(stats, dict) and isinstance(stats.get("dropped"), dict) else {}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    rounds = sorted({r["round"] for r in rows})
    ncols = 2 if reasons else 1
    fig, axes = plt.subplots(1, ncols, figsize=(max(5, 1.2 * len(methods) + 2) + 4 * (ncols - 1), 3.8), squeeze=False)
    ax = axes[0][0]
    width = 0.8 / max(len(rounds), 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, rnd in enumerate(rounds):
        cell = {r["method"]: r for r in rows if r["round"] == rnd}
        xs = [i + (j - (len(rounds) - 1) / 2) * width for i in range(len(methods))]
        kept = [cell.get(m, {}).get("kept", 0) for m in methods]
        dropped = [cell.get(m, {}).get("dropped", 0) for m in methods]
        color = colors[j % len(colors)]
        ax.bar(xs, kept, width, color=color, label=f"round {rnd} kept")
        if any(dropped):
            ax.bar(xs, dropped, width, bottom=kept, color=color, alpha=0.3, hatch="//", label=f"round {rnd} dropped")
    ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
    ax.set_ylabel("problems")
    ax.set_title(title)
    if rounds:
        ax.legend(fontsize=8)
    if reasons:
        names = sorted(reasons, key=lambda k: -reasons[k])
        axes[0][1].barh(names, [reasons[k] for k in names], color="#c0504d")
        axes[0][1].invert_yaxis()
        axes[0][1].set_title("eliminated: why")
    return _finish(fig, path)


# ---------------------------------------------------------------- explorer
def _executions_for(group: dict, executions: list[dict]) -> list[dict | None]:
    """The execution of each response of a group.

    Uses the group's ``sample_indices`` when present; otherwise the i-th response of a source is matched to
    that source's i-th execution in file order, the order in which the rank stage builds groups.
    """
    mine = [e for e in executions if e["problem_id"] == group["problem_id"]]
    by_key = {(e["source"], e["sample_index"]): e for e in mine}
    indices = group.get("sample_indices")
    if indices:
        return [by_key.get((s, i)) for s, i in zip(group["sources"], indices, strict=True)]
    per_source: dict[str, list[dict]] = {}
    for e in mine:
        per_source.setdefault(e["source"], []).append(e)
    seen: Counter = Counter()
    out = []
    for source in group["sources"]:
        items = per_source.get(source, [])
        out.append(items[seen[source]] if seen[source] < len(items) else None)
        seen[source] += 1
    return out


def _tests_html(execution: dict | None) -> str:
    if execution is None:
        return "<i>no execution record</i>"
    marks = {"pass": "✅", "fail": "❌", "error": "💥", "timeout": "⏱"}
    rows = []
    for i, t in enumerate(execution.get("tests", [])):
        why = " ".join(x for x in (t.get("error_type"), t.get("message")) if x)
        rows.append(f"<tr><td>{i}</td><td>{marks.get(t['status'], t['status'])}</td><td>{html.escape(why)}</td></tr>")
    head = f"level {execution['level']} ({LEVEL_NAMES.get(execution['level'], '?')}), {execution['pass_fraction']:.0%}"
    return f"<b>{head}</b><table>{''.join(rows)}</table>"


def response_cards_html(group: dict, executions: list[dict], limit: int = 4) -> str:
    """HTML for one group: responses ranked by score, code side by side, per-test results under each."""
    matched = _executions_for(group, executions)
    order = sorted(range(len(group["responses"])), key=lambda i: -group["scores"][i])[:limit]
    cards = []
    for rank, i in enumerate(order, start=1):
        code = html.escape(group["responses"][i])
        cards.append(
            '<div style="flex:1;min-width:260px;border:1px solid #ccc;padding:6px;margin:3px">'
            f"<b>#{rank} {html.escape(group['sources'][i])}</b> score {group['scores'][i]:.2f}"
            f'<pre style="font-size:11px;max-height:360px;overflow:auto;white-space:pre-wrap">{code}</pre>'
            f"{_tests_html(matched[i])}</div>"
        )
    prompt = html.escape(group.get("prompt", ""))
    return (
        f'<details><summary>prompt</summary><pre style="white-space:pre-wrap">{prompt}</pre></details>'
        f'<div style="display:flex;flex-wrap:wrap">{"".join(cards)}</div>'
    )


def explore_groups(groups: list[dict], executions: list[dict], limit: int = 4):
    """A notebook widget to browse each prompt's ranked responses (code side by side, per-test results)."""
    import ipywidgets as widgets

    if not groups:
        return widgets.HTML("<i>no groups to show: run the rank stage first</i>")
    by_id = {g["problem_id"]: g for g in groups}
    picker = widgets.Dropdown(options=list(by_id), description="problem", layout=widgets.Layout(width="60%"))
    view = widgets.HTML()

    def show(change=None) -> None:
        view.value = response_cards_html(by_id[picker.value], executions, limit)

    picker.observe(show, names="value")
    show()
    return widgets.VBox([picker, view])


# ---------------------------------------------------------------- ablation
ARM_COLORS = {"base": "#9aa5b1", "sft": "#f0a202", "rrtf": "#2f7ed8", "rrhf": "#4caf50", "dpo": "#9c27b0"}


def plot_ablation_arms(results: dict, path: str | Path | None = None, title: str = "pass@1 per arm (greedy)"):
    """Every arm's pass@1 per dataset with its 95 % bootstrap interval; ``results`` as ``ablate`` writes it."""
    plt = _pyplot()
    arms = list(results["arms"])
    datasets = list(dict.fromkeys(d for arm in results["arms"].values() for d in arm))
    width = 0.8 / max(len(arms), 1)
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(arms) * len(datasets) + 1.5), 3.8))
    for j, arm in enumerate(arms):
        xs, heights, low, high = [], [], [], []
        for i, name in enumerate(datasets):
            entry = results["arms"][arm].get(name)
            if entry is None or entry.get("pass@1") is None:
                continue
            value, (lo, hi) = 100 * entry["pass@1"], entry["ci95"]
            xs.append(i + (j - (len(arms) - 1) / 2) * width)
            heights.append(value)
            low.append(max(0.0, value - 100 * lo))
            high.append(max(0.0, 100 * hi - value))
        ax.bar(xs, heights, width, yerr=[low, high], capsize=3, label=arm, color=ARM_COLORS.get(arm))
    ns = [next(iter(results["arms"][a].get(d, {}).get("n", "?") for a in arms)) for d in datasets]
    ax.set_xticks(range(len(datasets)), [f"{d}\n(n={n})" for d, n in zip(datasets, ns, strict=True)])
    ax.set_ylabel("pass@1 (%) with 95 % interval")
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=min(len(arms), 6))
    return _finish(fig, path)


def plot_ablation_margins(results: dict, path: str | Path | None = None, title: str = "held-out preference margin"):
    """Mean p_tea - p_stu on held-out pairs per arm (with its interval), and the pair accuracy beside it."""
    plt = _pyplot()
    margins = results["margins"]
    arms = list(margins)
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(6, 1.6 * len(arms) + 2), 3.6))
    values = [margins[a]["margin"] for a in arms]
    low = [max(0.0, margins[a]["margin"] - margins[a]["margin_ci95"][0]) for a in arms]
    high = [max(0.0, margins[a]["margin_ci95"][1] - margins[a]["margin"]) for a in arms]
    colors = [ARM_COLORS.get(a, "#607d8b") for a in arms]
    left.bar(arms, values, yerr=[low, high], capsize=3, color=colors)
    left.axhline(0, color="black", linewidth=0.8)
    left.set_ylabel("mean p_tea - p_stu (nats/token)")
    left.set_title(title, fontsize=10)
    right.bar(arms, [100 * margins[a]["pair_accuracy"] for a in arms], color=colors)
    right.axhline(50, color="black", linewidth=0.8, linestyle=":")
    right.set_ylim(0, 100)
    right.set_ylabel("pairs with p_tea > p_stu (%)")
    right.set_title("pair accuracy", fontsize=10)
    return _finish(fig, path)

"""Plots for reports and notebooks, and an ipywidgets explorer of ranked responses.

Every plot function returns the matplotlib Figure and, given ``path``, also saves it as a PNG (and closes
it, so a report run over many plots does not keep figures alive). matplotlib and ipywidgets are imported
inside the functions: importing this module stays cheap and the CLI never needs a display.
"""

from __future__ import annotations

import functools
import html
import math
import os
from collections import Counter
from pathlib import Path

LEVEL_NAMES = {0: "compile error", 1: "runtime error", 2: "partial", 3: "all pass"}
# A reply without usable code is scored as level 0 but is not a compile error: it gets its own bar.
HISTOGRAM_BARS = ["no code", *LEVEL_NAMES.values()]
PHASE_COLORS = {"before": "#9aa5b1", "after": "#2f7ed8"}


def _pyplot():
    """pyplot; headless it falls back to Agg by itself (tests set MPLBACKEND=Agg), notebooks stay inline."""
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, path: str | Path | None):
    fig.tight_layout()
    if path is not None:
        import io

        from rrtf_lite.records import write_atomic

        png = io.BytesIO()
        fig.savefig(png, dpi=100, format=Path(path).suffix.lstrip(".") or "png")
        write_atomic(path, png.getvalue())
        _pyplot().close(fig)
    return fig


# ---------------------------------------------------------------- evaluation
def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% for z=1.96) of a proportion: unlike the normal one it stays inside
    [0, 1] and is not zero-width at 0 or n successes, which matters for a few dozen problems."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def plot_pass_at_1(rows: list[dict] | dict, path: str | Path | None = None, title: str = "pass@1 before / after"):
    """Bars of pass@1 (in %) per dataset, before and after training, with 95% Wilson intervals over problems;
    ``rows`` as in ``report["rows"]``.

    The interval treats pass@1 x n problems as successes out of n: exact for greedy decoding (one answer per
    problem), a slight overestimate of the spread for sampled pass@1, which averages several answers per problem.
    """
    plt = _pyplot()
    rows = rows["rows"] if isinstance(rows, dict) else rows
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    phases = [p for p in ("before", "after") if any(r["phase"] == p for r in rows)]
    width = 0.8 / max(len(phases), 1)
    fig, ax = plt.subplots(figsize=(max(4, 2.2 * len(datasets) + 1), 3.6))
    top = 10.0
    for j, phase in enumerate(phases):
        by_name = {r["dataset"]: r for r in rows if r["phase"] == phase}
        xs, heights, errors, labels = [], [], ([], []), []
        for i, name in enumerate(datasets):
            row = by_name.get(name)
            if row is None or row.get("pass@1") is None:
                continue
            low, high = wilson_interval(row["pass@1"] * row["n"], row["n"])
            xs.append(i + (j - (len(phases) - 1) / 2) * width)
            heights.append(100 * row["pass@1"])
            errors[0].append(heights[-1] - 100 * low)
            errors[1].append(100 * high - heights[-1])
            labels.append(f"{100 * row['pass@1']:.1f}\n{row['solved']}/{row['n']}")
            top = max(top, 100 * high)
        ax.bar(xs, heights, width, yerr=errors, capsize=3, label=phase, color=PHASE_COLORS.get(phase))
        for x, height, above, label in zip(xs, heights, errors[1], labels, strict=True):
            ax.text(x, height + above + 1, label, ha="center", va="bottom", fontsize=8)  # above the whisker
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_ylabel("pass@1 (%), 95% Wilson interval")
    ax.set_ylim(0, min(105, top * 1.2 + 8))
    ax.set_title(title)
    if phases:
        ax.legend()
    return _finish(fig, path)


# ---------------------------------------------------------------- ranking
def level_counts(stats: dict) -> dict[str, list[int]]:
    """Per source, counts in the order of ``HISTOGRAM_BARS``: no code, compile error, runtime error, partial,
    all pass. Rank stats count a reply without code as level 0; ``no_code`` (or the ``no_code`` outcome) says how
    many of those were not compile errors at all. Level keys may be ints or strings (after a JSON round trip)."""
    levels = stats.get("levels", stats)
    outcomes = stats.get("outcomes") or {}
    no_code = stats.get("no_code") or {}
    counts = {}
    for source, by_level in levels.items():
        per_level = {int(k): v for k, v in by_level.items()}
        empty = no_code.get(source, outcomes.get(source, {}).get("no_code", 0))
        empty = min(empty, per_level.get(0, 0))
        counts[source] = [empty, per_level.get(0, 0) - empty] + [per_level.get(lv, 0) for lv in (1, 2, 3)]
    return counts


def _named_outcomes(stats: dict) -> dict[str, dict[str, int]]:
    """The sandbox's outcome names per source (e.g. ``passed_none``), or {} when the stats only know levels."""
    outcomes = stats.get("outcomes") or {}
    named = any(not str(name).startswith("level ") for per in outcomes.values() for name in per)
    return outcomes if named else {}


def plot_levels(stats: dict, path: str | Path | None = None, title: str = "execution outcome per source"):
    """Histogram per source: no code, then the four levels (compile error .. all pass), from rank stats
    ``{"levels": {src: {l: n}}, "no_code": {src: n}}``; when the stats carry the sandbox's outcome names
    (``outcomes``), a second panel counts those."""
    plt = _pyplot()
    counts = level_counts(stats)
    outcomes = _named_outcomes(stats)
    sources = list(counts)
    ncols = 2 if outcomes else 1
    fig, axes = plt.subplots(1, ncols, figsize=(7.5 + 5 * (ncols - 1), 3.8), squeeze=False)
    ax = axes[0][0]
    width = 0.8 / max(len(sources), 1)
    for j, source in enumerate(sources):
        xs = [b + (j - (len(sources) - 1) / 2) * width for b in range(len(HISTOGRAM_BARS))]
        bars = ax.bar(xs, counts[source], width, label=source)
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(range(len(HISTOGRAM_BARS)), HISTOGRAM_BARS, rotation=15)
    ax.set_ylabel("responses")
    ax.set_title(title)
    if sources:
        ax.legend()
    if outcomes:
        names = sorted({name for per in outcomes.values() for name in per})
        out_ax = axes[0][1]
        height = 0.8 / max(len(outcomes), 1)
        for j, (source, per) in enumerate(outcomes.items()):
            ys = [i + (j - (len(outcomes) - 1) / 2) * height for i in range(len(names))]
            out_ax.barh(ys, [per.get(name, 0) for name in names], height, label=source)
        out_ax.set_yticks(range(len(names)), names, fontsize=8)
        out_ax.invert_yaxis()
        out_ax.set_xlabel("responses")
        out_ax.set_title("sandbox outcome")
    return _finish(fig, path)


# ---------------------------------------------------------------- training
def plot_loss(log_history: list[dict], path: str | Path | None = None, title: str = "training loss"):
    """Loss curves from ``trainer.state.log_history``: total, SFT and eval loss on the left; the rank loss,
    when logged, on its own panel (it is ~0.2 against an SFT loss ~11 and would lie flat on a shared axis),
    with the pair accuracy on a second axis there when it was logged (not NaN)."""
    plt = _pyplot()

    def series(key):
        points = [(h["step"], h[key]) for h in log_history if isinstance(h.get(key), (int, float))]
        return [(s, v) for s, v in points if not math.isnan(v)]

    def draw(ax, key, **style):
        points = series(key)
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, label=key, marker="." if len(points) < 50 else None, **style)

    rank = series("rank_loss")
    accuracy = series("pair_accuracy")
    ncols = 2 if rank or accuracy else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.5 + 4 * (ncols - 1), 3.6), squeeze=False)
    ax = axes[0][0]
    for key in ("loss", "sft_loss", "eval_loss"):
        draw(ax, key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right")
    if ncols == 2:
        rank_ax = axes[0][1]
        draw(rank_ax, "rank_loss", color="#c0504d")
        rank_ax.set_xlabel("step")
        rank_ax.set_ylabel("rank loss")
        rank_ax.set_title("rank loss (own scale)")
        if rank:
            rank_ax.legend(loc="upper left")
        if accuracy:
            acc_ax = rank_ax.twinx()
            acc_ax.plot(*zip(*accuracy, strict=True), color="gray", linestyle="--", label="pair accuracy")
            acc_ax.set_ylabel("pair accuracy")
            acc_ax.set_ylim(-0.05, 1.05)
            acc_ax.legend(loc="upper right")
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
    # words in colour, not emoji: they read the same in every font (headless browsers often lack emoji glyphs)
    marks = {
        status: f'<span style="color:{color};font-weight:bold">{status}</span>'
        for status, color in (("pass", "#2e7d32"), ("fail", "#c62828"), ("error", "#c62828"), ("timeout", "#ef6c00"))
    }
    rows = []
    for i, t in enumerate(execution.get("tests", [])):
        why = " ".join(x for x in (t.get("error_type"), t.get("message")) if x)
        status = marks.get(t["status"], html.escape(str(t["status"])))
        rows.append(f"<tr><td>{i}</td><td>{status}</td><td>{html.escape(why)}</td></tr>")
    return f"<b>{html.escape(outcome_label(execution))}</b><table>{''.join(rows)}</table>"


def outcome_label(execution: dict) -> str:
    """``level 1 (runtime error: passed_none), 0%``: the level, its name and, when the sandbox gave one, the
    outcome's own name (records written before outcomes existed have none)."""
    name = LEVEL_NAMES.get(execution["level"], "?")
    outcome = execution.get("outcome")
    if outcome == "no_code":
        name = "no code"
    elif outcome and not str(outcome).startswith("level "):
        name = f"{name}: {outcome}"
    return f"level {execution['level']} ({name}), {execution['pass_fraction']:.0%}"


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


def widgets_unavailable() -> bool:
    """True when nothing could show a live widget: ``RRTF_STATIC=1`` (tools/execute_notebooks.py sets it), or not
    inside a Jupyter kernel (plain Python, terminal IPython). A kernel cannot tell whether its frontend renders
    widgets, so in a kernel the widget also carries a static HTML copy for viewers without one."""
    if os.environ.get("RRTF_STATIC", "").strip().lower() not in ("", "0", "false", "no"):
        return True
    try:
        from IPython import get_ipython
    except ImportError:
        return True
    shell = get_ipython()
    return shell is None or getattr(shell, "kernel", None) is None


class StaticExplorer:
    """The explorer without widgets: every group's ranked responses as HTML (notebook viewers) and as plain
    text (a terminal), for where no widget frontend is live."""

    def __init__(self, groups: list[dict], executions: list[dict], limit: int = 4, max_groups: int = 5):
        self.groups, self.executions, self.limit, self.max_groups = groups, executions, limit, max_groups

    def _shown(self) -> tuple[list[dict], str]:
        rest = len(self.groups) - self.max_groups
        note = f"{rest} more problems not shown (static view; run in Jupyter for the explorer)" if rest > 0 else ""
        return self.groups[: self.max_groups], note

    def _repr_html_(self) -> str:
        if not self.groups:
            return "<i>no groups to show: run the rank stage first</i>"
        shown, note = self._shown()
        parts = [
            f"<h4>{html.escape(g['problem_id'])}</h4>{response_cards_html(g, self.executions, self.limit)}"
            for g in shown
        ]
        return "".join(parts) + (f"<p><i>{html.escape(note)}</i></p>" if note else "")

    def __repr__(self) -> str:
        if not self.groups:
            return "no groups to show: run the rank stage first"
        shown, note = self._shown()
        lines = []
        for g in shown:
            matched = _executions_for(g, self.executions)
            lines.append(g["problem_id"])
            order = sorted(range(len(g["responses"])), key=lambda i: -g["scores"][i])[: self.limit]
            for rank, i in enumerate(order, start=1):
                label = outcome_label(matched[i]) if matched[i] else "no execution record"
                lines.append(f"  #{rank} {g['sources'][i]:<8} score {g['scores'][i]:.2f}  {label}")
        return "\n".join(lines + ([note] if note else []))


def explore_groups(groups: list[dict], executions: list[dict], limit: int = 4, static: bool | None = None):
    """Browse each prompt's ranked responses (code side by side, per-test results): a dropdown widget in a
    live notebook, a ``StaticExplorer`` (HTML table / text) where no widget frontend is live (see
    ``widgets_unavailable``; ``static`` overrides the detection)."""
    if static if static is not None else widgets_unavailable():
        return StaticExplorer(groups, executions, limit)
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
    return _ExplorerBox([picker, view], fallback=StaticExplorer(groups, executions, limit))


@functools.cache
def _explorer_box_class():
    import ipywidgets as widgets

    class ExplorerBox(widgets.VBox):
        """A VBox whose display also carries the static HTML: a frontend with widgets shows the widget, a viewer
        without (GitHub, nbconvert, a closed kernel) shows the table instead of ``VBox(...)``."""

        def __init__(self, children, fallback: StaticExplorer):
            super().__init__(children)
            self._fallback = fallback

        def _repr_mimebundle_(self, **kwargs):
            bundle = super()._repr_mimebundle_(**kwargs) or {}
            return {**bundle, "text/html": self._fallback._repr_html_()}

    return ExplorerBox


def _ExplorerBox(children, fallback: StaticExplorer):  # noqa: N802 (a class built on first use)
    return _explorer_box_class()(children, fallback)


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

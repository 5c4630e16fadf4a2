"""Plots write real PNG files headless; the explorer builds a widget and matches responses to executions."""

from __future__ import annotations

import matplotlib
import pytest

matplotlib.use("Agg")

from rrtf_lite import viz  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG and path.stat().st_size > 1000


def test_pass_at_1_plot(tmp_path):
    rows = [
        {"dataset": "humaneval", "phase": "before", "pass@1": 0.061, "solved": 10, "n": 164},
        {"dataset": "humaneval", "phase": "after", "pass@1": 0.073, "solved": 12, "n": 164},
        {"dataset": "heldout", "phase": "before", "pass@1": None, "solved": 0, "n": 0},
    ]
    fig = viz.plot_pass_at_1({"rows": rows})
    bars = fig.axes[0].containers
    error_bars = [c for c in bars if type(c).__name__ == "ErrorbarContainer"]
    assert len(error_bars) == 2  # one set of 95% intervals per phase
    (low, high), = [seg for seg in error_bars[0].lines[2][0].get_segments()]  # fmt: skip
    assert low[1] < 6.1 < high[1] and 100 * viz.wilson_interval(0.061 * 164, 164)[0] == pytest.approx(low[1])
    viz.plot_pass_at_1({"rows": rows}, tmp_path / "plots" / "p.png")
    assert is_png(tmp_path / "plots" / "p.png")


def test_wilson_interval_known_values():
    # 10/164 = 6.1%: centre (p + z²/2n)/(1 + z²/n) = 0.0710, half-width 0.0376, worked by hand
    low, high = viz.wilson_interval(10, 164)
    assert round(low, 4) == 0.0335 and round(high, 4) == 0.1086
    assert viz.wilson_interval(0, 20)[0] == 0 and viz.wilson_interval(0, 20)[1] > 0.1  # not zero-width at 0
    assert viz.wilson_interval(20, 20)[1] == 1 and viz.wilson_interval(20, 20)[0] < 0.9


def test_level_histogram_accepts_json_keys(tmp_path):
    stats = {"levels": {"student": {"0": 3, "1": 2, "2": 1, "3": 4}, "teacher": {3: 9, 2: 1}}}
    fig = viz.plot_levels(stats)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == viz.HISTOGRAM_BARS
    assert len(fig.axes) == 1  # no outcome names: no second panel
    viz.plot_levels(stats, tmp_path / "levels.png")
    assert is_png(tmp_path / "levels.png")


def test_no_code_gets_its_own_bar_and_outcomes_their_panel():
    stats = {
        "levels": {"student": {"0": 5, "1": 2, "2": 0, "3": 1}, "teacher": {"0": 0, "1": 0, "2": 0, "3": 3}},
        "no_code": {"student": 4},
        "outcomes": {
            "student": {"no_code": 4, "level 0": 1, "passed_none": 2, "level 3": 1},
            "teacher": {"level 3": 3},
        },
    }
    assert viz.level_counts(stats) == {"student": [4, 1, 2, 0, 1], "teacher": [0, 0, 0, 0, 3]}
    fig = viz.plot_levels(stats)
    student_bars = fig.axes[0].containers[0]
    assert [round(b.get_height()) for b in student_bars] == [4, 1, 2, 0, 1]
    assert "passed_none" in [t.get_text() for t in fig.axes[1].get_yticklabels()]
    only_outcomes = {"levels": stats["levels"], "outcomes": stats["outcomes"]}  # no "no_code" field: from outcomes
    assert viz.level_counts(only_outcomes)["student"][:2] == [4, 1]
    level_only = {"levels": stats["levels"], "outcomes": {"student": {"level 0": 5}}}
    assert len(viz.plot_levels(level_only).axes) == 1


def test_loss_curves(tmp_path):
    history = [
        {"step": s, "loss": 2.0 / s, "rank_loss": 0.1 / s, "sft_loss": 1.9 / s, "pair_accuracy": float("nan")}
        for s in range(1, 6)
    ] + [{"step": 5, "train_runtime": 3.0}]
    fig = viz.plot_loss(history, tmp_path / "loss.png")
    assert is_png(tmp_path / "loss.png") and len(fig.axes) == 2  # the rank loss has its own panel
    left, right = fig.axes
    assert {line.get_label() for line in left.lines} == {"loss", "sft_loss"}
    assert [line.get_label() for line in right.lines] == ["rank_loss"]
    assert right.get_ylim()[1] < 0.2  # on its own scale, not squashed under the SFT loss
    with_accuracy = [dict(h, pair_accuracy=0.5) for h in history[:-1]]
    assert len(viz.plot_loss(with_accuracy).axes) == 3  # pair accuracy on a twin axis of the rank panel
    sft_only = [{"step": s, "loss": 1.0 / s} for s in range(1, 4)]
    assert len(viz.plot_loss(sft_only).axes) == 1


def test_evolution_from_stage_stats_records_and_mappings(tmp_path):
    stats = {  # the shape of the evolve stage's evol_stats.json
        "dropped": {"no_function": 3, "sorry": 1},
        "table": [
            {"round": 1, "method": "add_constraints", "attempted": 3, "kept": 1, "dropped": {"no_function": 2}},
            {"round": 2, "method": "add_constraints", "attempted": 2, "kept": 1, "dropped": {"sorry": 1}},
            {"round": 1, "method": "breadth", "attempted": 1, "kept": 0, "dropped": {"no_function": 1}},
        ],
    }
    assert viz.evolution_table(stats)[0] == {"round": 1, "method": "add_constraints", "kept": 1, "dropped": 2}
    fig = viz.plot_evolution(stats)
    assert len(fig.axes) == 2  # counts per method/round, and the elimination reasons
    viz.plot_evolution(stats, tmp_path / "evol_stats.png")
    assert is_png(tmp_path / "evol_stats.png")

    problems = [
        {"evol_method": None, "evol_round": 0},
        {"evol_method": "add_constraints", "evol_round": 1},
        {"evol_method": "add_constraints", "evol_round": 2},
        {"evol_method": "complexity", "evol_round": 1},
    ]
    assert {(r["method"], r["round"], r["kept"]) for r in viz.evolution_table(problems)} == {
        ("seed", 0, 1),
        ("add_constraints", 1, 1),
        ("add_constraints", 2, 1),
        ("complexity", 1, 1),
    }
    assert viz.evolution_table({"breadth": 3, "complexity": {"1": 2}}) == [
        {"round": 1, "method": "breadth", "kept": 3, "dropped": 0},
        {"round": 1, "method": "complexity", "kept": 2, "dropped": 0},
    ]
    viz.plot_evolution(problems, tmp_path / "evol.png")
    assert is_png(tmp_path / "evol.png")


def _group_and_executions():
    group = {
        "problem_id": "seed/x",
        "prompt": "Write add(a, b).",
        "responses": ["def add(a, b):\n    return a - b", "def add(a, b):\n    return a + b", "def add(a, b) <"],
        "scores": [2.5, 4.25, 0.0],
        "sources": ["student", "teacher", "student"],
    }
    tests_ok = [{"status": "pass", "error_type": None, "message": None}]
    executions = [
        {"problem_id": "seed/x", "source": "student", "sample_index": 0, "level": 2, "pass_fraction": 0.5,
         "score": 2.5, "tests": tests_ok + [{"status": "fail", "error_type": "AssertionError", "message": None}]},
        {"problem_id": "seed/x", "source": "student", "sample_index": 1, "level": 0, "pass_fraction": 0.0,
         "score": 0.0, "tests": [{"status": "error", "error_type": "SyntaxError", "message": "<b>bad</b>"}]},
        {"problem_id": "seed/x", "source": "teacher", "sample_index": 0, "level": 3, "pass_fraction": 1.0,
         "score": 4.25, "tests": tests_ok * 2},
        {"problem_id": "other", "source": "teacher", "sample_index": 0, "level": 3, "pass_fraction": 1.0,
         "score": 4.25, "tests": tests_ok},
    ]  # fmt: skip
    return group, executions


def test_responses_are_matched_to_their_executions():
    group, executions = _group_and_executions()
    matched = viz._executions_for(group, executions)
    assert [(e["source"], e["sample_index"]) for e in matched] == [("student", 0), ("teacher", 0), ("student", 1)]
    html = viz.response_cards_html(group, executions)
    assert html.index("#1 teacher") < html.index("#2 student") < html.index("#3 student")
    assert "&lt;b&gt;bad&lt;/b&gt;" in html and "<b>bad</b>" not in html  # messages are escaped
    with_indices = dict(group, sample_indices=[1, 0, 0])  # explicit indices win over file order
    assert [e["sample_index"] for e in viz._executions_for(with_indices, executions)] == [1, 0, 0]


def test_explorer_builds_a_widget():
    import ipywidgets

    group, executions = _group_and_executions()
    widget = viz.explore_groups([group, dict(group, problem_id="seed/y")], executions, static=False)
    assert isinstance(widget, ipywidgets.VBox)
    picker, view = widget.children
    assert "return a + b" in view.value
    picker.value = "seed/y"
    assert "no execution record" in view.value
    assert isinstance(viz.explore_groups([], [], static=False), ipywidgets.HTML)
    bundle = widget._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # a live frontend shows the widget ...
    assert "#1 teacher" in bundle["text/html"]  # ... a viewer without one, the static table


def test_explorer_falls_back_to_static_without_a_frontend(monkeypatch):
    group, executions = _group_and_executions()
    executions[0]["outcome"] = "failed_some"
    monkeypatch.delenv("RRTF_STATIC", raising=False)
    assert viz.widgets_unavailable()  # pytest is no Jupyter kernel
    static = viz.explore_groups([group], executions)
    assert isinstance(static, viz.StaticExplorer)
    assert "#1 teacher" in static._repr_html_() and "return a + b" in static._repr_html_()
    text = repr(static)
    assert "#1 teacher" in text and "level 2 (partial: failed_some), 50%" in text
    assert "level 0 (compile error), 0%" in text  # no outcome recorded: the level name alone
    monkeypatch.setenv("RRTF_STATIC", "1")
    assert viz.widgets_unavailable()
    assert "no groups" in repr(viz.explore_groups([], []))


def test_outcome_labels():
    label = viz.outcome_label
    ran_but_failed = {"level": 1, "pass_fraction": 0.0, "outcome": "passed_none"}
    assert label(ran_but_failed) == "level 1 (runtime error: passed_none), 0%"
    assert label({"level": 0, "pass_fraction": 0.0, "outcome": "no_code"}) == "level 0 (no code), 0%"
    assert label({"level": 3, "pass_fraction": 1.0, "outcome": "level 3"}) == "level 3 (all pass), 100%"

"""``rrtf-lite ablate`` on the tiny profile: every arm runs, an interrupted run resumes, a change is redone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rrtf_lite import ablation, ablation_report, cli
from rrtf_lite.config import load_config

# about 2 minutes of CPU for the module; on a machine shared with many jobs the wall time can be 5x that
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ALL_ARMS = ["base", "sft", "rrtf", "rrhf", "dpo", "rank_only"]
FAST = {  # the tiny profile, a little smaller still: no live evolution, plain LoRA, two steps
    "evol.rounds": 0,
    "train.finetune": "lora",
    "train.max_steps": 2,
    "eval.heldout_limit": 3,
    "eval.humaneval_limit": 2,
    "ablation.arms": ALL_ARMS,
}


def _config(run_dir: Path, **overrides):
    return load_config("tiny", overrides={**FAST, "run_dir": str(run_dir), **overrides})


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory) -> tuple[Path, dict]:
    """A run interrupted (Ctrl-C) just after the rrhf arm finished training, then rerun to the end."""
    run_dir = tmp_path_factory.mktemp("ablation") / "run"
    import rrtf_lite.evaluate as evaluate

    original = evaluate.evaluate_model

    def interrupt_at_rrhf(*args, **kwargs):
        if args[4] == "rrhf":  # the label: the arm being evaluated
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    evaluate.evaluate_model = interrupt_at_rrhf
    try:
        with pytest.raises(KeyboardInterrupt):
            ablation.ablate(_config(run_dir))
    finally:
        evaluate.evaluate_model = original
    assert not (run_dir / "ablation.json").exists()
    results = ablation.ablate(_config(run_dir), command="pytest")
    return run_dir, results


def test_every_arm_is_trained_evaluated_and_compared(resumed_run):
    run_dir, results = resumed_run
    assert results["heldout_problems"] == 3
    assert list(results["arms"]) == ALL_ARMS
    for arm in ALL_ARMS:
        for dataset, n in (("heldout", 3), ("humaneval", 2)):
            entry = results["arms"][arm][dataset]
            assert isinstance(entry["pass@1"], float) and entry["n"] == n
            assert entry["ci95"][0] <= entry["pass@1"] <= entry["ci95"][1]
            assert sum(entry["levels"].values()) == n
        assert results["margins"][arm]["n"] == 3
    for arm in ALL_ARMS[1:]:  # each trained arm really trained, in its own mode, the same number of steps
        summary = json.loads((run_dir / "arms" / arm / "seed0" / "adapter" / "train_summary.json").read_text())
        assert summary["steps"] == 2
        assert summary["mode"] == ablation.ARMS[arm]["train.mode"]
    assert {d["metric"] for d in results["deltas"]} == {"greedy"}  # pass@1 only: scripts read it unfiltered
    every = results["deltas"] + results["other_deltas"]
    compared = {(d["arm"], d["vs"], d["dataset"], d["metric"]) for d in every}
    for arm in ALL_ARMS[1:]:
        assert (arm, "base", "heldout", "greedy") in compared and (arm, "base", "humaneval", "greedy") in compared
        assert (arm, "base", "heldout", "margin") in compared
        assert (arm, "base", "heldout", "level") in compared
        assert 0 <= results["arms"][arm]["heldout"]["mean_level"] <= 3
    assert ("rrtf", "sft", "heldout", "greedy") in compared
    assert results["phase_seconds"] >= sum(v for v in results["times_s"].values()) - 1
    for delta in every:
        assert delta["ci95"][0] <= delta["delta"] <= delta["ci95"][1]
    saved = json.loads((run_dir / "ablation.json").read_text())
    assert saved["deltas"] == results["deltas"] and saved["command"] == "pytest"
    assert "| rrtf | sft | heldout | greedy |" in (run_dir / "ablation.md").read_text()
    assert saved["verdict"] and "\n".join(saved["verdict"]) in (run_dir / "ablation.md").read_text()
    assert (run_dir / "ablation_arms.png").is_file() and (run_dir / "ablation_margin.png").is_file()


def test_the_rerun_after_an_interruption_skips_what_was_finished(resumed_run):
    _, results = resumed_run
    log = results["phases"]
    finished_before = ["evolve", "sample", "rank", "heldout_pairs", "base/0/margin", "sft/0/train", "rrtf/0/margin"]
    for key in finished_before + ["rrhf/0/train"]:
        assert log[key] == "skipped", key
    for key in ["rrhf/0/eval/heldout_greedy", "rrhf/0/margin", "dpo/0/train", "rank_only/0/eval/humaneval_greedy"]:
        assert log[key] == "ran", key


def test_a_third_run_does_nothing_and_the_cli_prints_the_table(resumed_run, capsys):
    run_dir, _ = resumed_run
    out = run_dir / "again.json"
    args = ["ablate", "--profile", "tiny", "--run-dir", str(run_dir), "--out", str(out)]
    for key, value in FAST.items():
        args += ["--set", f"{key}={json.dumps(value) if isinstance(value, list) else value}"]
    assert cli.main(args) == 0
    results = json.loads(out.read_text())
    assert set(results["phases"].values()) == {"skipped"}
    assert results["command"].startswith("rrtf-lite ablate --profile tiny")
    assert "## Differences" in capsys.readouterr().out


def test_a_changed_config_redoes_only_the_phases_it_feeds(resumed_run):
    run_dir, _ = resumed_run
    changed_train = {"ablation.arms": ["base", "sft"], "train.learning_rate": 1e-3}
    log = ablation.ablate(_config(run_dir, **changed_train), out=run_dir / "changed_train.json")["phases"]
    assert log["sample"] == "skipped" and log["rank"] == "skipped" and log["heldout_pairs"] == "skipped"
    assert log["base/0/eval/heldout_greedy"] == "skipped" and log["base/0/margin"] == "skipped"
    assert log["sft/0/train"] == "ran" and log["sft/0/eval/humaneval_greedy"] == "ran" and log["sft/0/margin"] == "ran"
    # evaluation settings feed every evaluation and, through the base answers, the held-out pairs and margins
    changed_eval = {**changed_train, "eval.max_new_tokens": 24}
    log = ablation.ablate(_config(run_dir, **changed_eval), out=run_dir / "changed_eval.json")["phases"]
    assert log["rank"] == "skipped" and log["sft/0/train"] == "skipped"
    assert log["base/0/eval/heldout_greedy"] == "ran" and log["sft/0/eval/humaneval_greedy"] == "ran"
    assert log["heldout_pairs"] == "ran" and log["sft/0/margin"] == "ran"


def test_unknown_arms_and_too_few_samples_are_refused(tmp_path):
    from rrtf_lite.errors import UserError

    with pytest.raises(UserError, match="Unknown ablation arm 'ppo'"):
        ablation.ablate(_config(tmp_path, **{"ablation.arms": ["base", "ppo"]}))
    with pytest.raises(UserError, match="must include 'base'"):
        ablation.ablate(_config(tmp_path, **{"ablation.arms": ["sft"]}))
    with pytest.raises(UserError, match="sampled_n"):
        ablation.ablate(_config(tmp_path, **{"ablation.sampled_n": 3}))


def test_one_pair_per_problem_keeps_the_widest_gap():
    pairs = [
        {"problem_id": "a", "score_chosen": 4.0, "score_rejected": 2.5, "rejected_index": 0, "chosen_index": 0},
        {"problem_id": "a", "score_chosen": 4.0, "score_rejected": 0.0, "rejected_index": 1, "chosen_index": 0},
        {"problem_id": "b", "score_chosen": 1.25, "score_rejected": 1.0, "rejected_index": 0, "chosen_index": 0},
    ]
    chosen = ablation.select_pairs(pairs, 1)
    assert [(p["problem_id"], p["rejected_index"]) for p in chosen] == [("a", 1), ("b", 0)]
    assert ablation.select_pairs(pairs, None) == pairs


def test_levels_per_problem_are_the_mean_level_of_its_answers():
    results = [
        {"problem_id": "a", "levels": [3], "passed": [True]},
        {"problem_id": "b", "levels": [0, 2], "passed": [False, False]},
        {"problem_id": "c", "levels": [], "passed": []},  # nothing generated: no score, not a zero
    ]
    assert ablation_report.per_problem_levels(results) == {"a": 3.0, "b": 1.0}


def test_margin_per_problem_averages_pairs_within_a_problem():
    rows = [
        {"problem_id": "a", "p_tea": -1.0, "p_stu": -2.0},
        {"problem_id": "a", "p_tea": -1.0, "p_stu": -0.5},
        {"problem_id": "b", "p_tea": -3.0, "p_stu": -1.0},
    ]
    margin, accuracy = ablation_report.margin_per_problem(rows)
    assert margin == {"a": pytest.approx(0.25), "b": pytest.approx(-2.0)}
    assert accuracy == {"a": 0.5, "b": 0.0}


def test_arms_are_evaluated_with_the_entry_point_answer_stop_and_no_other_stop(monkeypatch):
    """Each arm's generator is ``evaluate``'s own, and ``evaluate_model`` hands every row's entry point to
    the answer stop (rrtf_lite.stopping); no first-closing-fence rule is layered on top to cut replies early."""
    from rrtf_lite.backends import Completion
    from rrtf_lite.config import load_config
    from rrtf_lite.evaluate import evaluate_model

    class Recorder:
        name, accepts_entry_points = "fake", True

        def generate(self, prompts, decoding=None, **kwargs):
            self.kwargs, self.decoding = kwargs, decoding
            return [[Completion("```python\ndef f(x):\n    return x\n```", 12, "stop")] for _ in prompts]

    inner = Recorder()
    monkeypatch.setattr("rrtf_lite.evaluate.student_generator", lambda *args, **kwargs: inner)
    config = load_config("tiny")
    model = ablation.ArmModel(config, None)
    assert model.generator is inner
    problems = [{"id": "p1", "prompt": "Write f.", "entry_point": "f", "tests": ["assert f(1) == 1"]}]
    out = evaluate_model(model.generator, problems, config.eval, None, "base", check_harness=False)
    assert inner.kwargs["entry_points"] == ["f"] and "stop" not in inner.kwargs and inner.decoding.stop is None
    assert out["summary"]["solved"] == 1


def _delta(arm, vs, dataset, metric, delta, lo, hi):
    return {"arm": arm, "vs": vs, "dataset": dataset, "metric": metric, "delta": delta, "ci95": [lo, hi], "n": 100}


def test_the_verdict_names_the_arms_above_base_and_else_which_part_failed():
    from rrtf_lite.ablation_report import verdict

    arms = {"base": {}, "sft": {}, "rrtf": {}}
    no_gain = {
        "arms": arms,
        "deltas": [
            _delta("sft", "base", "heldout", "greedy", 0.0, -0.02, 0.02),
            _delta("rrtf", "base", "heldout", "greedy", 0.01, -0.01, 0.03),
            _delta("rrtf", "sft", "heldout", "greedy", 0.01, -0.02, 0.04),
        ],
        "other_deltas": [
            _delta("sft", "base", "heldout", "level", 0.3, 0.1, 0.5),
            _delta("rrtf", "base", "heldout", "level", 0.1, -0.1, 0.3),
            _delta("rrtf", "base", "heldout", "margin", 0.2, 0.1, 0.3),
        ],
    }
    text = "\n".join(verdict(no_gain))
    assert "No trained arm is above `base` on held-out pass@1" in text
    assert "`rrtf` − `sft` +1.0 points [-2.0, +4.0] (includes 0)" in text
    assert "3 all pass) above `base`'s, interval above 0: sft." in text
    assert "preference margin (p_tea − p_stu) above `base`'s, interval above 0: rrtf." in text
    assert "Which part failed:** training changed what the model writes" in text

    gain = dict(no_gain, deltas=[_delta("rrtf", "base", "heldout", "greedy", 0.05, 0.01, 0.09)], other_deltas=[])
    text = "\n".join(verdict(gain))
    assert "Above `base` on held-out pass@1, whole interval above 0: rrtf." in text
    assert "Which part failed" not in text

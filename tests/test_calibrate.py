"""Calibration: one line per problem and prompt format, resumable, never mixing settings or changed problems."""

from __future__ import annotations

import json

import pytest

from rrtf_lite import calibrate as cal
from rrtf_lite.cli import main
from rrtf_lite.config import load_config
from rrtf_lite.data import load_bank, load_seed_problems
from rrtf_lite.errors import UserError

OVERRIDES = {"sampling.max_new_tokens": 8, "sampling.batch_size": 4}


@pytest.fixture(scope="module")
def problems() -> list[dict]:
    return load_bank()[:2] + load_seed_problems("heldout")[:1]  # two with a HumanEval-style prompt, one without


def test_lines_per_format_resume_and_summary(tmp_path, problems):
    config = load_config("tiny", overrides=OVERRIDES)
    out = tmp_path / "tiny.jsonl"
    summary = cal.calibrate(config, problems[:1], out, n=2)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["id"], r["prompt_format"]) for r in lines] == [(problems[0]["id"], f) for f in cal.PROMPT_FORMATS]
    for r in lines:
        assert r["n"] == 2 and 0 <= r["passed"] <= 2 and sum(r["levels"]) == 2 and r["passed"] == r["levels"][3]
        assert r["temperature"] == config.sampling.temperature and r["model"] == "tiny-random"
    assert summary["answers_this_run"] == 4 and summary["problems"] == 1
    # a longer run extends the file; a problem without its own prompt is measured once, in the instruction format
    summary = cal.calibrate(config, problems, out, n=2)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 5 and summary["answers_this_run"] == 6
    assert [r["prompt_format"] for r in lines if r["id"] == problems[2]["id"]] == ["instruction"]
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["histogram"]["humaneval"] and side["machine"]["cpus"] and side["settings"]["n"] == 2
    assert side["format_comparison"]["problems"] == 2  # the two problems measured in both formats
    page = out.with_suffix(".md").read_text()
    assert "| humaneval |" in page and "rrtf_lite.calibrate" in page
    assert cal.calibrate(config, problems, out, n=2)["answers_this_run"] == 0  # nothing left to do


def test_refuses_other_settings_and_changed_problems(tmp_path, problems):
    config = load_config("tiny", overrides=OVERRIDES)
    out = tmp_path / "tiny.jsonl"
    cal.calibrate(config, problems[:1], out, n=2, prompt_formats=("instruction",))
    hotter = load_config("tiny", overrides={**OVERRIDES, "sampling.temperature": 1.2})
    with pytest.raises(UserError, match=r"tiny.jsonl:1: field 'temperature'"):
        cal.calibrate(hotter, problems[:1], out, n=2, prompt_formats=("instruction",))
    with pytest.raises(UserError, match=r"field 'n'"):
        cal.calibrate(config, problems[:1], out, n=3, prompt_formats=("instruction",))
    changed = dict(problems[0], tests=problems[0]["tests"][:-1])
    with pytest.raises(UserError, match=r"field 'problem_sha'.*changed"):
        cal.calibrate(config, [changed], out, n=2, prompt_formats=("instruction",))
    assert len(out.read_text().splitlines()) == 1  # nothing written is lost


def test_problem_sets_are_a_stable_random_order():
    first = cal.load_problem_sets(["bank"], limit=5)
    assert [p["id"] for p in first] == [p["id"] for p in cal.load_problem_sets(["bank"], limit=8)][:5]
    assert [p["id"] for p in first] != sorted(p["id"] for p in first) or len(first) < 2
    with pytest.raises(UserError, match="unknown problem set"):
        cal.load_problem_sets(["nope"])


def test_model_slug():
    assert cal.model_slug("Qwen/Qwen2.5-Coder-0.5B-Instruct") == "qwen2.5-coder-0.5b-instruct"
    assert cal.model_slug("smollm2-135m-instruct") == "smollm2-135m-instruct"


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli.jsonl"
    args = ["calibrate", "--profile", "tiny", "--sets", "bank", "--limit", "1", "--n", "1", "--out", str(out)]
    args += [f"--set={k}={v}" for k, v in OVERRIDES.items()]
    assert main([*args, "--formats", "instruction"]) == 0
    assert json.loads(capsys.readouterr().out)["problems"] == 1
    assert json.loads(out.with_suffix(".json").read_text())["command"].startswith("rrtf-lite calibrate")

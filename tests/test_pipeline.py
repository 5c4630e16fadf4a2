"""The whole pipeline on the tiny profile through the CLI, as a user runs it, then resumed and guarded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rrtf_lite import pipeline
from rrtf_lite.config import load_config
from rrtf_lite.errors import UserError

ARTIFACTS = [
    "config.yaml",
    "problems.jsonl",
    "evol_stats.json",
    "samples.jsonl",
    "executions.jsonl",
    "pairs.jsonl",
    "groups.jsonl",
    "rank_stats.json",
    "adapter",
    "train_log.json",
    "eval_before_humaneval.json",
    "eval_after_heldout.json",
    "report.md",
    "report.json",
    "plots/pass_at_1.png",
    "summary.json",
]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rrtf_lite.cli", *args], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("pipeline") / "run"
    result = _cli("run", "--profile", "tiny", "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_tiny_pipeline_writes_every_artifact(tiny_run: Path):
    for name in ARTIFACTS:
        assert (tiny_run / name).exists(), name
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert list(summary) == list(pipeline.STAGES)
    assert summary["rank"]["pairs_kept"] > 0
    assert summary["train"]["steps"] == load_config("tiny").train.max_steps
    report = (tiny_run / "report.md").read_text()
    assert "| humaneval | before |" in report and "| heldout | after |" in report


def test_second_run_skips_every_stage(tiny_run: Path):
    result = _cli("run", "--profile", "tiny", "--run-dir", str(tiny_run))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tiny_run / "summary.json").read_text())
    for stage in pipeline.STAGES:
        assert summary[stage].get("skipped") is True, stage


def test_a_changed_config_is_refused_in_the_same_run_dir(tiny_run: Path):
    result = _cli("sample", "--profile", "tiny", "--run-dir", str(tiny_run), "--set", "sampling.k=3")
    assert result.returncode == 2
    assert "different config (sampling.k changed)" in result.stderr and "Traceback" not in result.stderr


def test_python_api_runs_the_same_stage_function(tiny_run: Path):
    config = load_config("tiny", overrides={"run_dir": str(tiny_run)})
    assert pipeline.run_stage("rank", config)["skipped"] is True
    with pytest.raises(UserError, match="Unknown stage 'rnk'"):
        pipeline.run_stage("rnk", config)


def test_stage_without_its_input_says_what_to_run(tmp_path: Path):
    result = _cli("rank", "--profile", "tiny", "--run-dir", str(tmp_path / "empty"))
    assert result.returncode == 2
    assert "run the evolve stage first" in result.stderr

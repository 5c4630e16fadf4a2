"""The sample stage on the tiny profile: records, summary, skip/force, and a real SIGKILL + resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rrtf_lite import sampling
from rrtf_lite.backends import Completion
from rrtf_lite.config import derive_seed, load_config
from rrtf_lite.data import load_seed_problems
from rrtf_lite.errors import UserError
from rrtf_lite.programs import extract_code
from rrtf_lite.records import SAMPLE_KEY, read_jsonl, write_jsonl
from rrtf_lite.sampling import sample

REPO = Path(__file__).resolve().parent.parent
N_PROBLEMS = 4
OVERRIDES = {
    "sampling.batch_size": 2,
    "sampling.max_new_tokens": 16,
}  # k=2: one problem per batch, so the kill lands between problems


def _setup(run_dir: Path) -> tuple:
    problems = load_seed_problems("train")[:N_PROBLEMS]
    write_jsonl(run_dir / "problems.jsonl", problems, kind="problem")
    return load_config("tiny", overrides={"run_dir": str(run_dir), **OVERRIDES}), problems


def _keys(records: list[dict]) -> list[tuple]:
    return [tuple(r[f] for f in SAMPLE_KEY) for r in records]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One uninterrupted run: the reference for the other tests."""
    run_dir = tmp_path_factory.mktemp("full")
    config, problems = _setup(run_dir)
    summary = sample(config, run_dir)
    return run_dir, config, problems, summary, read_jsonl(run_dir / "samples.jsonl", kind="sample")


def test_sample_writes_student_and_teacher_records(full_run):
    run_dir, config, problems, summary, records = full_run
    k, t = config.sampling.k, config.sampling.teacher_samples
    assert len(records) == N_PROBLEMS * (k + t) and len(set(_keys(records))) == len(records)
    by_id = {p["id"]: p for p in problems}
    for r in records:
        if r["source"] == "student":
            assert r["model"] == "tiny-random" and r["temperature"] == config.sampling.temperature
            assert 0 < r["n_tokens"] <= config.sampling.max_new_tokens
            assert r["code"] == extract_code(r["response"], by_id[r["problem_id"]]["entry_point"])
        else:
            assert r["model"] == "reference" and r["temperature"] == 0.0
            assert r["code"].strip() == by_id[r["problem_id"]]["reference_solution"].strip()
    assert summary["by_source"] == {"student": N_PROBLEMS * k, "teacher": N_PROBLEMS * t}
    assert summary["no_code"]["teacher"] == 0
    assert summary["no_code"]["student"] == sum(r["code"] is None for r in records if r["source"] == "student")
    assert summary["generated"] == len(records) and summary["tokens_per_s"]["student"] > 0


def test_complete_stage_skips_without_loading_a_model(full_run, monkeypatch):
    run_dir, config, *_ = full_run
    monkeypatch.setattr(sampling, "make_generator", lambda *a, **k: pytest.fail("loaded a model"))
    summary = sample(config, run_dir)
    assert summary["skipped"] and summary["records"] == N_PROBLEMS * 3


def test_seeds_are_stable_and_distinct():
    assert derive_seed(0, "student", "seed/a001") == derive_seed(0, "student", "seed/a001")
    assert derive_seed(0, "student", "seed/a001") != derive_seed(1, "student", "seed/a001")
    assert derive_seed(0, "student", "seed/a001") != derive_seed(0, "student", "seed/a002")


def test_missing_problems_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="evolve"):
        sample(load_config("tiny", overrides={"run_dir": str(tmp_path)}), tmp_path)


def test_sigkill_then_rerun_resumes_without_loss_or_duplicates(full_run, tmp_path):
    """A real SIGKILL of a child running the stage, then a rerun: the full, identical set of records."""
    _, _, _, _, reference = full_run
    config, _ = _setup(tmp_path)
    out = tmp_path / "samples.jsonl"
    child = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "_sampling_child.py"), str(tmp_path), "0.3"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.02)
        assert child.poll() is None, f"child ended before the kill: {child.stdout.read().decode()[-2000:]}"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    written = out.read_bytes().count(b"\n")
    assert 3 <= written < len(reference), "killed part-way"
    with out.open("ab") as fh:  # what a kill in the middle of a write leaves behind
        fh.write(b'{"problem_id": "seed/a0')
    summary = sample(config, tmp_path)
    raw = out.read_bytes()
    assert raw.endswith(b"\n") and all(json.loads(line) for line in raw.splitlines())
    records = read_jsonl(out, kind="sample")
    assert sorted(_keys(records)) == sorted(_keys(reference)) and len(set(_keys(records))) == len(records)
    assert summary["generated"] == len(reference) - written
    strip = lambda rs: sorted((tuple(r[f] for f in SAMPLE_KEY), r["response"], r["code"]) for r in rs)  # noqa: E731
    assert strip(records) == strip(reference), "seeded groups regenerate the same samples after a resume"


def test_force_redoes_the_stage(full_run, tmp_path, monkeypatch):
    config, _ = _setup(tmp_path)
    write_jsonl(tmp_path / "samples.jsonl", read_jsonl(full_run[0] / "samples.jsonl"))
    shutil.copytree(full_run[0] / ".stages", tmp_path / ".stages")  # the same inputs and settings, recorded
    assert sample(config, tmp_path)["skipped"]

    class Echo:  # a stand-in student: this test is about the stage's bookkeeping, not the model
        name = "echo"

        def generate(self, prompts, decoding, **kwargs):
            return [[Completion("```python\ndef f():\n    pass\n```", 3, "stop")] * decoding.n for _ in prompts]

    real = sampling.make_generator
    monkeypatch.setattr(sampling, "make_generator", lambda b, *a, **k: Echo() if b.kind == "hf" else real(b, *a, **k))
    summary = sample(config, tmp_path, force=True)
    assert summary["generated"] == summary["records"] == N_PROBLEMS * 3
    records = read_jsonl(tmp_path / "samples.jsonl", kind="sample")
    assert {r["model"] for r in records} == {"echo", "reference"}

"""Scores, the teacher tie-break, dropped pairs, groups, statistics and the rank stage."""

from __future__ import annotations

import json

import pytest

from rrtf_lite.config import RunConfig
from rrtf_lite.ranking import RankConfig, build_pairs, rank, rank_samples, score, to_preference_records
from rrtf_lite.stages import open_stage

CFG = RankConfig()
PROBLEM = {
    "id": "seed/0001",
    "instruction": "Write inc(x) returning x + 1.",
    "entry_point": "inc",
    "signature": "def inc(x: int) -> int:",
    "reference_solution": "def inc(x):\n    return x + 1\n",
    "tests": ["assert inc(1) == 2", "assert inc(2) == 3", "assert inc(0) == 1", "assert inc(-1) == 0"],
    "difficulty": "easy",
    "tags": [],
    "source": "seed",
    "parent_id": None,
    "evol_round": 0,
    "evol_method": None,
    "source_model": None,
    "prompt": None,
}


def test_scores_follow_the_level_order():
    assert [score(0, 0, CFG), score(1, 0, CFG), score(2, 0.5, CFG), score(3, 1, CFG)] == [0.0, 1.0, 2.5, 4.0]
    assert score(2, 0.99, CFG) < score(3, 1.0, CFG)
    with pytest.raises(ValueError):
        score(4, 1.0, CFG)


def _execution(source, index, level, fraction=0.0, pid="p"):
    return {"problem_id": pid, "source": source, "sample_index": index, "level": level, "pass_fraction": fraction,
            "score": score(level, fraction, CFG), "tests": []}  # fmt: skip


def _sample(source, index, code="def inc(x):\n    return x", pid="p", response=""):
    return {"problem_id": pid, "source": source, "sample_index": index, "code": code, "response": response}


def test_pairs_tie_break_drop_and_no_code():
    executions = [
        _execution("teacher", 0, 2, 0.5),
        _execution("student", 0, 1),  # teacher better: kept as is
        _execution("student", 1, 2, 0.5),  # same outcome: teacher gets the tie gap
        _execution("student", 2, 3, 1.0),  # teacher below the student: dropped
        _execution("student", 3, 0),  # no code: rejected with its raw text
        _execution("teacher", 1, 0),  # a teacher reply without code: never a target
    ]
    samples = [
        _sample("teacher", 0),
        *(_sample("student", i, f"def inc(x):\n    return x + {i + 2}") for i in range(3)),
        _sample("student", 3, None, response="Sorry, I cannot help. "),
        _sample("teacher", 1, None, response="Here is the idea in words."),
    ]
    pairs, groups, stats = build_pairs({"p": PROBLEM}, executions, samples, CFG)
    kept = [(p["rejected_index"], p["score_chosen"], p["score_rejected"]) for p in pairs]
    assert kept == [(0, 2.5, 1.0), (1, 2.75, 2.5), (3, 2.5, 0.0)]
    assert all(p["chosen"].startswith("```python\n") and p["prompt"] for p in pairs)
    assert pairs[-1]["rejected"] == "Sorry, I cannot help."
    assert (stats["pairs_kept"], stats["pairs_dropped"], stats["no_code"]) == (3, 1, {"student": 1, "teacher": 1})
    assert stats["pairs_identical"] == 0
    assert stats["levels"]["student"] == {0: 1, 1: 1, 2: 1, 3: 1}
    (group,) = groups
    assert group["sources"] == ["teacher", "student", "student", "student", "student"]
    assert group["scores"] == [2.75, 1.0, 2.5, 4.0, 0.0]
    assert group["sample_indices"] == [0, 0, 1, 2, 3]
    prefs = to_preference_records(pairs)
    assert set(prefs[0]) == {"prompt", "chosen", "rejected", "score_chosen", "score_rejected"}


def test_listwise_tie_bonus_never_lifts_the_teacher_above_a_better_response():
    """D3: the teacher at 3/6 ties one student and sits below another at 4/6: it stays below that one."""
    executions = [
        _execution("teacher", 0, 2, 3 / 6),
        _execution("student", 0, 2, 3 / 6),
        _execution("student", 1, 2, 4 / 6),
    ]
    samples = [
        _sample("teacher", 0, "def inc(x):\n    return x + 0"),
        _sample("student", 0),
        _sample("student", 1, "def inc(x):\n    return -x"),
    ]
    _, (group,), _ = build_pairs({"p": PROBLEM}, executions, samples, CFG)
    teacher, _, better = group["scores"]
    assert group["scores"][1] < teacher < better


def test_identical_texts_are_not_a_pair():
    """D10: a student that wrote exactly the teacher's program gives nothing to prefer."""
    executions = [_execution("teacher", 0, 3, 1.0), _execution("student", 0, 3, 1.0), _execution("student", 1, 1)]
    samples = [_sample("teacher", 0), _sample("student", 0), _sample("student", 1, "def inc(x):\n    return 1 / 0")]
    pairs, _, stats = build_pairs({"p": PROBLEM}, executions, samples, CFG)
    assert [p["rejected_index"] for p in pairs] == [1] and stats["pairs_identical"] == 1


def test_pairs_train_on_the_scored_program():
    """D5/D6: the chosen text is the cleaned program that ran, not the raw extraction."""
    code = "def inc(x):\n    return x + 1\n\nassert inc(1) == 5\nprint(inc("
    samples = [
        _sample("teacher", 0, code, pid=PROBLEM["id"]),
        _sample("student", 0, "def inc(x):\n    return x", pid=PROBLEM["id"]),
    ]
    executions, pairs, _, _ = rank_samples({PROBLEM["id"]: PROBLEM}, samples, CFG)
    assert executions[0]["level"] == 3 and executions[0]["program"] == "def inc(x):\n    return x + 1\n"
    assert pairs[0]["chosen"] == "```python\ndef inc(x):\n    return x + 1\n```"


def test_rank_samples_runs_the_sandbox():
    samples = [
        _sample("teacher", 0, "def inc(x):\n    return x + 1", pid=PROBLEM["id"]),
        _sample("student", 0, "def inc(x):\n    return x + 1 if x > 0 else 0", pid=PROBLEM["id"]),
        _sample("student", 1, "def inc(x) return x", pid=PROBLEM["id"]),
        _sample("student", 2, None, pid=PROBLEM["id"]),
    ]
    executions, pairs, groups, stats = rank_samples({PROBLEM["id"]: PROBLEM}, samples, CFG)
    assert [(e["level"], e["score"]) for e in executions] == [(3, 4.0), (2, 2.75), (0, 0.0), (0, 0.0)]
    assert executions[3]["tests"][0]["error_type"] == "NoCode"
    assert [p["rejected_index"] for p in pairs] == [0, 1] and stats["no_code"] == {"student": 1}
    assert len(groups[0]["responses"]) == 3


def test_rank_stage_writes_valid_records(tmp_path):
    (tmp_path / "problems.jsonl").write_text(json.dumps(PROBLEM) + "\n")
    samples = [
        {**_sample("teacher", 0, "def inc(x):\n    return x + 1", pid=PROBLEM["id"]), "response": "", "model": "t"},
        {**_sample("student", 0, "def inc(x):\n    return x", pid=PROBLEM["id"]), "response": "", "model": "s"},
    ]
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    stats = rank(RunConfig(), tmp_path)
    assert stats["pairs_kept"] == 1
    for name in ("executions", "pairs", "groups"):
        assert (tmp_path / f"{name}.jsonl").read_text().count("\n") == (2 if name == "executions" else 1)
    assert rank(RunConfig(), tmp_path)["skipped"] is True


def test_rank_stage_resumes_a_killed_run(tmp_path, monkeypatch):
    """executions.jsonl is appended chunk by chunk: a rerun executes only what is missing, never twice."""
    import rrtf_lite.ranking as ranking

    (tmp_path / "problems.jsonl").write_text(json.dumps(PROBLEM) + "\n")
    samples = [
        {**_sample("teacher", 0, "def inc(x):\n    return x + 1", pid=PROBLEM["id"]), "response": "", "model": "t"},
        *(
            {**_sample("student", i, "def inc(x):\n    return x", pid=PROBLEM["id"]), "response": "", "model": "s"}
            for i in range(3)
        ),
    ]
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    open_stage("rank", RunConfig(), tmp_path)  # the killed run had opened the stage with these inputs
    done_before_kill = {**_execution("teacher", 0, 3, 1.0, pid=PROBLEM["id"]), "tests": []}
    half_written = '{"problem_id": "seed/0001", "source": "stud'
    (tmp_path / "executions.jsonl").write_text(json.dumps(done_before_kill) + "\n" + half_written)
    monkeypatch.setattr(ranking, "RESUME_CHUNK", 2)
    executed = []
    real = ranking.execute_samples
    monkeypatch.setattr(ranking, "execute_samples", lambda p, chunk, cfg: executed.extend(chunk) or real(p, chunk, cfg))

    stats = rank(RunConfig(), tmp_path)

    assert [(s["source"], s["sample_index"]) for s in executed] == [("student", 0), ("student", 1), ("student", 2)]
    lines = (tmp_path / "executions.jsonl").read_text().splitlines()
    keys = [(r["source"], r["sample_index"]) for r in map(json.loads, lines)]
    assert sorted(keys) == [("student", 0), ("student", 1), ("student", 2), ("teacher", 0)]
    assert json.loads(lines[0])["tests"] == []  # the record written before the kill was kept, not redone
    assert stats["pairs_kept"] == 3


def test_rank_rerun_after_samples_changed_does_not_reuse_old_pairs(tmp_path):
    """D8: samples.jsonl changed -> the rank stage redoes its work instead of saying "skipped"."""
    (tmp_path / "problems.jsonl").write_text(json.dumps(PROBLEM) + "\n")

    def write_samples(student_code):
        samples = [
            {**_sample("teacher", 0, "def inc(x):\n    return x + 1", pid=PROBLEM["id"]), "model": "t"},
            {**_sample("student", 0, student_code, pid=PROBLEM["id"]), "model": "s"},
        ]
        (tmp_path / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))

    write_samples("def inc(x):\n    return x")
    first = rank(RunConfig(), tmp_path)
    assert rank(RunConfig(), tmp_path)["skipped"] is True
    write_samples("def inc(x):\n    return 1 / 0")
    second = rank(RunConfig(), tmp_path)
    assert not second.get("skipped") and second["levels"]["student"] != first["levels"]["student"]
    pairs = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert "1 / 0" in pairs[0]["rejected"]
    cfg = RunConfig()
    cfg.rank.tie_gap = 0.5  # a changed config section redoes the stage too
    assert not rank(cfg, tmp_path).get("skipped")

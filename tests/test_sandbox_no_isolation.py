"""The path a user without root gets: rlimits, a new session and a sweep of descendants, nothing more.

``RRTF_SANDBOX_ISOLATION=off`` forces it even as root, so these tests run everywhere. What this path does not
protect (reading files, the network, signals to the user's other processes, writes the user may make) is listed in
README.md; the cases for those are left out here, and as root a fork bomb is too (RLIMIT_NPROC does not bind root).
"""

from __future__ import annotations

import os
import time

import pytest
from test_sandbox_adversarial import CASES, TESTS, _leftover_processes, _scratch_leftovers

from rrtf_lite import sandbox
from rrtf_lite.sandbox import ISOLATION_ENV, run_tests

NOT_PROTECTED = {
    "write_outside_scratch",  # the candidate has the user's rights on the user's files
    "delete_outside_scratch",
    "write_etc",  # as root it would succeed; a user cannot write /etc anyway
    "network",
    "kill_parent",  # the parent is the zygote: the caller sees a sandbox failure
    "kill_everything",  # kill(-1) reaches every process of the user
    "environment_secret",  # /proc/<pid>/environ of the user's own processes is readable
}
AS_ROOT_ONLY_WITH_ISOLATION = {"fork_bomb"}
CHECKED = [n for n in CASES if n not in NOT_PROTECTED and not (os.geteuid() == 0 and n in AS_ROOT_ONLY_WITH_ISOLATION)]


@pytest.fixture(autouse=True, scope="module")
def isolation_off():
    sandbox._shutdown()
    os.environ[ISOLATION_ENV] = "off"
    yield
    del os.environ[ISOLATION_ENV]
    sandbox._shutdown()


def test_every_layer_is_off():
    assert sandbox.isolation() == dict.fromkeys(
        ("network_namespace", "pid_namespace", "file_system_view", "drop_privileges"), False
    )


def test_levels_timeouts_and_crashes():
    tests = ["assert f(1) == 2", "assert f(2) == 3", "assert f(3) == 4"]
    assert run_tests("def f(x):\n    return x + 1", tests, "f").outcome == "all_pass"
    assert run_tests("def f(x):\n    return 2", tests, "f").outcome == "partial"
    assert run_tests("def f(x):\n    return 0", tests, "f").outcome == "passed_none"
    crash = run_tests("import os\ndef f(x):\n    if x == 1:\n        os._exit(3)\n    return x + 1", tests, "f")
    assert [t.status for t in crash.tests] == ["error", "pass", "pass"]
    hang = run_tests("def f(x):\n    while x > 1:\n        pass\n    return x + 1", tests, "f", timeout=1.0)
    assert [t.error_type for t in hang.tests] == [None, "Timeout", "NotRun"] and hang.wall_time < 1.6


@pytest.mark.parametrize("name", CHECKED)
def test_hostile_candidate_without_isolation(name, tmp_path):
    code, level, tests = (*CASES[name], TESTS)[:3]
    code = code.replace("{sentinel}", str(tmp_path / "sentinel.txt")).replace("{home}", str(tmp_path))
    t0 = time.monotonic()
    result = run_tests(code, tests, "f", timeout=0.5)
    assert result.level == level, result
    assert time.monotonic() - t0 < 4
    assert _leftover_processes() == []  # the sweep reached setsid grandchildren and lingering children
    assert _scratch_leftovers() == []
    assert all(z.alive() for z in sandbox._pool)
    assert run_tests("def f(x):\n    return x + 1", TESTS, "f").level == 3

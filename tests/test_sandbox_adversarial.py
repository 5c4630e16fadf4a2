"""Hostile candidates: each must get the expected level, leave no process or file behind and harm nothing else."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from rrtf_lite import sandbox
from rrtf_lite.sandbox import run_tests

TESTS = ["assert f(1) == 2", "assert f(2) == 3"]
FAST = 0.5  # per-test timeout: hostile cases that hang cost at most two of these
HOME_SENTINEL = Path.home() / f".rrtf-sentinel-{uuid.uuid4().hex}"  # outside every world-writable directory

# name -> (candidate source, expected level[, tests]). {sentinel} / {home} are filled in per test.
CASES: dict[str, tuple] = {
    "infinite_loop": ("def f(x):\n    while True:\n        pass", 1),
    "catastrophic_regex": ("import re\ndef f(x):\n    return re.match(r'(a+)+$', 'a' * 40 + 'b')", 1),
    "sleep": ("import time\ndef f(x):\n    time.sleep(1e9)", 1),
    "sleep_at_import": ("import time\ntime.sleep(1e9)\ndef f(x):\n    return x + 1", 1),
    "fork_bomb": (
        "import os\ndef f(x):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n"
        "            pass",
        1,
    ),
    "fork_once_and_linger": (
        "import os, time\ndef f(x):\n    if os.fork() == 0:\n        time.sleep(100)\n        os._exit(0)\n"
        "    return x + 1",
        3,
    ),
    "setsid_escape_grandchild": (
        "import os, time\ndef f(x):\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n"
        "            time.sleep(100)\n        os._exit(0)\n    return x + 1",
        3,
    ),
    "memory_bomb_bytearray": ("def f(x):\n    return len(bytearray(10**11))", 1),
    "memory_bomb_list": ("def f(x):\n    a = []\n    while True:\n        a.append(' ' * 10**6)", 1),
    "segfault_recursion": ("import sys\nsys.setrecursionlimit(10**7)\ndef f(x):\n    return f(x) + 1", 1),
    "sys_exit_at_import": ("import sys\nsys.exit(0)\ndef f(x):\n    return x + 1", 1),
    "sys_exit_in_test": ("import sys\ndef f(x):\n    sys.exit(0)", 1),
    "os_exit_at_import": ("import os\nos._exit(0)", 1),
    "os_exit_in_test": ("import os\ndef f(x):\n    os._exit(0)", 1),
    "keyboard_interrupt": ("def f(x):\n    raise KeyboardInterrupt", 1),
    "base_exception": ("def f(x):\n    raise BaseException('no')", 1),
    "sigalrm_ignored": (
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "def f(x):\n    signal.setitimer(signal.ITIMER_REAL, 0)\n    while True:\n        pass",
        1,
    ),
    "lingering_thread": (
        "import threading, time\nthreading.Thread(target=time.sleep, args=(100,)).start()\ndef f(x):\n    return x + 1",
        3,
    ),
    "hanging_atexit": ("import atexit, time\natexit.register(time.sleep, 100)\ndef f(x):\n    return x + 1", 3),
    "lying_eq_object": (
        "class Liar:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
        "def f(x):\n    return Liar()",
        1,
    ),
    "lying_eq_int_subclass": (
        "class Liar(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def f(x):\n    return Liar(x + 5)",
        2,
    ),
    "lying_str_subclass": (
        "class Liar(str):\n    def __eq__(self, other):\n        return True\n    __hash__ = str.__hash__\n"
        "def f(x):\n    return Liar('nope')",
        2,
    ),
    "patched_builtins": (
        "import builtins, operator\nbuiltins.abs = lambda v: 0\nbuiltins.len = lambda v: 0\n"
        "operator.eq = lambda a, b: True\ndef f(x):\n    return x",
        2,
    ),
    "patched_json_and_print": (
        "import json, builtins\njson.dumps = lambda *a, **k: '[\"done\"]'\nbuiltins.print = None\ndef f(x):\n"
        "    return x",
        2,
    ),
    "own_rr_assert": ("__rr_assert__ = lambda *a: None\ndef f(x):\n    return x", 2),
    "forged_stdout": (
        "import sys\nprint('PASSED all tests')\nprint('[\"done\"]')\nsys.stdout.flush()\ndef f(x):\n    return x",
        2,
    ),
    "forged_frames_on_fds": (  # frames travel in shared memory: bytes on fd 3 only ring the zygote
        'import os\nfor fd in range(3, 20):\n    try:\n        os.write(fd, b\'x ["imported"]\\n["done"]\\n\')\n'
        "    except OSError:\n        pass\ndef f(x):\n    return x",
        2,
    ),
    "stolen_nonce_forged_passes": (
        "import sys, os, json\nfr = sys._getframe(1)\nnonce, job = fr.f_locals['nonce'], fr.f_locals['job']\n"
        "def w(*f):\n    os.write(3, (nonce + ' ' + json.dumps(f) + '\\n').encode())\nw('imported')\n"
        "for i in range(fr.f_locals['start'], len(job['tests'])):\n    w('start', i)\n    w('end', i)\n"
        "w('done')\nos._exit(0)",
        1,
    ),
    "stolen_nonce_frames_past_the_end": (
        "import sys, os, json\nfr = sys._getframe(1)\nnonce = fr.f_locals['nonce']\n"
        "def w(*f):\n    os.write(3, (nonce + ' ' + json.dumps(f) + '\\n').encode())\nw('imported')\n"
        "for i in range(5):\n    w('start', i)\n    w('a', -1, [])\n    w('end', i)\nos._exit(0)",
        1,
    ),
    "scan_memory_for_expected": (
        "import gc\ndef f(x):\n    for o in gc.get_objects():\n        if type(o) is list and 31337 in o:\n"
        "            return o\n    return None",
        2,
        ["assert f(1) == [31337, 2]", "assert f(2) == [31337, 3]"],
    ),
    "write_outside_scratch": ("def f(x):\n    open('{sentinel}', 'w').write('pwned')\n    return x + 1", 1),
    "delete_outside_scratch": (
        "import os, shutil\ndef f(x):\n    os.remove('{sentinel}')\n    shutil.rmtree('{home}')\n    return x + 1",
        1,
    ),
    "write_etc": ("def f(x):\n    open('/etc/rrtf-pwned', 'w').write('x')\n    return x + 1", 1),
    "huge_file": ("def f(x):\n    with open('b', 'wb') as h:\n        while 1:\n            h.write(b'x' * 9**6)", 1),
    "huge_output": ("def f(x):\n    while True:\n        print('x' * 100000)", 1),
    "closed_stdio_then_loop": ("import os\ndef f(x):\n    os.close(1)\n    os.close(2)\n    while 1:\n        pass", 1),
    "input": ("def f(x):\n    return int(input())", 1),
    "environment_secret": (
        "import os, glob\ndef f(x):\n    blobs = [str(os.environ)]\n    for p in glob.glob('/proc/*/environ'):\n"
        "        try:\n            blobs.append(open(p, 'rb').read().decode('latin-1'))\n        except OSError:\n"
        "            pass\n    return x + 1 if any('hunter2' in b for b in blobs) else -1",
        2,
    ),
    "subprocess_and_system": (  # the file-system view has no programs to start: each attempt may fail
        "import os, subprocess\ndef f(x):\n    os.system('sleep 100 &')\n    try:\n"
        "        subprocess.Popen(['sleep', '100'], start_new_session=True)\n"
        "        subprocess.run(['sh', '-c', 'echo pwned > {sentinel}'])\n    except OSError:\n        pass\n"
        "    return x + 1",
        3,
    ),
    "network": (
        "import socket\ndef f(x):\n    socket.create_connection(('1.1.1.1', 80), timeout=0.2)\n    return x + 1",
        1,
    ),
    "kill_parent": ("import os\ndef f(x):\n    os.kill(os.getppid(), 9)\n    return x + 1", 3),  # harmless
    "kill_everything": (
        "import ctypes, os\ndef f(x):\n    ctypes.CDLL(None).kill(-1, 9)\n"
        "    for p in os.listdir('/proc') if os.path.isdir('/proc') else []:  # the view has no /proc\n"
        "        if p.isdigit() and int(p) > 1:\n            try:\n                os.kill(int(p), 9)\n"
        "            except OSError:\n                pass\n    return x + 1",
        3,
    ),
    "hostile_exception_str": (
        "class E(Exception):\n    def __str__(self):\n        while True:\n            pass\ndef f(x):\n    raise E()",
        1,
    ),
    "not_plain_generator": ("def f(x):\n    yield x + 1", 1),
    "nul_bytes": ("def f(x):\n    return x + 1\n\x00", 0),
    "huge_source": ("x = 1\n" * 2_000_000, 0),
    "deeply_nested_parens": ("x = " + "(" * 100_000 + ")" * 100_000, 0),
}


def _leftover_processes() -> list[int]:
    """Processes still descending from this session's zygotes (other sessions may run sandboxes too)."""
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        parents[int(pid)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    zygotes = {z.proc.pid for z in sandbox._pool}
    left = []
    for pid in parents:
        ancestor = parents.get(pid, 0)
        while ancestor > 1 and ancestor not in zygotes:
            ancestor = parents.get(ancestor, 0)
        if ancestor in zygotes:
            left.append(pid)
    return left


def _scratch_leftovers() -> list[str]:
    """Scratch directories still present inside each zygote's private /tmp."""
    left = []
    for zygote in sandbox._pool:
        base = Path(f"/proc/{zygote.proc.pid}/root{zygote.scratch}")
        if base.is_dir():
            left += [str(p) for p in base.iterdir()]
    return left


@pytest.fixture
def sentinels(tmp_path):
    HOME_SENTINEL.mkdir()
    files = [tmp_path / "sentinel.txt", HOME_SENTINEL / "sentinel.txt"]
    for f in files:
        f.write_text("intact")
    yield files
    for f in files:
        assert f.read_text() == "intact"
        f.unlink()
    HOME_SENTINEL.rmdir()


@pytest.fixture(scope="module", autouse=True)
def secret_in_environment():
    """A secret in the caller's environment when the zygotes start: no candidate may see it."""
    sandbox._shutdown()
    os.environ["RRTF_TEST_SECRET"] = "hunter2"
    yield
    del os.environ["RRTF_TEST_SECRET"]


@pytest.mark.skipif(os.geteuid() != 0, reason="full isolation (nobody, namespaces) needs root")
@pytest.mark.parametrize("name", list(CASES))
def test_hostile_candidate(name, sentinels):
    code, level, tests = (*CASES[name], TESTS)[:3]
    code = code.replace("{sentinel}", str(sentinels[1])).replace("{home}", str(HOME_SENTINEL))
    t0 = time.monotonic()
    result = run_tests(code, tests, "f", timeout=FAST)
    assert result.level == level, result
    assert result.pass_fraction == (1.0 if level == 3 else 0.0)
    assert time.monotonic() - t0 < 4 * FAST + 2  # lingering threads and atexit hooks add no delay
    assert _leftover_processes() == []
    assert _scratch_leftovers() == []
    assert all(z.alive() for z in sandbox._pool)  # the supervisors survive, and so does this process
    assert not Path("/etc/rrtf-pwned").exists()
    assert run_tests("def f(x):\n    return x + 1", TESTS, "f").level == 3  # the pool still works


def test_isolation_layers_active_as_root():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    assert all(sandbox.isolation().values()), sandbox.isolation()

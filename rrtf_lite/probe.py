"""A preference probe that no model's own samples can move: the reference solution against small mutants of it.

A margin between the teacher's answer and the base student's own greedy answer rises with any drift away from
the base model, whether or not the model learned to prefer correct code. Here every arm is asked the same
question about the same texts: is a problem's reference solution more likely than a copy of it with one small
bug that fails the problem's tests?

- ``mutants``: single-site AST mutations of a reference (an operator swapped, a constant off by one, ``min``
  for ``max``, a ``sorted`` dropped, ...). The reference is rendered with ``ast.unparse`` exactly like its
  mutants, so the two texts differ only in the mutation, never in formatting or comments.
- ``build_items``: keeps the mutants that fail at least one test in the sandbox, run as the rank stage runs a
  sample; ``python -m rrtf_lite.probe build --split heldout --out data/probe/heldout_mutants.jsonl`` writes them.
- ``score``: p_ref and p_mut, the length-normalised log-likelihoods of the two answers, each formatted and
  prompted as a teacher answer is in training (the rank loss's p_i).
- ``summarise``: accuracy (share of pairs with p_ref > p_mut; a tie counts as wrong) and margin (mean
  p_ref - p_mut), per problem first, then over problems, so a problem with more mutants does not weigh more.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rrtf_lite.programs import program_for
from rrtf_lite.prompts import build_prompt, chat_prompt, format_target
from rrtf_lite.sandbox import Job, run_many
from rrtf_lite.stages import digest

__all__ = [
    "KINDS",
    "Mutant",
    "build_items",
    "interleave",
    "mutants",
    "problem_sha",
    "render",
    "score",
    "summarise",
]

# mutation families, in the order a problem's mutants take turns (so the first few are of different kinds)
KINDS = (
    "Compare",
    "Arithmetic",
    "Boolean",
    "Number",
    "Bound",
    "Builtin",
    "Method",
    "Bool",
    "DropCall",
    "Negation",
    "Swap",
    "String",
)
COMPARE_SWAPS = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
ARITHMETIC_SWAPS = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.BitXor: ast.BitAnd,
}
BOOLEAN_SWAPS = {ast.And: ast.Or, ast.Or: ast.And}
BUILTIN_SWAPS = {"min": "max", "max": "min", "any": "all", "all": "any", "list": "tuple", "tuple": "list"}
METHOD_SWAPS = {
    "lower": "upper",
    "upper": "lower",
    "find": "rfind",
    "rfind": "find",
    "index": "rindex",
    "rindex": "index",
    "strip": "lstrip",
    "lstrip": "rstrip",
    "rstrip": "lstrip",
    "ljust": "rjust",
    "rjust": "ljust",
    "startswith": "endswith",
    "endswith": "startswith",
    "isdigit": "isalpha",
    "isalpha": "isdigit",
    "isupper": "islower",
    "islower": "isupper",
    "keys": "values",
    "values": "keys",
    "append": "extend",
    "extend": "append",
}
# one-argument builtins whose call can be dropped (``sorted(x)`` -> ``x``), and argument-less methods likewise
DROPPED_CALLS = ("sorted", "reversed", "abs", "set", "list", "tuple", "str", "int", "len", "sum", "round")
DROPPED_METHODS = ("strip", "lstrip", "rstrip", "lower", "upper", "title", "capitalize", "casefold", "swapcase")
PROBE_TIMEOUT = 1.0  # seconds per test: references run in milliseconds; a mutant that loops forever costs this once


@dataclass(frozen=True)
class Mutant:
    code: str  # the whole mutated module, rendered by ast.unparse
    description: str  # e.g. "Compare: Lt -> LtE at line 3"
    kind: str  # one of KINDS


@dataclass(frozen=True)
class _Edit:
    """One candidate change at one node: ``apply`` rewrites that node (of a copy) and returns its replacement."""

    kind: str
    change: str
    line: int
    apply: Callable[[ast.AST], ast.AST]


# ---------------------------------------------------------------- 1. mutants
def render(code: str) -> str:
    """The source as ``ast.unparse`` writes it: the form a reference and its mutants share."""
    return ast.unparse(ast.parse(code)) + "\n"


def mutants(code: str, max_per_problem: int | None = 4) -> list[Mutant]:
    """Single-site mutants of ``code`` (rendered like ``render(code)``), deterministic, kinds taking turns.

    Mutants that equal the reference, repeat an earlier mutant or do not compile are left out; ``None`` keeps all.
    Code that does not parse has none.
    """
    try:
        tree = ast.parse(render(code))
    except (SyntaxError, ValueError):
        return []
    reference = ast.unparse(tree) + "\n"
    found, seen = [], {reference}
    for index, edit in _edits(tree):
        text = _apply(tree, index, edit)
        if text in seen or not _compiles(text):
            continue
        seen.add(text)
        found.append(Mutant(text, f"{edit.kind}: {edit.change} at line {edit.line}", edit.kind))
    ordered = interleave(found)
    return ordered if max_per_problem is None else ordered[:max_per_problem]


def interleave(found: list[Mutant]) -> list[Mutant]:
    """Kinds take turns in ``KINDS`` order, each kind's mutants in source order."""
    by_kind = {kind: [m for m in found if m.kind == kind] for kind in KINDS}
    rounds = max((len(group) for group in by_kind.values()), default=0)
    return [group[i] for i in range(rounds) for group in by_kind.values() if i < len(group)]


def _preorder(node: ast.AST) -> Iterator[ast.AST]:
    """Nodes in a fixed order, the same for a tree and its deep copy."""
    yield node
    for child in ast.iter_child_nodes(node):
        yield from _preorder(child)


def _apply(tree: ast.Module, index: int, edit: _Edit) -> str:
    """The module with ``edit`` applied to the node at ``index`` of a deep copy."""
    mutated = copy.deepcopy(tree)
    nodes = list(_preorder(mutated))
    target = nodes[index]
    replacement = edit.apply(target)
    if replacement is not target:
        _replace_child(nodes, target, replacement)
    return ast.unparse(ast.fix_missing_locations(mutated)) + "\n"


def _replace_child(nodes: list[ast.AST], old: ast.AST, new: ast.AST) -> None:
    for parent in nodes:
        for name, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, name, new)
                return
            if isinstance(value, list) and any(v is old for v in value):
                value[next(i for i, v in enumerate(value) if v is old)] = new
                return
    raise ValueError("node to replace has no parent")


def _compiles(text: str) -> bool:
    try:
        compile(text, "<mutant>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def _edits(tree: ast.Module) -> Iterator[tuple[int, _Edit]]:
    """Every candidate edit with the preorder index of the node it rewrites."""
    skipped = _untouchable(tree)
    bounds = _bounds(tree)
    for index, node in enumerate(_preorder(tree)):
        if id(node) in skipped:
            continue
        for edit in _node_edits(node):
            yield index, edit
        if id(node) in bounds:
            yield index, _Edit("Bound", f"{_short(node)} -> {_short(node)} + 1", node.lineno, _plus_one)


def _node_edits(node: ast.AST) -> list[_Edit]:
    line = getattr(node, "lineno", 0)
    if isinstance(node, ast.Compare):
        return [_compare_edit(node, k, line) for k, op in enumerate(node.ops) if type(op) in COMPARE_SWAPS]
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in ARITHMETIC_SWAPS:
        return [_swap_op_edit("Arithmetic", node, ARITHMETIC_SWAPS, line)]
    if isinstance(node, ast.BoolOp):
        return [_swap_op_edit("Boolean", node, BOOLEAN_SWAPS, line)]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub, ast.Invert)):
        return [_Edit("Negation", f"{_short(node)} -> {_short(node.operand)}", line, lambda n: n.operand)]
    if isinstance(node, ast.Constant):
        return _constant_edits(node, line)
    if isinstance(node, ast.Name) and node.id in BUILTIN_SWAPS and isinstance(node.ctx, ast.Load):
        return [_Edit("Builtin", f"{node.id} -> {BUILTIN_SWAPS[node.id]}", line, _swap_builtin)]
    if isinstance(node, ast.Call):
        return _call_edits(node, line)
    if isinstance(node, (ast.If, ast.While, ast.IfExp, ast.comprehension)):
        return _negate_condition_edits(node)
    if isinstance(node, ast.Tuple) and len(node.elts) == 2 and not any(isinstance(e, ast.Starred) for e in node.elts):
        change = f"{_short(node.elts[0])}, {_short(node.elts[1])} swapped"
        return [_Edit("Swap", change, line, _swap_fields("elts", 0, 1))]
    if isinstance(node, ast.DictComp):
        return [_Edit("Swap", f"dict key {_short(node.key)} and value {_short(node.value)}", line, _swap_key_value)]
    return []


def _call_edits(node: ast.Call, line: int) -> list[_Edit]:
    """Method swaps (``lower`` -> ``upper``), dropped calls (``sorted(x)`` -> ``x``), two arguments swapped."""
    edits = []
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in METHOD_SWAPS:
        edits.append(_Edit("Method", f".{func.attr}() -> .{METHOD_SWAPS[func.attr]}()", line, _swap_method))
    one_argument = len(node.args) == 1 and not isinstance(node.args[0], ast.Starred)
    if isinstance(func, ast.Name) and func.id in DROPPED_CALLS and one_argument:
        edits.append(_Edit("DropCall", f"{func.id}(x) -> x", line, lambda n: n.args[0]))
    if isinstance(func, ast.Attribute) and func.attr in DROPPED_METHODS and not node.args and not node.keywords:
        edits.append(_Edit("DropCall", f"x.{func.attr}() -> x", line, lambda n: n.func.value))
    positional = node.args[:2]
    if len(positional) == 2 and not any(isinstance(a, ast.Starred) for a in positional):
        if ast.dump(positional[0]) != ast.dump(positional[1]):
            change = f"arguments {_short(positional[0])}, {_short(positional[1])} of {_short(func)}() swapped"
            edits.append(_Edit("Swap", change, line, _swap_fields("args", 0, 1)))
    return edits


def _negate_condition_edits(node: ast.AST) -> list[_Edit]:
    """``if c`` -> ``if not c`` for a condition that no Compare, Boolean or Negation edit already reaches."""
    tests = node.ifs if isinstance(node, ast.comprehension) else [node.test]
    edits = []
    for k, test in enumerate(tests):
        if isinstance(test, (ast.Compare, ast.BoolOp, ast.UnaryOp, ast.Constant)):
            continue

        def apply(n: ast.AST, k: int = k) -> ast.AST:
            if isinstance(n, ast.comprehension):
                n.ifs = [ast.UnaryOp(ast.Not(), t) if i == k else t for i, t in enumerate(n.ifs)]
            else:
                n.test = ast.UnaryOp(ast.Not(), n.test)
            return n

        edits.append(_Edit("Negation", f"{_short(test)} -> not {_short(test)}", test.lineno, apply))
    return edits


def _swap_fields(name: str, i: int, j: int) -> Callable[[ast.AST], ast.AST]:
    def apply(n: ast.AST) -> ast.AST:
        values = list(getattr(n, name))
        values[i], values[j] = values[j], values[i]
        setattr(n, name, values)
        return n

    return apply


def _swap_key_value(n: ast.DictComp) -> ast.DictComp:
    n.key, n.value = n.value, n.key
    return n


def _swap_method(n: ast.Call) -> ast.Call:
    n.func.attr = METHOD_SWAPS[n.func.attr]
    return n


def _compare_edit(node: ast.Compare, k: int, line: int) -> _Edit:
    old = type(node.ops[k])
    new = COMPARE_SWAPS[old]

    def apply(n: ast.Compare) -> ast.Compare:
        n.ops = [new() if i == k else op for i, op in enumerate(n.ops)]
        return n

    return _Edit("Compare", f"{old.__name__} -> {new.__name__}", line, apply)


def _swap_op_edit(kind: str, node: ast.AST, swaps: dict, line: int) -> _Edit:
    old = type(node.op)
    new = swaps[old]

    def apply(n: ast.AST) -> ast.AST:
        n.op = new()
        return n

    return _Edit(kind, f"{old.__name__} -> {new.__name__}", line, apply)


def _constant_edits(node: ast.Constant, line: int) -> list[_Edit]:
    value = node.value
    if isinstance(value, bool):
        return [_Edit("Bool", f"{value} -> {not value}", line, _set_value(not value))]
    if isinstance(value, int):
        return [_Edit("Number", f"{value} -> {v}", line, _set_value(v)) for v in (value + 1, value - 1)]
    if isinstance(value, float):
        return [_Edit("Number", f"{value} -> {value + 1}", line, _set_value(value + 1))]
    if isinstance(value, str):
        new = value[:-1] if value else " "
        return [_Edit("String", f"{_short_repr(value)} -> {_short_repr(new)}", line, _set_value(new))]
    return []


def _set_value(value: object) -> Callable[[ast.AST], ast.AST]:
    def apply(n: ast.Constant) -> ast.Constant:
        n.value = value
        return n

    return apply


def _swap_builtin(n: ast.Name) -> ast.Name:
    n.id = BUILTIN_SWAPS[n.id]
    return n


def _plus_one(n: ast.expr) -> ast.expr:
    return ast.BinOp(n, ast.Add(), ast.Constant(1))


def _bounds(tree: ast.Module) -> set[int]:
    """Slice bounds and ``range`` arguments that are expressions (constant bounds get Number edits instead)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Slice):
            found += [node.lower, node.upper]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
            found += node.args[:2]
    return {id(b) for b in found if b is not None and _is_expression_bound(b)}


def _is_expression_bound(node: ast.expr) -> bool:
    """Not a number, nor ``x +/- number`` (whose number already gets a Number edit), nor a starred argument."""
    if isinstance(node, (ast.Constant, ast.Starred)):
        return False
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
        return False
    return not (isinstance(node, ast.BinOp) and isinstance(node.right, ast.Constant))


def _untouchable(tree: ast.Module) -> set[int]:
    """Nodes no test can tell apart (docstrings, annotations) or awkward to rewrite (inside f-strings)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                skipped.add(id(body[0].value))
        parts = [node] if isinstance(node, ast.JoinedStr) else []
        parts += [getattr(node, name, None) for name in ("annotation", "returns")]
        for part in parts:
            if isinstance(part, ast.AST):
                skipped.update(id(n) for n in ast.walk(part))
    return skipped


def _short(node: ast.AST, limit: int = 30) -> str:
    text = ast.unparse(node)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short_repr(value: str, limit: int = 20) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


# ---------------------------------------------------------------- 2. mutants that fail a test
def problem_sha(problem: dict) -> str:
    """Digest of what the probe depends on in a problem: its prompt and its tests."""
    return digest(json.dumps([build_prompt(problem), list(problem["tests"])]))


def build_items(
    problems: list[dict],
    max_per_problem: int = 4,
    max_tried: int = 24,
    timeout: float = PROBE_TIMEOUT,
    workers: int = 2,
) -> tuple[list[dict], dict]:
    """(items, stats): up to ``max_per_problem`` mutants per problem that fail at least one of its tests.

    The first ``max_tried`` candidates of each problem (kinds taking turns) run in the sandbox next to the
    reference, as the rank stage runs a sample: a problem whose reference does not pass is left out, and so is
    every mutant that still passes all tests (its mutation changes nothing the tests see).
    """
    plans = [_plan(p, max_tried) for p in problems]
    jobs = [
        Job(program, list(p["tests"]), p["entry_point"], timeout)
        for p, plan in zip(problems, plans, strict=True)
        for program in plan
    ]
    results = iter(run_many(jobs, workers=workers))
    items, stats = [], Counter()
    for problem, plan in zip(problems, plans, strict=True):
        passed = {program: next(results).level == 3 for program in plan}
        items += _keep(problem, plan, passed, max_per_problem, stats)
    return items, _stats(problems, items, stats)


def _plan(problem: dict, max_tried: int) -> dict[str, Mutant | None]:
    """program -> its mutant: the reference program first (``None``), then the distinct mutant programs."""
    try:
        reference = render(problem["reference_solution"])
    except (SyntaxError, ValueError):
        return {}
    plan: dict[str, Mutant | None] = {program_for(problem, reference): None}
    for m in mutants(reference, None)[:max_tried]:
        program = program_for(problem, m.code)
        if program is not None and program not in plan and _compiles(program):
            plan[program] = Mutant(program, m.description, m.kind)
    return plan


def _keep(
    problem: dict, plan: dict[str, Mutant | None], passed: dict[str, bool], limit: int, stats: Counter
) -> list[dict]:
    """The problem's items: its first ``limit`` failing mutants, kinds taking turns; none if the reference fails."""
    if not plan:
        stats["reference_unparsable"] += 1
        return []
    reference, *candidates = plan
    stats["tried"] += len(candidates)
    if not passed[reference]:
        stats["reference_fails"] += 1
        return []
    failing = [plan[program] for program in candidates if not passed[program]]
    stats["survived"] += len(candidates) - len(failing)
    sha = problem_sha(problem)
    return [
        {
            "problem_id": problem["id"],
            "reference": reference,
            "mutant": m.code,
            "description": m.description,
            "problem_sha": sha,
        }
        for m in interleave(failing)[:limit]
    ]


def _stats(problems: list[dict], items: list[dict], counts: Counter) -> dict:
    per_problem = Counter(item["problem_id"] for item in items)
    return {
        "problems": len(problems),
        "with_mutant": len(per_problem),
        "pairs": len(items),
        "mean_per_problem": len(items) / len(problems) if problems else 0.0,
        "mean_per_problem_with_mutant": len(items) / len(per_problem) if per_problem else 0.0,
        "kinds": dict(Counter(item["description"].split(":")[0] for item in items).most_common()),
        "candidates_tried": counts["tried"],
        "candidates_passing_all_tests": counts["survived"],
        "references_failing": counts["reference_fails"],
        "references_unparsable": counts["reference_unparsable"],
    }


# ---------------------------------------------------------------- 3. scoring
def score(
    model,
    tokenizer,
    items: list[dict],
    build_prompt_fn: Callable[[dict], str],
    max_prompt_length: int,
    max_response_length: int,
    batch_size: int = 4,
) -> list[dict]:
    """p_ref and p_mut per item: mean token log-prob of each answer given the chat prompt, as the rank loss's p_i.

    Each item holds ``problem_id``, ``reference``, ``mutant`` and ``problem`` (the problem's record);
    ``build_prompt_fn(problem)`` is the user message (``prompts.build_prompt``). Each answer is the program in a
    python block (``prompts.format_target``), as a teacher answer is trained on, tokenised and truncated as
    ``train.tokenize_groups`` does.
    """
    import torch

    from rrtf_lite.loss import length_normalised, sequence_logprobs

    rows = _rows(tokenizer, items, build_prompt_fn, max_prompt_length, max_response_length)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    step = 2 * max(1, batch_size)  # two rows per item: reference, mutant
    p: list[float] = []
    model.eval()
    for start in range(0, len(rows), step):
        batch = _collate(rows[start : start + step], pad)
        with torch.inference_mode():
            logits = model(
                input_ids=batch["input_ids"].to(model.device), attention_mask=batch["attention_mask"].to(model.device)
            ).logits
            p += length_normalised(*sequence_logprobs(logits, batch["labels"].to(model.device))).tolist()
    return [
        {"problem_id": item["problem_id"], "p_ref": p[2 * i], "p_mut": p[2 * i + 1]} for i, item in enumerate(items)
    ]


def _rows(tokenizer, items, build_prompt_fn, max_prompt_length: int, max_response_length: int) -> list[tuple]:
    """(prompt ids, response ids) per answer, reference then mutant, as ``train.tokenize_groups`` makes them."""
    prompts: dict[str, list[int]] = {}
    rows = []
    for item in items:
        pid = item["problem_id"]
        if pid not in prompts:
            ids = tokenizer(chat_prompt(tokenizer, build_prompt_fn(item["problem"])), add_special_tokens=False)
            ids = ids["input_ids"]
            prompts[pid] = ids[-max_prompt_length:]  # the end of a long prompt stays: it asks for the answer
        for side in ("reference", "mutant"):
            ids = tokenizer(format_target(item[side]), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            rows.append((prompts[pid], ids[:max_response_length]))
    return rows


def _collate(rows: list[tuple], pad_token_id: int) -> dict:
    """Right-padded rows; labels hold the response tokens only (``IGNORE_INDEX`` elsewhere)."""
    import torch

    from rrtf_lite.loss import IGNORE_INDEX

    width = max(len(prompt) + len(response) for prompt, response in rows)
    ids, mask, labels = [], [], []
    for prompt, response in rows:
        n = len(prompt) + len(response)
        ids.append(prompt + response + [pad_token_id] * (width - n))
        mask.append([1] * n + [0] * (width - n))
        labels.append([IGNORE_INDEX] * len(prompt) + response + [IGNORE_INDEX] * (width - n))
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}


# ---------------------------------------------------------------- 4. summary
def summarise(rows: list[dict]) -> dict:
    """Accuracy and margin per problem, then their means over problems (each problem weighs the same)."""
    diffs: dict[str, list[float]] = {}
    for row in rows:
        diffs.setdefault(row["problem_id"], []).append(row["p_ref"] - row["p_mut"])
    per_problem = {
        pid: {"accuracy": _mean([d > 0 for d in ds]), "margin": _mean(ds), "pairs": len(ds)}
        for pid, ds in sorted(diffs.items())
    }
    return {
        "accuracy": _mean([v["accuracy"] for v in per_problem.values()]),
        "margin": _mean([v["margin"] for v in per_problem.values()]),
        "problems": len(per_problem),
        "pairs": len(rows),
        "per_problem": per_problem,
    }


def _mean(values: list) -> float:
    return sum(values) / len(values) if values else math.nan


# ---------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> dict:
    """``python -m rrtf_lite.probe build --split heldout --out data/probe/heldout_mutants.jsonl``"""
    from rrtf_lite.data import load_problems
    from rrtf_lite.records import write_jsonl

    parser = argparse.ArgumentParser(prog="python -m rrtf_lite.probe", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="write the mutants of one split's references that fail a test")
    build.add_argument("--split", default="heldout")
    build.add_argument("--out", required=True)
    build.add_argument("--max-per-problem", type=int, default=4)
    build.add_argument("--max-tried", type=int, default=24)
    build.add_argument("--timeout", type=float, default=PROBE_TIMEOUT)
    build.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    problems = [p for p in load_problems(args.split) if (p.get("reference_solution") or "").strip()]
    items, stats = build_items(problems, args.max_per_problem, args.max_tried, args.timeout, args.workers)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out, items)
    print(json.dumps({"split": args.split, "out": args.out, **stats}, indent=1))
    return stats


if __name__ == "__main__":
    main()

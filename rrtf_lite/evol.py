"""The ``evolve`` stage: Evol-Instruct for code (WizardCoder), an eliminator, and tests for evolved problems.

Each round picks ``evol.problems_per_round`` parents (deterministically from ``config.seed``), rewrites each
with one heuristic of ``EVOL_TEMPLATES`` (WizardCoder's five code heuristics plus WizardLM's in-breadth
operation) and drops failed rewrites with the reason recorded (WizardLM's elimination rules, see
``eliminate``). A surviving rewrite needs unit tests, which PanGu-Coder2 does not say how it obtained. This
tutorial's choice:

- With an LLM test writer (``evol.test_writer.kind`` hf/openai/vllm): the teacher writes a solution and
  asserts; the sandbox runs the solution against them, and the problem is kept only if all pass and there
  are at least ``evol.min_tests``.
- Offline (``kind = "reference"``) there is no teacher that can solve a *new* problem. An evolved problem is
  kept only if its rewritten text still asks for the parent's function and the parent's reference solution
  passes the parent's tests: it then inherits those tests and that solution. The rewrite changes the words
  the student sees, not the behaviour the tests check. Other rewrites are counted as "no_tests_offline".

Attempts go to ``evol_attempts.jsonl`` one line each (resumable, keyed by parent, round and method), the
result to ``problems.jsonl`` (the seed problems + kept evolved ones, deduplicated and decontaminated against
HumanEval) and per-round, per-heuristic counts to ``evol_stats.json``.
"""

from __future__ import annotations

import ast
import difflib
import json
import random
import re
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from rrtf_lite.backends import Generator, RecordedEvolver, make_generator
from rrtf_lite.config import EVOL_METHODS, RunConfig, derive_seed
from rrtf_lite.errors import UserError
from rrtf_lite.programs import defines, extract_code, fenced_blocks, parse

# ---------------------------------------------------------------- templates (a notebook shows and edits these)
_INCREASE = (
    "Please increase the difficulty of the given programming test question a bit. You can increase the "
    "difficulty using, but not limited to, the following methods:\n{method}\n\n"
)
_FORMAT = (
    "The rewritten task must still ask for one Python function. Start your reply with the line "
    "`Function: name(arguments)` that names the function and its arguments, then state the task. "
    "Reply with the rewritten task only; do not solve it.\n\n"
    "#Given Task#\n{question}\n\n#Rewritten Task#\n"
)
WIZARDCODER_METHODS = {
    "add_constraints": "Add new constraints and requirements to the original problem, adding approximately 10 "
    "additional words.",
    "rarer_requirement": "Replace a commonly used requirement in the programming task with a less common and more "
    "specific one.",
    "more_reasoning": "If the original problem can be solved with only a few logical steps, please add more "
    "reasoning steps.",
    "erroneous_code": "Provide a piece of erroneous code as a reference to increase misdirection.",
    "complexity": "Propose higher time or space complexity requirements, but please refrain from doing so frequently.",
}
BREADTH_TEMPLATE = (
    "I want you to act as a Programming Test Question Creator. Draw inspiration from the #Given Task# to create "
    "a brand new programming task. It should belong to the same domain as the #Given Task# but be more rare. "
    "Its length and difficulty should be similar to those of the #Given Task#.\n\n" + _FORMAT
)
EVOL_TEMPLATES: dict[str, str] = {
    **{name: _INCREASE.replace("{method}", text) + _FORMAT for name, text in WIZARDCODER_METHODS.items()},
    "breadth": BREADTH_TEMPLATE,
}
METHOD_WEIGHTS = {"complexity": 0.5}  # WizardCoder: "refrain from doing so frequently"; others weigh 1

TEST_WRITER_TEMPLATE = """Write a correct Python solution for the programming task below, and at least {min_tests} \
unit tests for it.

Reply with exactly two Python code blocks:
1. the solution: the function `{entry_point}` with the imports it needs;
2. the tests: one `assert` statement per line, each calling `{entry_point}` and checking its result.

#Task#
{instruction}
"""

# ---------------------------------------------------------------- drop reasons (keys of the stats)
DROP_REASONS = {
    "empty": "the evolver returned nothing",
    "stopwords_only": "only punctuation and stop words (WizardLM rule 3)",
    "refusal": "a refusal: 'sorry' / 'as an AI' in under 80 words (WizardLM rule 2)",
    "too_short": "too short to be a task",
    "copied_scaffolding": "copies the prompt's scaffolding, e.g. '#Rewritten Task#' (WizardLM rule 4)",
    "truncated": "cut off: the evolver hit max_new_tokens",
    "code_block": "contains a code block (only erroneous_code may show one misleading snippet)",
    "is_code": "the reply is code (a solution or an attempt), not a problem statement",
    "defines_function": "defines a function: a solution, not a task",
    "no_function": "no longer a function-writing task: no parsable function name or signature",
    "no_change": "no real change from the parent (WizardLM rule 1, by text similarity)",
    "no_tests_offline": "offline: the rewrite asks for another function, so the parent's tests do not apply",
    "parent_tests_fail": "offline: the parent's reference solution does not pass the parent's tests",
    "no_teacher_solution": "the test writer's reply held no solution defining the function",
    "not_recorded": "recorded evolver: no recorded reply for this parent and heuristic",
    "too_few_tests": "fewer than evol.min_tests tests",
    "teacher_failed_tests": "the test writer's own solution fails its tests",
    "duplicate": "same normalized text as another problem",
    "contaminated": "overlaps HumanEval (data.decontaminate)",
    "near_evaluated": "near a held-out or validation problem (decontam: entry point, text, AST or solves its tests)",
}
MIN_WORDS = 12
SIMILARITY_LIMIT = 0.9
_SCAFFOLDING = (
    "#rewritten task#",
    "#given task#",
    "#created task#",
    "rewritten task",
    "given task",
    "rewritten prompt",
    "given prompt",
    "created task",
)
_STOP_WORDS = set(
    "a an and are as at be but by for from has have in is it its of on or so that the this to was were will with "
    "you your i we they he she them our my me do does not no yes ok okay here there what which who how".split()
)


def _fill(template: str, **values) -> str:
    """``{name}`` placeholders only; problem texts full of braces (code, sets, f-strings) pass through."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", str(value))
    return template


def question_text(problem: dict) -> str:
    """The parent as the evolver sees it: instruction plus signature."""
    text, signature = problem["instruction"].strip(), problem.get("signature") or ""
    return text if not signature or signature in text else f"{text}\n\nSignature: `{signature}`"


def render_evol_prompt(method: str, problem: dict, templates: dict[str, str] | None = None) -> str:
    templates = templates or EVOL_TEMPLATES
    if method not in templates:
        raise UserError(f"No evolution template for {method!r}: choose from {', '.join(templates)}.")
    return _fill(templates[method], question=question_text(problem))


# ---------------------------------------------------------------- parsing and the eliminator
_FUNCTION_LINE = re.compile(
    r"^[\s*#>`-]*function\s*[*]*\s*:[\s`*]*(?:def\s+)?([A-Za-z_]\w*)\s*\(([^)\n]*)\)\s*(->\s*[^`*\n:]+)?",
    re.IGNORECASE | re.MULTILINE,
)
_DEF_LINE = re.compile(r"^\s*def\s+([A-Za-z_]\w*)\s*\(([^)\n]*)\)\s*(->\s*[^:\n]+)?\s*:", re.MULTILINE)


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def parse_evolved(reply: str) -> dict | None:
    """{instruction, entry_point, signature} from an evolver reply, or None if it names no function."""
    match = _FUNCTION_LINE.search(reply) or _DEF_LINE.search(reply)
    if not match:
        return None
    name, args, returns = match.group(1), match.group(2).strip(), (match.group(3) or "").strip()
    signature = f"def {name}({args})" + (f" {returns}" if returns else "") + ":"
    instruction = reply
    if match.re is _FUNCTION_LINE:  # the "Function:" line is format, not task text
        instruction = reply[: match.start()] + reply[match.end() :].split("\n", 1)[-1]
    instruction = instruction.strip()
    if f"{name}(" not in instruction:
        instruction += f"\n\nWrite the function `{signature[4:-1]}`."
    return {"instruction": instruction, "entry_point": name, "signature": signature}


def _prose(reply: str, method: str | None) -> tuple[str, str | None]:
    """(the reply without its fenced blocks, a drop reason or None): code in a task statement is a solution or
    the evolver's own attempt, except the one misleading snippet the ``erroneous_code`` heuristic asks for."""
    blocks = fenced_blocks(reply)
    if not blocks:
        return reply, None
    if method != "erroneous_code" or len(blocks) > 1:
        return reply, "code_block"
    kept, inside = [], False
    for line in reply.splitlines():
        if line.strip().startswith(("```", "~~~")):
            inside = not inside
        elif not inside:
            kept.append(line)
    return "\n".join(kept), None


def _is_code(text: str) -> bool:
    """A reply that is code rather than prose: it parses as Python with a statement that is not a bare name or
    string, or most of its non-blank lines look like code."""
    tree = parse(text)
    if tree is not None and any(not isinstance(n, ast.Expr) for n in tree.body):
        return True
    lines = [line for line in text.splitlines() if line.strip()]
    code_like = sum(bool(_CODE_LOOKING.match(line)) for line in lines)
    return bool(lines) and code_like >= max(2, len(lines) // 2)


_CODE_LOOKING = re.compile(r"^\s*(def |class |import |from \S+ import |return\b|print\(|for .* in .*:$|if .*:$|\w+ = )")


def eliminate(
    parent: dict, reply: str, method: str | None = None, finish_reason: str | None = None
) -> tuple[dict | None, str | None]:
    """(parsed evolution, None) when the rewrite is a problem statement, else (None, reason) from ``DROP_REASONS``.

    A problem statement is prose that names the function: not code, no code block (but the misleading snippet
    of ``erroneous_code``), no ``def`` of the function, not cut off, not a copy of its parent.
    """
    text = (reply or "").strip()
    words = re.findall(r"[A-Za-z_]\w*", text.lower())
    if not text:
        return None, "empty"
    if not [w for w in words if w not in _STOP_WORDS]:
        return None, "stopwords_only"
    if ("sorry" in text.lower() or "as an ai" in text.lower()) and len(text.split()) < 80:
        return None, "refusal"
    if finish_reason == "length":
        return None, "truncated"
    prose, reason = _prose(text, method)
    if reason:
        return None, reason
    if _is_code(prose):
        return None, "is_code"
    if defines(prose, None):
        return None, "defines_function"
    if len(prose.split()) < MIN_WORDS:
        return None, "too_short"
    if any(s in text.lower() for s in _SCAFFOLDING):
        return None, "copied_scaffolding"
    parsed = parse_evolved(text)
    if parsed is None:
        return None, "no_function"
    similarity = max(
        difflib.SequenceMatcher(None, normalize(a), normalize(b), autojunk=False).ratio()
        for a in (parent["instruction"], question_text(parent))
        for b in (parsed["instruction"], text)
    )
    if similarity > SIMILARITY_LIMIT:
        return None, "no_change"
    return parsed, None


def parse_teacher_reply(reply: str, entry_point: str) -> tuple[str | None, list[str]]:
    """(solution, tests) from a test writer's reply: asserts anywhere in its code, the rest is the solution."""
    tests: list[str] = []
    solution = None
    for code in [b.code for b in fenced_blocks(reply)] or [reply]:
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError):  # NUL bytes: ValueError on Python 3.10
            tests += [line.strip() for line in code.splitlines() if line.strip().startswith("assert ")]
            continue
        lines = code.splitlines()
        keep = [True] * len(lines)
        for node in tree.body:
            body = [node]
            is_main = isinstance(node, ast.If) and "__name__" in ast.unparse(node.test)
            if is_main:
                body = node.body
            asserts = [n for n in body if isinstance(n, ast.Assert)]
            tests += [ast.unparse(n) for n in asserts]
            for n in asserts + ([node] if is_main else []):
                for i in range(n.lineno - 1, n.end_lineno):
                    keep[i] = False
        rest = "\n".join(line for line, k in zip(lines, keep, strict=True) if k).strip("\n")
        if solution is None and re.search(rf"^\s*(async\s+)?def\s+{re.escape(entry_point)}\s*\(", rest, re.M):
            solution = rest
    if solution is None:
        solution = extract_code(reply, entry_point) if entry_point else None
    tests = [t for t in dict.fromkeys(tests) if re.search(rf"\b{re.escape(entry_point)}\s*\(", t)]
    return solution, tests


# ---------------------------------------------------------------- the stage
def _pick_parents(rng: random.Random, fresh: list[dict], pool: list[dict], n: int) -> list[dict]:
    """Evolve last round's survivors first (WizardCoder evolves its previous round), topped up from the pool."""
    fresh = sorted(fresh, key=lambda p: p["id"])
    chosen = rng.sample(fresh, min(n, len(fresh)))
    ids = {p["id"] for p in chosen}
    rest = sorted((p for p in pool if p["id"] not in ids), key=lambda p: p["id"])
    return chosen + rng.sample(rest, min(n - len(chosen), len(rest)))


def _hub_instructions(config: RunConfig) -> list[dict]:
    """Instructions without tests from ``data.hub_dataset`` (Code Alpaca's format), the parents of evolution.

    They have no tests, so only an LLM test writer can turn their evolutions into problems.
    """
    if not config.data.hub_dataset:
        return []
    from rrtf_lite.data import load_codealpaca

    if config.evol.test_writer.kind == "reference":
        raise UserError(
            f"data.hub_dataset={config.data.hub_dataset!r} has no tests: set evol.test_writer to an LLM (kind "
            "openai, hf or vllm) that writes them, or unset data.hub_dataset to evolve the bundled seed problems."
        )
    return load_codealpaca(limit=config.data.max_problems, path_or_id=config.data.hub_dataset)


def _recorded_replies(seeds: list[dict]) -> dict[str, dict]:
    """Recorded evolutions of the given seeds, by the id the stage gives them (evol/<parent>/r1/<method>)."""
    from rrtf_lite.data import load_recorded_evolutions

    ids = {p["id"] for p in seeds}
    return {r["id"]: r for r in load_recorded_evolutions() if r["parent_id"] in ids}


def _recorded_plan(rng: random.Random, recorded: dict[str, dict], parents: dict, round_: int, n: int) -> list:
    """(parent, method) of up to ``n`` recorded evolutions; they are all first-round rewrites of seeds."""
    if round_ != 1:
        return []
    chosen = sorted(recorded.values(), key=lambda r: r["id"])
    chosen = rng.sample(chosen, min(n, len(chosen)))
    return [(parents[r["parent_id"]], r["evol_method"]) for r in sorted(chosen, key=lambda r: r["id"])]


def _evolved_problem(parent: dict, parsed: dict, round_: int, method: str, model: str) -> dict:
    harder = {"easy": "medium", "medium": "hard", "hard": "hard"}
    return {
        "id": f"evol/{parent['id']}/r{round_}/{method}",
        "instruction": parsed["instruction"],
        "entry_point": parsed["entry_point"],
        "signature": parsed["signature"],
        "reference_solution": "",
        "tests": [],
        "difficulty": harder.get(parent.get("difficulty", "medium"), "medium"),
        "tags": [*parent.get("tags", []), f"evol:{method}"],
        "source": "evol",
        "parent_id": parent["id"],
        "evol_round": round_,
        "evol_method": method,
        "source_model": model,
        "prompt": None,
    }


class _Tester:
    """Gives evolved problems validated tests: teacher-written (LLM) or inherited from the parent (offline)."""

    def __init__(self, config: RunConfig, test_writer: Generator | None, recorded: dict[str, dict] | None = None):
        self.config, self.writer, self.recorded = config, test_writer, recorded or {}
        self.parent_ok: dict[str, bool] = {}

    def _run(self, jobs):
        from rrtf_lite.sandbox import Job, run_many

        jobs = [Job(code, tests, entry, self.config.rank.timeout) for code, tests, entry in jobs]
        rank = self.config.rank
        return run_many(jobs, workers=rank.workers, packages=rank.sandbox_packages) if jobs else []

    def validate(self, items: list[tuple[dict, dict]]) -> list[tuple[dict | None, str | None, str | None]]:
        """For (parent, evolved) pairs: (problem with tests, None, teacher reply) or (None, reason, reply)."""
        if not items:
            return []
        if self.recorded:
            return self._recorded(items)
        return self._offline(items) if self.writer is None else self._teacher(items)

    def _recorded(self, items):
        """Recorded evolutions bring their own solution and tests: kept only if the solution passes them here."""
        known = [(p, self.recorded.get(p["id"])) for _, p in items]
        checks = [r for _, r in known if r]
        results = iter(self._run([(r["reference_solution"], r["tests"], r["entry_point"]) for r in checks]))
        out = []
        for problem, record in known:
            if record is None:
                out.append((None, "not_recorded", None))
                continue
            result = next(results)
            if len(record["tests"]) < self.config.evol.min_tests:
                out.append((None, "too_few_tests", None))
            elif result.level != 3:
                out.append((None, "teacher_failed_tests", None))
            else:
                keys = ("entry_point", "signature", "reference_solution", "tests", "difficulty")
                fields = {k: record[k] for k in keys}
                out.append(({**problem, **fields}, None, None))
        return out

    def _offline(self, items):
        unchecked = {p["id"]: p for p, _ in items if p["id"] not in self.parent_ok}
        checks = [p for p in unchecked.values() if p.get("reference_solution") and p.get("tests")]
        results = self._run([(p["reference_solution"], p["tests"], p["entry_point"]) for p in checks])
        for p, result in zip(checks, results, strict=True):
            self.parent_ok[p["id"]] = result.level == 3
        out = []
        for parent, problem in items:
            if problem["entry_point"] != parent["entry_point"]:
                out.append((None, "no_tests_offline", None))
            elif not self.parent_ok.get(parent["id"], False):
                out.append((None, "parent_tests_fail", None))
            elif len(parent["tests"]) < self.config.evol.min_tests:
                out.append((None, "too_few_tests", None))
            else:  # inherited: the tutorial's offline choice, see the module docstring
                inherited = {"signature": parent.get("signature", ""), "tests": list(parent["tests"])}
                out.append(({**problem, **inherited, "reference_solution": parent["reference_solution"]}, None, None))
        return out

    def _teacher(self, items):
        evol = self.config.evol
        prompts = [
            _fill(
                TEST_WRITER_TEMPLATE,
                min_tests=evol.min_tests,
                entry_point=p["entry_point"],
                instruction=question_text(p),
            )
            for _, p in items
        ]
        replies = self.writer.generate(prompts, evol.test_writer_decoding(self.config.seed))
        parsed = [parse_teacher_reply(r[0].text, p["entry_point"]) for (_, p), r in zip(items, replies, strict=True)]
        runnable = [i for i, (sol, tests) in enumerate(parsed) if sol and len(tests) >= evol.min_tests]
        ran = self._run([(parsed[i][0], parsed[i][1], items[i][1]["entry_point"]) for i in runnable])
        results = dict(zip(runnable, ran, strict=True))
        out = []
        for i, ((_, problem), reply) in enumerate(zip(items, replies, strict=True)):
            solution, tests = parsed[i]
            text = reply[0].text
            if not solution:
                out.append((None, "no_teacher_solution", text))
            elif len(tests) < evol.min_tests:
                out.append((None, "too_few_tests", text))
            elif results[i].level != 3:
                out.append((None, "teacher_failed_tests", text))
            else:
                out.append(({**problem, "reference_solution": solution, "tests": tests}, None, text))
        return out


def _final_filters(seeds: list[dict], attempts: list[dict]) -> dict[tuple, str]:
    """Dedupe (normalized text) and decontaminate the kept evolutions; key -> drop reason."""
    from rrtf_lite.data import decontaminate, load_problems
    from rrtf_lite.decontam import pairs_between

    seen = {normalize(p["instruction"]) for p in seeds}
    dropped, unique = {}, []
    for a in attempts:
        if a["status"] != "kept":
            continue
        text = normalize(a["problem"]["instruction"])
        if text in seen:
            dropped[(a["parent_id"], a["round"], a["method"])] = "duplicate"
        else:
            seen.add(text)
            unique.append(a)
    _, contaminated = decontaminate([a["problem"] for a in unique])
    contaminated_ids = {p["id"] for p, _ in contaminated}
    for a in unique:
        if a["problem"]["id"] in contaminated_ids:
            dropped[(a["parent_id"], a["round"], a["method"])] = "contaminated"
    # nothing trained on may be near what is evaluated: the held-out sets and the validation set
    clean = [a for a in unique if a["problem"]["id"] not in contaminated_ids]
    evaluated = [p for split in ("validation", "heldout", "heldout_hard") for p in load_problems(split)]
    near = {x for p in pairs_between([a["problem"] for a in clean], evaluated) for x in (p.a, p.b)}
    for a in clean:
        if a["problem"]["id"] in near:
            dropped[(a["parent_id"], a["round"], a["method"])] = "near_evaluated"
    return dropped


def _stats(attempts: list[dict], final: dict[tuple, str], extra: dict) -> dict:
    def bucket():
        return {"attempted": 0, "kept": 0, "dropped": Counter()}

    rounds, methods, table = {}, {}, {}
    for a in attempts:
        key = (a["parent_id"], a["round"], a["method"])
        reason = a["reason"] if a["status"] != "kept" else final.get(key)
        for b in (
            rounds.setdefault(str(a["round"]), bucket()),
            methods.setdefault(a["method"], bucket()),
            table.setdefault((a["round"], a["method"]), bucket()),
        ):
            b["attempted"] += 1
            if reason:
                b["dropped"][reason] += 1
            else:
                b["kept"] += 1
    plain = lambda b: {**b, "dropped": dict(b["dropped"])}  # noqa: E731
    return {
        **extra,
        "attempted": len(attempts),
        "kept": sum(b["kept"] for b in rounds.values()),
        "dropped": dict(sum((Counter(b["dropped"]) for b in rounds.values()), Counter())),
        "rounds": {r: plain(b) for r, b in rounds.items()},
        "methods": {m: plain(b) for m, b in methods.items()},
        "table": [{"round": r, "method": m, **plain(b)} for (r, m), b in sorted(table.items())],
        "reasons": DROP_REASONS,
    }


def _summary(stats: dict, run_dir: Path, skipped: bool) -> dict:
    keys = (
        "seed_problems",
        "frontier_problems",
        "attempted",
        "kept",
        "dropped",
        "total_problems",
        "offline_inherited_tests",
    )
    return {
        "problems": str(run_dir / "problems.jsonl"),
        "stats": str(run_dir / "evol_stats.json"),
        "skipped": skipped,
        **{k: stats.get(k) for k in keys},
    }


class _Evolution:
    """One evolve stage's moving parts: where parents come from, the evolver and test writer (loaded once, on
    first use), and how one batch of (parent, heuristic) becomes attempt records."""

    def __init__(self, config: RunConfig, seeds: list[dict], instructions: list[dict]):
        self.config, self.evol, self.seeds = config, config.evol, seeds
        self.roots = instructions or seeds  # what round 1 evolves: hub instructions, else the seed problems
        self.recorded = _recorded_replies(seeds) if self.evol.evolver.kind == "recorded" else None
        self.parents = {p["id"]: p for p in seeds + instructions}
        self.offline = self.evol.test_writer.kind == "reference"
        self.tester = _Tester(config, None, self.recorded)
        self.weights = [METHOD_WEIGHTS.get(m, 1.0) for m in self.evol.methods]
        self._generators: dict[str, Generator] = {}

    def generator(self, role: str) -> Generator:
        backend = getattr(self.evol, role)
        if role == "test_writer" and backend == self.evol.evolver:  # one model for both jobs: load it once
            role = "evolver"
        if role not in self._generators:
            if role == "evolver" and self.recorded is not None:
                replies = {
                    self.prompt(self.parents[r["parent_id"]], r["evol_method"]): r["instruction"]
                    for r in self.recorded.values()
                }
                self._generators[role] = RecordedEvolver(replies)
            else:
                m = self.config.model
                self._generators[role] = make_generator(
                    backend, m.student, self.seeds, m.quantization, m.device, self.config.sampling.batch_size
                )
        return self._generators[role]

    @staticmethod
    def prompt(parent: dict, method: str) -> str:
        return render_evol_prompt(method, parent)

    def plan(self, round_: int, fresh: list[dict], kept: list[dict]) -> list[tuple[dict, str]]:
        """(parent, heuristic) pairs of one round, deterministic from the run seed."""
        rng = random.Random(derive_seed(self.config.seed, "evol", str(round_)))
        n = self.evol.problems_per_round
        if self.recorded is not None:  # replay what was recorded for these parents (round 1 only)
            return _recorded_plan(rng, self.recorded, self.parents, round_, n)
        chosen = _pick_parents(rng, fresh, self.roots + kept, n)
        return [(p, rng.choices(self.evol.methods, self.weights)[0]) for p in chosen]

    def attempt(self, batch: list[tuple[dict, str]], round_: int) -> list[dict]:
        """Evolve one batch, eliminate, get tests for the survivors: one attempt record per (parent, heuristic)."""
        evolver = self.generator("evolver")
        if not self.offline and self.tester.writer is None:
            self.tester.writer = self.generator("test_writer")
        seed = derive_seed(self.config.seed, "evol", str(round_), batch[0][0]["id"])
        replies = evolver.generate([self.prompt(p, m) for p, m in batch], self.evol.decoding(seed))
        records, survivors = [], []
        for (parent, method), reply in zip(batch, replies, strict=True):
            parsed, reason = eliminate(parent, reply[0].text, method, reply[0].finish_reason)
            record = {
                "parent_id": parent["id"],
                "round": round_,
                "method": method,
                "evolver": evolver.name,
                "reply": reply[0].text,
                "status": "dropped",
                "reason": reason,
                "problem": None,
                "teacher_reply": None,
            }
            records.append(record)
            if parsed:
                survivors.append((record, parent, _evolved_problem(parent, parsed, round_, method, evolver.name)))
        checked = self.tester.validate([(parent, problem) for _, parent, problem in survivors])
        for (record, _, _), (problem, reason, teacher_reply) in zip(survivors, checked, strict=True):
            record.update(status="kept" if problem else "dropped", reason=reason, problem=problem)
            record.update(teacher_reply=teacher_reply)
        return records

    def test_writer_name(self) -> str:
        if self.recorded is not None:
            return "recorded (each evolution's own tests, validated in the sandbox)"
        if self.offline:
            return "reference (inherited parent tests)"
        return self.evol.test_writer.model or self.config.model.student


def evolve(config: RunConfig, run_dir: Path, force: bool = False) -> dict:
    """Seed problems + Evol-Instruct rounds -> ``run_dir/problems.jsonl`` (see the module docstring)."""
    from rrtf_lite.data import data_fingerprint, pipeline_problems
    from rrtf_lite.records import ResumableWriter, write_json, write_jsonl
    from rrtf_lite.stages import finish_stage, open_stage

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    problems_path, stats_path = run_dir / "problems.jsonl", run_dir / "evol_stats.json"
    data_files = data_fingerprint()
    if not open_stage("evolve", config, run_dir, force, extra=data_files):  # same seeds and settings: done
        return _summary(json.loads(stats_path.read_text()), run_dir, skipped=True)
    evol = config.evol
    unknown = [m for m in evol.methods if m not in EVOL_TEMPLATES]
    if unknown:
        raise UserError(f"Unknown evolution method(s) {unknown}: choose from {', '.join(EVOL_METHODS)}.")
    if evol.rounds > 0 and evol.evolver.kind == "reference":
        raise UserError("evol.evolver cannot be 'reference' (it only answers known problems): use hf or openai.")
    seeds = pipeline_problems(config.data.seed_split)[: config.data.max_problems]
    evolution = _Evolution(config, seeds, _hub_instructions(config))

    # rounds: each evolves the previous round's survivors (topped up from the pool), in resumable batches
    chunk = max(1, config.sampling.batch_size)
    kept: list[dict] = []
    with ResumableWriter(run_dir / "evol_attempts.jsonl", ("parent_id", "round", "method")) as out:
        fresh = evolution.roots
        for round_ in range(1, evol.rounds + 1):
            plan = evolution.plan(round_, fresh, kept)
            todo = [(p, m) for p, m in plan if not out.done((p["id"], round_, m))]
            with tqdm(total=len(todo), desc=f"evolve round {round_}", unit="problem", disable=not todo) as bar:
                for start in range(0, len(todo), chunk):
                    for record in evolution.attempt(todo[start : start + chunk], round_):
                        out.write(record)
                    bar.update(min(chunk, len(todo) - start))
                    bar.set_postfix(kept=sum(r["status"] == "kept" for r in out.records if r["round"] == round_))
            fresh = [a["problem"] for a in out.records if a["round"] == round_ and a["status"] == "kept"]
            kept += fresh
        attempts = sorted(out.records, key=lambda a: (a["round"], a["parent_id"], a["method"]))

    # the result: seeds + survivors that are neither duplicates nor HumanEval look-alikes
    final = _final_filters(seeds, attempts)
    evolved = [
        a["problem"]
        for a in attempts
        if a["status"] == "kept" and (a["parent_id"], a["round"], a["method"]) not in final
    ]
    taken = {p["id"] for p in seeds}
    frontier = (
        [p for p in pipeline_problems("train_frontier") if p["id"] not in taken]
        if config.data.frontier_problems
        else []
    )
    frontier = frontier[: config.data.frontier_problems]
    write_jsonl(problems_path, seeds + evolved + frontier, kind="problem")
    extra = {
        "evolver": next((a["evolver"] for a in attempts), None),
        "test_writer": evolution.test_writer_name(),
        "offline_inherited_tests": evolution.offline and evolution.recorded is None,
        "seed_problems": len(seeds),
        "frontier_problems": len(frontier),
        "total_problems": len(seeds) + len(evolved) + len(frontier),
    }
    stats = _stats(attempts, final, extra)
    write_json(stats_path, stats)
    finish_stage("evolve", config, run_dir, extra=data_files)
    return _summary(stats, run_dir, skipped=False)

"""Evol-Instruct: templates, the eliminator, teacher replies, and the evolve stage (LLM path with scripted
generators, offline path with inherited tests, the real tiny HF evolver), lineage, stats and resume."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rrtf_lite import evol
from rrtf_lite.backends import Completion
from rrtf_lite.config import EVOL_METHODS, Decoding, load_config
from rrtf_lite.data import load_seed_problems
from rrtf_lite.errors import UserError
from rrtf_lite.evol import (
    DROP_REASONS,
    EVOL_TEMPLATES,
    eliminate,
    evolve,
    parse_evolved,
    parse_teacher_reply,
    render_evol_prompt,
)
from rrtf_lite.records import read_jsonl

PARENT = {
    "id": "seed/t",
    "instruction": "Write a function `double(x: int) -> int` that returns twice the given integer x.",
    "entry_point": "double",
    "signature": "def double(x: int) -> int:",
    "reference_solution": "def double(x: int) -> int:\n    return 2 * x\n",
    "tests": ["assert double(1) == 2", "assert double(0) == 0", "assert double(-3) == -6"],
}
GOOD = (
    "Function: double_positive(x: int) -> int\n"
    "Write a function that returns twice the integer x, but raises ValueError when x is negative and returns "
    "zero for zero; the function must run in constant time."
)


# ---------------------------------------------------------------- templates
def test_templates_for_every_method():
    assert set(EVOL_TEMPLATES) == set(EVOL_METHODS)
    for method, template in EVOL_TEMPLATES.items():
        assert "{question}" in template and "Function: name(arguments)" in template, method
        if method != "breadth":
            assert template.startswith("Please increase the difficulty of the given programming test question")
            assert template.rstrip().endswith("#Rewritten Task#")
    assert "erroneous code" in EVOL_TEMPLATES["erroneous_code"]
    assert "same domain" in EVOL_TEMPLATES["breadth"]


def test_render_keeps_braces_and_adds_the_signature():
    problem = dict(PARENT, instruction="Return a dict like {'a': 1} from pairs.", signature="def f(p):")
    prompt = render_evol_prompt("add_constraints", problem)
    assert "{'a': 1}" in prompt and "def f(p):" in prompt and "{question}" not in prompt
    with pytest.raises(UserError):
        render_evol_prompt("nope", PARENT)


# ---------------------------------------------------------------- parsing and elimination
@pytest.mark.parametrize(
    ("reply", "name", "signature"),
    [
        ("Function: foo(a, b)\nWrite foo.", "foo", "def foo(a, b):"),
        ("**Function:** `foo(a: int) -> str`\nTask.", "foo", "def foo(a: int) -> str:"),
        ("### Function: def foo(xs)\nTask.", "foo", "def foo(xs):"),
        ("Task text.\n```python\ndef foo(n: int) -> list[int]:\n    ...\n```", "foo", "def foo(n: int) -> list[int]:"),
    ],
)
def test_parse_evolved(reply, name, signature):
    parsed = parse_evolved(reply)
    assert parsed["entry_point"] == name and parsed["signature"] == signature
    assert "Function:" not in parsed["instruction"]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty"),
        ("the and of , . ! a an", "stopwords_only"),
        ("I'm sorry, but as an AI I can't rewrite this task.", "refusal"),
        ("Function: f(x)\nDo it.", "too_short"),
        ("#Rewritten Task#\n" + GOOD, "copied_scaffolding"),
        (GOOD.replace("Function:", "In the given task,"), "copied_scaffolding"),
        (
            "Write something interesting about lists and numbers and strings, with care and lots of detail.",
            "no_function",
        ),
        (f"Function: double(x: int) -> int\n{PARENT['instruction']}", "no_change"),
        (GOOD, None),
    ],
)
def test_eliminate(reply, reason):
    parsed, got = eliminate(PARENT, reply)
    assert got == reason and (got is None or got in DROP_REASONS)
    if got is None:
        assert parsed["entry_point"] == "double_positive"


# Replies of the kind the bundled 135M evolver really wrote in a cpu-profile run (issue 11, finding 1): a
# solution, not a task. Every one was kept before the eliminator knew what a problem statement is.
SOLUTION_REPLIES = [
    (
        "def double(x: int) -> int:\n    if x < 0:\n        return -2 * x\n    return 2 * x\n\n"
        "Here's how you can use this function:\n\n```python\nprint(double(3))\n```",
        None,
        "code_block",
    ),
    (
        "def double(x: int) -> int:\n    result = x * 2\n    for i in range(x):\n        result += 0\n"
        "    return result\n\nHere's how you can use this function:\nprint(double(4))",
        None,
        "is_code",
    ),
    (
        "Function: double(x)\nWrite the function that doubles x as asked.\n\n"
        "def double(x):\n    return x * 2\n\nThis returns twice the value of the integer passed.",
        None,
        "is_code",
    ),
    (
        "Function: double(x)\nWrite the function that doubles x as asked, for every integer input.\n"
        "def double(x): return x * 2\nThis returns twice the value of the integer passed, as the task says.\n"
        "It also works for negative numbers and zero, and it needs no imports at all.",
        None,
        "defines_function",
    ),
    (
        "Function: double(x: int) -> int\nReturn twice x, but for negative numbers the function sh",
        "length",
        "truncated",
    ),
    (GOOD + "\n```python\ndef double_positive(x):\n    return 2 * x\n```", None, "code_block"),
]


@pytest.mark.parametrize(("reply", "finish", "reason"), SOLUTION_REPLIES)
def test_eliminator_drops_solutions_and_cut_off_replies(reply, finish, reason):
    assert eliminate(PARENT, reply, "add_constraints", finish) == (None, reason)


def test_erroneous_code_may_show_one_misleading_snippet():
    reply = GOOD + "\n\nThis reference attempt is wrong:\n```python\ndef double_positive(x):\n    return x + x + 1\n```"
    parsed, reason = eliminate(PARENT, reply, "erroneous_code", "stop")
    assert reason is None and parsed["entry_point"] == "double_positive"
    assert eliminate(PARENT, reply + "\n```python\nprint(1)\n```", "erroneous_code")[1] == "code_block"


def test_long_reply_with_sorry_is_not_a_refusal():
    reply = GOOD + " Sorry" + " more words" * 45
    assert eliminate(PARENT, reply)[1] is None


def test_parse_teacher_reply_two_blocks_one_block_and_main_guard():
    solution = "import math\n\ndef f(x):\n    return math.floor(x)"
    two = f"```python\n{solution}\n```\nTests:\n```python\nassert f(1.5) == 1\nassert f(2) == 2\n```"
    assert parse_teacher_reply(two, "f") == (solution, ["assert f(1.5) == 1", "assert f(2) == 2"])
    one = f"```python\n{solution}\n\nassert f(0.2) == 0\nassert (\n    f(3.9) == 3\n)\nassert 1 == 1\n```"
    assert parse_teacher_reply(one, "f") == (solution, ["assert f(0.2) == 0", "assert f(3.9) == 3"])
    main = f"```python\n{solution}\n\nif __name__ == '__main__':\n    assert f(1) == 1\n```"
    assert parse_teacher_reply(main, "f") == (solution, ["assert f(1) == 1"])
    assert parse_teacher_reply("no code here", "f") == (None, [])
    # a NUL byte: ast.parse raises ValueError on Python 3.10, SyntaxError later
    nul = "```python\ndef f(x):\n    return 1\x00\n```\n```python\nassert f(1) == 1\n```"
    assert parse_teacher_reply(nul, "f") == ("def f(x):\n    return 1\x00", ["assert f(1) == 1"])


# ---------------------------------------------------------------- the stage with scripted generators
class Scripted:
    """A Generator whose reply is a function of the prompt (tests only)."""

    def __init__(self, name, reply):
        self.name, self.reply, self.prompts = name, reply, []

    def generate(self, prompts, decoding=None, **settings):
        n = Decoding.of(decoding, **settings).n
        self.prompts += prompts
        return [[Completion(self.reply(p), 7, "stop") for _ in range(n)] for p in prompts]


def _given(prompt: str) -> str:
    return prompt.split("#Given Task#\n", 1)[1]


@pytest.fixture
def seeds():
    return load_seed_problems("train")[:4]


def _config(tmp_path, **overrides):
    return load_config("tiny", overrides={"run_dir": str(tmp_path), "data.max_problems": 4, **overrides})


def _install(monkeypatch, **by_kind):
    made = []

    def fake_make_generator(backend, *args, **kwargs):
        made.append(backend.kind)
        return by_kind[backend.kind]

    monkeypatch.setattr(evol, "make_generator", fake_make_generator)
    return made


def test_llm_path_teacher_tests_validated_in_the_sandbox(tmp_path, monkeypatch, seeds):
    """Evolver rewrites; teacher writes solution + asserts; the sandbox keeps only self-consistent ones."""
    outcome = {seeds[0]["id"]: "keep", seeds[1]["id"]: "teacher_wrong", seeds[2]["id"]: "refuse"}

    def evolver_reply(prompt):
        parent = next(p for p in seeds if p["instruction"].strip() in _given(prompt))
        what = outcome.get(parent["id"], "scaffold")
        name = {"keep": "double_it", "teacher_wrong": "triple_it"}.get(what, "x")
        if what == "refuse":
            return "Sorry, as an AI language model I cannot do that."
        if what == "scaffold":
            return "#Rewritten Task#\n" + GOOD
        return f"Function: {name}(x: int) -> int\nWrite {name}(x) for an integer x; reject negative values with " \
            f"ValueError and document the behaviour for zero, in constant time and space."  # fmt: skip

    def teacher_reply(prompt):
        name = re.search(r"the function `(\w+)`", prompt).group(1)
        factor = 2 if name == "double_it" else 3  # plus 7: plain doubling is a held-out bank problem
        solution = f"def {name}(x):\n    if x < 0:\n        raise ValueError(x)\n    return {factor} * x + 7"
        tests = [f"assert {name}(0) == 7", f"assert {name}(1) == 9", f"assert {name}(5) == 17"]
        return f"```python\n{solution}\n```\n```python\n" + "\n".join(tests) + "\n```"

    evolver, teacher = Scripted("evolver-llm", evolver_reply), Scripted("teacher-llm", teacher_reply)
    _install(monkeypatch, openai=evolver, vllm=teacher)
    config = _config(
        tmp_path,
        **{"evol.problems_per_round": 4, "evol.methods": ["add_constraints"], "evol.evolver.kind": "openai",
           "evol.evolver.model": "evolver-llm", "evol.test_writer.kind": "vllm"},
    )  # fmt: skip
    summary = evolve(config, tmp_path)

    problems = read_jsonl(tmp_path / "problems.jsonl", kind="problem")
    assert [p["id"] for p in problems[:4]] == [p["id"] for p in seeds]
    (new,) = problems[4:]
    assert new["id"] == f"evol/{seeds[0]['id']}/r1/add_constraints"
    assert (new["parent_id"], new["evol_round"], new["evol_method"]) == (seeds[0]["id"], 1, "add_constraints")
    assert new["source"] == "evol" and new["source_model"] == "evolver-llm" and new["entry_point"] == "double_it"
    assert len(new["tests"]) == 3 and "raise ValueError" in new["reference_solution"]
    assert len(teacher.prompts) == 2, "only eliminator survivors reach the test writer"

    stats = json.loads((tmp_path / "evol_stats.json").read_text())
    assert stats["rounds"]["1"] == {
        "attempted": 4,
        "kept": 1,
        "dropped": {"teacher_failed_tests": 1, "refusal": 1, "copied_scaffolding": 1},
    }
    assert stats["methods"]["add_constraints"]["kept"] == 1 and stats["offline_inherited_tests"] is False
    assert stats["table"][0]["round"] == 1 and summary["kept"] == 1 and summary["total_problems"] == 5
    attempts = read_jsonl(tmp_path / "evol_attempts.jsonl")
    failed = next(a for a in attempts if a["reason"] == "teacher_failed_tests")
    assert "triple_it" in failed["teacher_reply"]

    # complete: skipped; problems.jsonl lost: rebuilt from the attempts without asking the evolver again
    assert evolve(config, tmp_path)["skipped"]
    (tmp_path / "problems.jsonl").unlink()
    asked = len(evolver.prompts)
    assert evolve(config, tmp_path)["kept"] == 1 and len(evolver.prompts) == asked
    assert read_jsonl(tmp_path / "problems.jsonl") == problems


def test_offline_path_inherits_parent_tests_over_two_rounds(tmp_path, monkeypatch, seeds):
    """Reference test writer: a rewrite of the same function inherits the parent's tests; others are counted."""

    def evolver_reply(prompt):
        given = _given(prompt)
        parent = next(p for p in seeds if p["entry_point"] in given)
        if "Created Task" in prompt or parent["id"] == seeds[1]["id"]:
            return "Function: brand_new(s: str) -> str\n" + "Return the string s reversed word by word. " * 3
        return f"Function: {parent['signature'][4:-1]}\nAs before, but explain every step: " + given[:200][::-1]

    _install(monkeypatch, hf=Scripted("tiny-random", evolver_reply))
    config = _config(tmp_path, **{"evol.rounds": 2, "evol.problems_per_round": 2, "evol.methods": ["more_reasoning"]})
    summary = evolve(config, tmp_path)
    stats = json.loads((tmp_path / "evol_stats.json").read_text())
    problems = {p["id"]: p for p in read_jsonl(tmp_path / "problems.jsonl", kind="problem")}
    evolved = [p for p in problems.values() if p["source"] == "evol"]
    assert stats["offline_inherited_tests"] is True and summary["attempted"] == 4
    assert evolved, "same-function rewrites are kept offline"
    for p in evolved:
        parent = problems.get(p["parent_id"]) or next(q for q in evolved if q["id"] == p["parent_id"])
        assert p["tests"] == parent["tests"] and p["reference_solution"] == parent["reference_solution"]
        assert p["id"] == f"evol/{p['parent_id']}/r{p['evol_round']}/more_reasoning"
    assert any(p["evol_round"] == 2 and p["parent_id"].startswith("evol/") for p in evolved), "round 2 evolves r1"
    dropped = stats["dropped"]
    assert set(dropped) <= set(DROP_REASONS) and stats["kept"] + sum(dropped.values()) == 4


def test_real_tiny_evolver_offline(tmp_path):
    """The real HF code path (tiny-random: gibberish), counted by the eliminator; seeds always survive."""
    config = _config(tmp_path, **{"evol.max_new_tokens": 16})
    summary = evolve(config, tmp_path)
    stats = json.loads((tmp_path / "evol_stats.json").read_text())
    assert summary["seed_problems"] == 4 and summary["attempted"] == config.evol.problems_per_round
    assert stats["evolver"] == "tiny-random" and stats["kept"] + sum(stats["dropped"].values()) == 2
    assert len(read_jsonl(tmp_path / "problems.jsonl", kind="problem")) == summary["total_problems"]
    assert len(read_jsonl(tmp_path / "evol_attempts.jsonl")) == 2


def test_reference_evolver_is_refused(tmp_path):
    with pytest.raises(UserError, match="evolver"):
        evolve(_config(tmp_path, **{"evol.evolver.kind": "reference"}), tmp_path)


def test_recorded_evolver_replays_real_evolutions_with_their_own_tests(tmp_path):
    """Offline with the recorded evolver: evolved problems are problem statements with their own validated tests."""
    config = _config(
        tmp_path, **{"data.max_problems": None, "evol.evolver.kind": "recorded", "evol.problems_per_round": 6}
    )
    summary = evolve(config, tmp_path)
    problems = {p["id"]: p for p in read_jsonl(tmp_path / "problems.jsonl", kind="problem")}
    evolved = [p for p in problems.values() if p["source"] == "evol"]
    assert summary["kept"] == 6 and len(evolved) == 6
    for p in evolved:
        parent = problems[p["parent_id"]]
        assert p["source_model"] == "recorded" and p["tests"] != parent["tests"]
        assert "```" not in p["instruction"] or p["evol_method"] == "erroneous_code"
        assert not p["instruction"].startswith("Function:")
    stats = json.loads((tmp_path / "evol_stats.json").read_text())
    assert stats["evolver"] == "recorded"


def test_frontier_problems_join_the_run_as_they_are(tmp_path):
    from rrtf_lite.data import load_splits

    config = _config(tmp_path, **{"data.max_problems": 2, "evol.rounds": 0, "data.frontier_problems": 3})
    summary = evolve(config, tmp_path)
    problems = read_jsonl(tmp_path / "problems.jsonl", kind="problem")
    frontier = [p for p in problems if p["id"] in set(load_splits()["train_frontier"])]
    assert summary["frontier_problems"] == 3 and len(frontier) == 3 and len(problems) == 5
    assert all(p["source"] == "bank" for p in frontier)


def test_recorded_evolutions_are_valid_and_their_parents_train_seeds():
    from rrtf_lite.data import load_recorded_evolutions, split_of

    assert len(load_recorded_evolutions(include_excluded=True)) >= 150
    recorded = load_recorded_evolutions()  # without those near something evaluated (data/splits.json)
    assert len(recorded) >= 120
    assert all(split_of(r["parent_id"]) == "train" and len(r["tests"]) >= 5 for r in recorded)
    assert set(EVOL_TEMPLATES) == {r["evol_method"] for r in recorded}


def test_a_rerun_after_the_seed_data_changed_redoes_the_stage(tmp_path, monkeypatch):
    """Stages know their inputs: a changed data file is not silently reused."""
    import shutil

    from rrtf_lite import data

    copy = tmp_path / "data"
    shutil.copytree(data.data_dir(), copy)
    monkeypatch.setenv("RRTF_DATA_DIR", str(copy))
    config = _config(tmp_path / "run", **{"evol.rounds": 0})
    assert evolve(config, tmp_path / "run")["skipped"] is False
    assert evolve(config, tmp_path / "run")["skipped"] is True
    first = copy / "seed" / "part_a.jsonl"
    first.write_text(first.read_text().replace("capitalize_words", "capitalise_words"))
    assert evolve(config, tmp_path / "run")["skipped"] is False


def test_hub_dataset_is_evolved_and_tested_by_the_test_writer(tmp_path, monkeypatch):
    """``data.hub_dataset`` (the full profile's Code Alpaca) really feeds evolution: here a local file in the hub's
    format; its instructions have no tests, so the LLM test writer writes them."""
    fixture = Path(__file__).resolve().parent / "fixtures" / "codealpaca_sample.jsonl"

    def evolver_reply(prompt):
        return "Function: shout(text: str) -> str\nReturn the text in upper case followed by one exclamation mark; " \
            "an empty text gives just the mark, and the input is never modified in place."  # fmt: skip

    def teacher_reply(prompt):
        tests = "\n".join(f"assert shout({s!r}) == {s.upper() + '!'!r}" for s in ("", "a", "Hi", "ok go"))
        return f"```python\ndef shout(text):\n    return text.upper() + '!'\n```\n```python\n{tests}\n```"

    _install(monkeypatch, openai=Scripted("evolver-llm", evolver_reply), vllm=Scripted("teacher-llm", teacher_reply))
    config = _config(
        tmp_path,
        **{"data.hub_dataset": str(fixture), "evol.problems_per_round": 2, "evol.evolver.kind": "openai",
           "evol.test_writer.kind": "vllm", "evol.methods": ["breadth"]},
    )  # fmt: skip
    evolve(config, tmp_path)
    evolved = [p for p in read_jsonl(tmp_path / "problems.jsonl", kind="problem") if p["source"] == "evol"]
    assert evolved and all(p["parent_id"].startswith("codealpaca/") and len(p["tests"]) == 4 for p in evolved)
    offline = _config(tmp_path / "offline", **{"data.hub_dataset": str(fixture)})
    with pytest.raises(UserError, match="has no tests"):
        evolve(offline, tmp_path / "offline")


def test_final_filters_drop_an_evolution_near_an_evaluated_problem():
    """An evolved problem that is a held-out problem again (here: its text and reference under another id) never
    reaches training; a genuinely new one stays."""
    from rrtf_lite.data import load_seed_problems
    from rrtf_lite.evol import _final_filters

    seeds = load_seed_problems("train")[:2]
    held = load_seed_problems("heldout")[0]
    copy = dict(held, id=f"evol/{seeds[0]['id']}/r1/breadth", parent_id=seeds[0]["id"])
    fresh = dict(seeds[1], id=f"evol/{seeds[1]['id']}/r1/add_constraints", parent_id=seeds[1]["id"])
    fresh["instruction"] = fresh["instruction"] + " The input may also be empty, in which case return the default."
    attempts = [
        {"status": "kept", "parent_id": seeds[0]["id"], "round": 1, "method": "breadth", "problem": copy},
        {"status": "kept", "parent_id": seeds[1]["id"], "round": 1, "method": "add_constraints", "problem": fresh},
    ]
    dropped = _final_filters(seeds, attempts)
    assert dropped == {(seeds[0]["id"], 1, "breadth"): "near_evaluated"}

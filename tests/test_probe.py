"""The preference probe: mutants of a reference, the sandbox filter, scoring as the rank loss does, the summary."""

from __future__ import annotations

import difflib
import json
import math
from pathlib import Path

import pytest

from rrtf_lite import probe
from rrtf_lite.programs import program_for
from rrtf_lite.prompts import build_prompt, chat_prompt, format_target

REPO = Path(__file__).resolve().parent.parent

SMALL = '''def count_big(values: list[int], limit: int) -> int:
    """How many values exceed the limit (a docstring the probe leaves alone)."""
    total = 0  # a comment that rendering drops
    for v in sorted(values)[1:]:
        if v > limit and v != 0:
            total += 1
    return max(total, 0)
'''


def _changed_lines(reference: str, mutant: str) -> tuple[list[str], list[str]]:
    diff = list(difflib.ndiff(reference.splitlines(), mutant.splitlines()))
    return [d[2:] for d in diff if d.startswith("- ")], [d[2:] for d in diff if d.startswith("+ ")]


def test_each_mutant_differs_from_the_rendered_reference_in_one_line():
    reference = probe.render(SMALL)
    found = probe.mutants(SMALL, max_per_problem=None)
    assert "# a comment" not in reference and reference.startswith("def count_big")
    assert len(found) >= 10
    for m in found:
        removed, added = _changed_lines(reference, m.code)
        assert len(removed) == 1 and len(added) == 1, m.description
        line = int(m.description.rsplit("at line ", 1)[1])
        assert reference.splitlines()[line - 1] == removed[0], m.description
        assert m.description.startswith(m.kind + ": ") and m.kind in probe.KINDS
    assert len({m.code for m in found}) == len(found)
    descriptions = [m.description for m in found]
    for expected in (
        "Compare: Gt -> GtE at line 5",
        "Boolean: And -> Or at line 5",
        "Arithmetic: Add -> Sub at line 6",
        "Number: 1 -> 2 at line 4",
        "Builtin: max -> min at line 7",
        "DropCall: sorted(x) -> x at line 4",
    ):
        assert expected in descriptions


def test_mutants_are_deterministic_and_kinds_take_turns():
    first = probe.mutants(SMALL, max_per_problem=4)
    assert first == probe.mutants(SMALL, max_per_problem=4)
    assert [m.kind for m in first] == ["Compare", "Arithmetic", "Boolean", "Number"]
    assert probe.mutants(SMALL, max_per_problem=None)[:4] == first


def test_docstrings_and_annotations_are_never_mutated():
    for m in probe.mutants(SMALL, max_per_problem=None):
        removed, _ = _changed_lines(probe.render(SMALL), m.code)
        assert "docstring" not in removed[0] and "def count_big" not in removed[0], m.description


def test_code_that_does_not_parse_has_no_mutants():
    assert probe.mutants("def f(:\n    return 1\n") == []


def _problem(reference: str, tests: list[str], pid: str = "probe/add_one") -> dict:
    return {
        "id": pid,
        "instruction": "Write add_one(x) that returns x + 1.",
        "entry_point": "add_one",
        "signature": "def add_one(x: int) -> int:",
        "reference_solution": reference,
        "tests": tests,
        "prompt": None,
    }


DEAD_CODE = "def add_one(x: int) -> int:\n    unused = x * 2\n    return x + 1\n"
TESTS = ["assert add_one(1) == 2", "assert add_one(-3) == -2", "assert add_one(0) == 1"]


def test_mutants_that_still_pass_every_test_are_dropped():
    problem = _problem(DEAD_CODE, TESTS)
    items, stats = probe.build_items([problem], max_per_problem=10)
    assert stats["candidates_passing_all_tests"] >= 2  # x * 2 -> x / 2, 2 -> 3, ... change nothing the tests see
    assert items and all(item["description"].endswith("at line 3") for item in items)
    reference = program_for(problem, probe.render(DEAD_CODE))
    for item in items:
        assert item["reference"] == reference and item["problem_id"] == problem["id"]
        assert item["problem_sha"] == probe.problem_sha(problem)
        assert set(item) == {"problem_id", "reference", "mutant", "description", "problem_sha"}
    assert stats["with_mutant"] == 1 and stats["pairs"] == len(items)


def test_a_reference_that_fails_its_tests_gives_no_items():
    wrong = _problem("def add_one(x: int) -> int:\n    return x + 2\n", TESTS, pid="probe/wrong")
    items, stats = probe.build_items([wrong])
    assert items == [] and stats["references_failing"] == 1


def test_problem_sha_notices_changed_tests():
    problem = _problem(DEAD_CODE, TESTS)
    assert probe.problem_sha(problem) != probe.problem_sha({**problem, "tests": TESTS[:2]})


def test_summarise_weighs_problems_equally():
    rows = [{"problem_id": "a", "p_ref": -1.0, "p_mut": -2.0}] * 3 + [{"problem_id": "b", "p_ref": -2.0, "p_mut": -1.0}]
    summary = probe.summarise(rows)
    assert summary["accuracy"] == pytest.approx(0.5)  # pair-weighted would be 0.75
    assert summary["margin"] == pytest.approx(0.0)  # pair-weighted would be 0.5
    assert summary["problems"] == 2 and summary["pairs"] == 4
    assert summary["per_problem"]["a"] == {"accuracy": 1.0, "margin": 1.0, "pairs": 3}
    assert summary["per_problem"]["b"] == {"accuracy": 0.0, "margin": -1.0, "pairs": 1}


def test_summarise_counts_a_tie_as_wrong_and_an_empty_probe_as_nan():
    assert probe.summarise([{"problem_id": "a", "p_ref": -1.0, "p_mut": -1.0}])["accuracy"] == 0.0
    assert math.isnan(probe.summarise([])["accuracy"])


@pytest.mark.parametrize("split", ["heldout", "validation"])
def test_the_committed_mutants_match_the_current_problems(split):
    from rrtf_lite.data import load_problems

    problems = {p["id"]: p for p in load_problems(split)}
    lines = (REPO / "data" / "probe" / f"{split}_mutants.jsonl").read_text(encoding="utf-8").splitlines()
    items = [json.loads(line) for line in lines]
    stale = [i["problem_id"] for i in items if probe.problem_sha(problems[i["problem_id"]]) != i["problem_sha"]]
    assert not stale, f"rebuild data/probe/{split}_mutants.jsonl (python -m rrtf_lite.probe build): {stale[:3]}"
    assert all(i["reference"] != i["mutant"] for i in items)
    if split == "heldout":
        assert len({i["problem_id"] for i in items}) >= 140


# ---------------------------------------------------------------- scoring on the tiny model
@pytest.fixture(scope="module")
def tiny():
    from rrtf_lite.models import load_model

    model, tokenizer = load_model("tiny-random", device="cpu")
    return model, tokenizer


def _items() -> list[dict]:
    problem = _problem(DEAD_CODE, TESTS)
    longer = _problem(SMALL, ["assert count_big([1, 5, 9], 4) == 2"], pid="probe/count_big")
    return [
        {
            "problem_id": p["id"],
            "reference": program_for(p, probe.render(p["reference_solution"])),
            "mutant": m.code,
            "problem": p,
        }
        for p in (problem, longer)
        for m in probe.mutants(p["reference_solution"], max_per_problem=2)
    ]


def test_score_gives_one_finite_row_per_item(tiny):
    model, tokenizer = tiny
    items = _items()
    rows = probe.score(model, tokenizer, items, build_prompt, 256, 256, batch_size=3)
    assert [r["problem_id"] for r in rows] == [i["problem_id"] for i in items]
    assert all(set(r) == {"problem_id", "p_ref", "p_mut"} for r in rows)
    assert all(math.isfinite(r["p_ref"]) and math.isfinite(r["p_mut"]) and r["p_ref"] < 0 for r in rows)
    assert len({r["p_mut"] for r in rows}) == len(rows)  # every mutant is a different text
    summary = probe.summarise(rows)
    assert summary["problems"] == 2 and 0.0 <= summary["accuracy"] <= 1.0


def test_score_equals_the_rank_loss_p_i_on_the_same_tokens(tiny):
    """p_ref and p_mut, batched and padded, equal length_normalised(sequence_logprobs(...)) of each answer alone."""
    import torch

    from rrtf_lite.loss import IGNORE_INDEX, length_normalised, sequence_logprobs

    model, tokenizer = tiny
    items = _items()
    rows = probe.score(model, tokenizer, items, build_prompt, 256, 256, batch_size=4)
    for item, row in zip(items, rows, strict=True):
        prompt = tokenizer(chat_prompt(tokenizer, build_prompt(item["problem"])), add_special_tokens=False)
        for side, key in (("reference", "p_ref"), ("mutant", "p_mut")):
            answer = tokenizer(format_target(item[side]), add_special_tokens=False)["input_ids"]
            answer = answer + [tokenizer.eos_token_id]
            ids = torch.tensor([prompt["input_ids"] + answer])
            labels = torch.tensor([[IGNORE_INDEX] * len(prompt["input_ids"]) + answer])
            with torch.inference_mode():
                logits = model(input_ids=ids).logits
            expected = length_normalised(*sequence_logprobs(logits, labels)).item()
            assert row[key] == pytest.approx(expected, abs=1e-4), (item["problem_id"], side)


def test_score_tokenises_as_training_does(tiny):
    """Prompt and answer ids, with truncation, equal train.tokenize_groups' for a (reference, mutant) group."""
    from rrtf_lite.train import tokenize_groups

    _, tokenizer = tiny
    items = _items()
    rows = probe._rows(tokenizer, items, build_prompt, 40, 30)
    groups = [
        {
            "prompt": build_prompt(i["problem"]),
            "responses": [format_target(i["reference"]), format_target(i["mutant"])],
            "scores": [1.0, 0.0],
        }
        for i in items
    ]
    features, stats = tokenize_groups(groups, tokenizer, 40, 30)
    assert stats.prompts and stats.responses  # the limits did cut
    expected = [(f["prompt_ids"], response) for f in features for response in f["response_ids"]]
    assert rows == expected

"""Near-duplicate checks: each catches the kind of leak it is for, and the leaks once found in data/ are caught."""

from __future__ import annotations

from rrtf_lite import data, decontam


def _problem(pid: str, entry: str, reference: str, tests: list[str], instruction: str = "") -> dict:
    return {
        "id": pid,
        "entry_point": entry,
        "reference_solution": reference,
        "tests": tests,
        "instruction": instruction or f"Write `{pid}`.",
    }


DOUBLE = _problem(
    "x/double",
    "double_all",
    "def double_all(values: list[int]) -> list[int]:\n    return [2 * v for v in values]\n",
    ["assert double_all([]) == []", "assert double_all([1, 2]) == [2, 4]", "assert double_all([-3]) == [-6]"],
    "Return a new list holding every value of the list multiplied by two, keeping the order of the values.",
)
TWICE = _problem(  # the same task, told and coded differently
    "y/twice",
    "twice_each",
    "def twice_each(nums: list[int]) -> list[int]:\n    out = []\n    for n in nums:\n        out.append(n + n)\n"
    "    return out\n",
    ["assert twice_each([5]) == [10]", "assert twice_each([0, 1]) == [0, 2]", "assert twice_each([]) == []"],
    "Given integers, produce the sequence where each one is added to itself.",
)
TRIPLE = _problem(  # the same code shape with another constant
    "z/triple",
    "triple_all",
    "def triple_all(values: list[int]) -> list[int]:\n    return [3 * v for v in values]\n",
    ["assert triple_all([]) == []", "assert triple_all([1, 2]) == [3, 6]", "assert triple_all([-3]) == [-9]"],
    "Return a new list holding every value of the list multiplied by three, keeping the order of the values.",
)
LENGTH = _problem(
    "w/length",
    "word_length",
    "def word_length(word: str) -> int:\n    return len(word)\n",
    ["assert word_length('') == 0", "assert word_length('abc') == 3", "assert word_length('hi') == 2"],
    "Count the characters of a word.",
)


def test_each_check_finds_its_kind_of_near_duplicate():
    problems = [DOUBLE, TWICE, TRIPLE, LENGTH]
    assert {(p.a, p.b) for p in decontam.text_pairs(problems)} == {("x/double", "z/triple")}
    assert {(p.a, p.b) for p in decontam.ast_pairs(problems)} == {("x/double", "z/triple")}
    solved = decontam.solves_pairs(problems)
    assert {tuple(sorted((p.a, p.b))) for p in solved} == {("x/double", "y/twice")}
    assert solved[0].value == 1.0 and "3/3" in solved[0].detail
    renamed = dict(LENGTH, id="v/again")
    assert [(p.a, p.b, p.check) for p in decontam.entry_point_pairs([LENGTH, renamed])] == [
        ("w/length", "v/again", "entry_point")
    ]


def test_test_values_decide_which_pairs_are_run():
    assert decontam.call_types(DOUBLE) == (("list[int]",), "list[int]")
    assert decontam.could_share_tests(decontam.call_types(DOUBLE), decontam.call_types(TWICE))
    assert not decontam.could_share_tests(decontam.call_types(DOUBLE), decontam.call_types(LENGTH))
    empty = _problem("u/1", "f", "", ["assert f([]) == []"])
    assert decontam.could_share_tests(decontam.call_types(empty), decontam.call_types(DOUBLE))
    assert decontam.call_types(_problem("u/2", "g", "", ["assert g(x) == 1"])) is None


def test_groups_and_crossing_pairs():
    pairs = [decontam.NearPair("a", "b", "ast", 0.9), decontam.NearPair("b", "c", "text", 0.6)]
    assert decontam.leak_groups(["a", "b", "c", "d"], pairs) == [["a", "b", "c"], ["d"]]
    side = {"a": "train", "b": "train", "c": "heldout"}
    assert decontam.crossing(pairs, side) == [pairs[1]]


def test_the_leaks_once_in_data_are_caught():
    """heldout/d035 was a recorded evolution with its operations renamed and its arguments swapped (the same code
    with other names); held-out seed/b067's tests were passed by train seed/b105's reference."""
    by_id = {p["id"]: p for p in data.load_seed_problems() + data.load_recorded_evolutions(include_excluded=True)}
    renamed = decontam.ast_pairs([by_id["heldout/d035"], by_id["evol/seed/b022/r1/rarer_requirement"]])
    assert [(p.a, p.b) for p in renamed] == [("heldout/d035", "evol/seed/b022/r1/rarer_requirement")]
    solved = decontam.solves_pairs([by_id["seed/b067"], by_id["seed/b105"]])
    assert [(p.a, p.b, p.value) for p in solved] == [("seed/b105", "seed/b067", 1.0)]

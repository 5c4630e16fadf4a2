"""Model text -> program (rrtf_lite.programs): extraction, cleaning and the program the tests run.

The tables hold reply shapes the bundled 135M model and teachers really produce; each finding of the data audit
(issue 11) is a case here that failed before programs.py existed.
"""

from __future__ import annotations

import pytest

from rrtf_lite import programs
from rrtf_lite.programs import build_program, clean, defines, extract_code, program_for

# ---------------------------------------------------------------- extract_code
ADD = "def add(a, b):\n    return a + b"
AREA = "import math\n\ndef area(r):\n    return math.pi * r ** 2"
STACK = "class Stack:\n    def push(self, x):\n        pass"


@pytest.mark.parametrize(
    ("reply", "entry_point", "expected"),
    [
        (f"Here you go:\n```python\n{ADD}\n```\nThis adds numbers.", "add", ADD),
        (f"```\n{ADD}\n```", "add", ADD),
        (f"```Python\n{ADD}\n```", "add", ADD),
        (f"```py\n{ADD}\n```", None, ADD),
        # example usage block first, solution second: pick the block that defines the entry point
        (f"Usage:\n```python\nprint(add(1, 2))\n```\nCode:\n```python\n{ADD}\n```", "add", ADD),
        # helper first, solution second
        (f"```python\ndef helper():\n    pass\n```\n```python\n{ADD}\n```", "add", ADD),
        # a shell block is not the answer
        (f"Install:\n```bash\npip install numpy\n```\n```python\n{ADD}\n```", "add", ADD),
        # unterminated fence: generation cut by max_new_tokens
        ("```python\ndef add(a, b):\n    return a +", "add", "def add(a, b):\n    return a +"),
        # bare code reply
        (ADD + "\n", "add", ADD),
        (AREA + "\n", "area", AREA),
        # function after prose, prose after it
        (f"Sure! Here is the function:\n\n{ADD}\n\nIt returns the sum of a and b.", "add", ADD),
        # imports just above a function written after prose
        (
            "The answer:\nimport math\ndef area(r):\n    return math.pi * r ** 2\nThat is all.",
            "area",
            "import math\ndef area(r):\n    return math.pi * r ** 2",
        ),
        # no code at all
        ("I am sorry, I cannot help with that.", "add", None),
        ("", "add", None),
        ("   \n", None, None),
        ("vaniappm Gods coron agenda Institutionaken n lett intens Static Zed", "add", None),
        # a python block of prose-like gibberish that neither compiles nor defines anything
        ("```python\nthis is not code at all\n```", "add", None),
        # broken code that defines the function is kept (a compile error is a level-0 sample)
        ("```python\ndef add(a, b)\n    return a + b\n```", "add", "def add(a, b)\n    return a + b"),
        # two defining blocks: the one that compiles wins
        (f"```python\ndef add(a, b)\n    return a+b\n```\nFixed:\n```python\n{ADD}\n```", "add", ADD),
        # the function is named differently: fall back to the longest compiling python block
        ("```python\ndef plus(a, b):\n    return a + b\n```", "add", "def plus(a, b):\n    return a + b"),
        # class-based answer
        (f"```python\n{STACK}\n```", None, STACK),
    ],
)
def test_extract_code(reply, entry_point, expected):
    assert extract_code(reply, entry_point) == expected


def test_extract_code_keeps_imports_and_helpers_in_the_chosen_block():
    code = "import re\n\ndef _norm(s):\n    return s.lower()\n\ndef words(s):\n    return re.findall(r'\\w+', _norm(s))"
    reply = f"Explanation first.\n\n```python\n{code}\n```\n\nExample:\n```python\n>>> words('A b')\n['a', 'b']\n```"
    assert extract_code(reply, "words") == code


def test_extract_code_tilde_fence_and_indented_fence():
    assert extract_code(f"~~~python\n{ADD}\n~~~", "add") == ADD
    assert extract_code(f"1. Code:\n   ```python\n{ADD}\n   ```", "add") == ADD


# ---------------------------------------------------------------- audit findings (issue 11)
RUNS = (
    "def count_runs(text):\n    n = 0\n    for i, c in enumerate(text):\n"
    "        if i == 0 or c != text[i - 1]:\n            n += 1\n    return n"
)


def test_stray_closing_fence_after_unfenced_code():
    """D2: code first, then a lone fence, prose and another block: the code is the function, not the prose."""
    reply = (
        f"{RUNS}\n```\n\nThis function counts runs. Here's how you can use this function:\n\n```python\n"
        "def count_runs(text):\n    return len(text)\n\nprint(count_runs('aab'))\n```\n"
    )
    assert extract_code(reply, "count_runs") == RUNS


def test_stray_closing_fence_humaneval_shape():
    reply = (
        "def truncate_number(number: float) -> float:\n    return number % 1.0\n```\n\nThe modulo keeps the decimals."
    )
    assert (
        extract_code(reply, "truncate_number")
        == "def truncate_number(number: float) -> float:\n    return number % 1.0"
    )


def test_imports_and_helpers_in_separate_blocks_are_kept():
    """D7: an import or helper written in its own block is part of the answer."""
    reply = "```python\nimport math\n```\nThen:\n```python\ndef area(r):\n    return math.pi * r ** 2\n```"
    assert extract_code(reply, "area") == "import math\n\ndef area(r):\n    return math.pi * r ** 2"
    reply = (
        "```python\ndef f(xs):\n    return helper(xs) + 1\n```\nwith:\n"
        "```python\ndef helper(xs):\n    return len(xs)\n```\n```python\nprint(f([1]))\n```"
    )
    assert extract_code(reply, "f") == "def f(xs):\n    return helper(xs) + 1\n\ndef helper(xs):\n    return len(xs)"


def test_unrelated_blocks_are_not_pulled_in():
    reply = "```python\ndef other():\n    return 1\n```\n```python\ndef add(a, b):\n    return a + b\n```"
    assert extract_code(reply, "add") == "def add(a, b):\n    return a + b"


@pytest.mark.parametrize(
    ("code", "kept"),
    [
        # D4: an unindented HumanEval body: its top-level statements are the answer
        (
            "numbers.sort()\nfor i in range(len(numbers) - 1):\n"
            "    if numbers[i + 1] - numbers[i] < t:\n        return True\nreturn False",
            True,
        ),
        ("import sys\nsys.setrecursionlimit(10000)\n\ndef f(n):\n    return n\n", True),
        ("CACHE = {}\n\ndef f(n):\n    return CACHE.get(n, n)\n", True),
    ],
)
def test_clean_keeps_real_code(code, kept):
    assert clean(code, "f") == code


def test_clean_drops_demonstrable_example_usage():
    code = "def f(n):\n    return n\n\nprint(f(3))\nassert f(2) == 5\nx = f(4)\nif __name__ == '__main__':\n    f(1)\n"
    assert clean(code, "f") == "def f(n):\n    return n\n\n"


def test_clean_trims_truncated_tail():
    assert clean("def f(n):\n    return n\n\nprint(f(", "f") == "def f(n):\n    return n\n"


def test_scored_program_is_the_trained_program():
    """D5: a teacher reply with a false assert and a cut-off print: the program (what is scored and trained on)
    has neither."""
    problem = {"id": "p", "entry_point": "f", "tests": ["assert f(1) == 1"]}
    code = extract_code("```python\ndef f(n):\n    return n\n\nassert f(2) == 3\nprint(f(", "f")
    program = program_for(problem, code)
    assert program == "def f(n):\n    return n\n"


def test_program_for_keeps_unparsable_code_for_a_compile_error():
    problem = {"id": "p", "entry_point": "f", "tests": []}
    assert program_for(problem, "def f(n)\n    return n") == "def f(n)\n    return n\n"
    assert program_for(problem, None) is None


def test_defines_reads_unparsable_code_line_by_line():
    assert defines("def f(x)\n    return", "f")
    assert not defines("    def f(x):\n        pass\nreturn", "f")
    assert defines("def g():\n    pass", None) and not defines("x = 1", None)


def test_humaneval_body_and_function_programs():
    problem = {
        "id": "HumanEval/x",
        "entry_point": "inc",
        "prompt": 'from typing import List\n\n\ndef inc(xs: List[int]) -> List[int]:\n    """Add one."""\n',
    }
    assert build_program(problem, "return [x + 1 for x in xs]").startswith(problem["prompt"].rstrip("\n"))
    full = build_program(problem, "def inc(xs):\n    return [x + 1 for x in xs]")
    assert full.startswith("from typing import List") and "def inc(xs):" in full
    assert programs.program_from_text(problem, "no code here") is None

"""Stop at the end of the answer: the rule on strings and token ids, and that extraction does not change."""

import pytest
import torch

from rrtf_lite.programs import extract_code
from rrtf_lite.stopping import FENCE_STOP, AnswerStop, answer_complete, closed_python_blocks, first_closed_block_cut

REPLY = "Here is the function:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nThis function adds a and b."
HELPER_FIRST = (
    "```python\ndef helper(x):\n    return x * 2\n```\nNow the main one:\n"
    "```python\ndef add(a, b):\n    return helper(a) + b\n```\nDone."
)
BROKEN_THEN_FIXED = (
    "```python\ndef add(a, b)\n    return a + b\n```\nOops, fixed:\n```python\ndef add(a, b):\n    return a + b\n```\n"
)
NOT_PYTHON = "```bash\ndef add() { echo 1; }\n```\n```python\ndef add(a, b):\n    return a + b\n```\n"
NESTED_LANG_FENCE = "```python\ndef add(a, b):\n```python\n    return a + b\n```\n"


def test_closing_fence_counts_only_once_its_line_is_finished():
    assert closed_python_blocks("```python\ndef f():\n    pass\n```") == []
    assert closed_python_blocks("```python\ndef f():\n    pass\n```\n") == ["def f():\n    pass"]
    assert not answer_complete("```python\ndef add(a, b):\n    return a + b\n``")


def test_fence_with_a_language_inside_a_block_is_a_code_line():
    assert closed_python_blocks(NESTED_LANG_FENCE) == ["def add(a, b):\n```python\n    return a + b"]


@pytest.mark.parametrize(
    "text,entry_point,expected",
    [
        (REPLY, "add", True),
        (REPLY, "sub", False),  # the block defines another function: go on
        (REPLY, None, True),
        ("```python\nx = 1\n```\n", None, False),  # no def
        ("```python\ndef add(a, b)\n    return a\n```\n", "add", False),  # does not parse: go on
        (NOT_PYTHON.split("```python")[0], "add", False),  # a bash block never ends a python answer
        ("def add(a, b):\n    return a + b\n", "add", False),  # unfenced: no end marker, run to eos
    ],
)
def test_answer_complete(text, entry_point, expected):
    assert answer_complete(text, entry_point) is expected


def _first_complete_prefix(text: str, entry_point: str | None) -> str:
    """The text a stopped generation returns: cut at the first line end where the answer is complete."""
    for end in range(len(text)):
        if text[end] == "\n" and answer_complete(text[: end + 1], entry_point):
            return text[: end + 1]
    return text


@pytest.mark.parametrize("text", [REPLY, HELPER_FIRST, BROKEN_THEN_FIXED, NOT_PYTHON, NESTED_LANG_FENCE])
def test_stopping_with_the_entry_point_does_not_change_the_extracted_code(text):
    cut = _first_complete_prefix(text, "add")
    assert extract_code(cut, "add") == extract_code(text, "add")
    if text in (REPLY, HELPER_FIRST):
        assert len(cut) < len(text)  # and it does cut the prose


def test_helper_first_is_not_cut_before_the_entry_point():
    cut = _first_complete_prefix(HELPER_FIRST, "add")
    assert "return helper(a) + b" in cut and cut.endswith("```\n")
    assert _first_complete_prefix(HELPER_FIRST, None).endswith("return x * 2\n```\n")  # no entry point: 1st def


@pytest.fixture(scope="module")
def tokenizer():
    from rrtf_lite.models import load_tokenizer

    return load_tokenizer("tiny-random")


def test_stop_criterion_on_token_ids_per_row(tokenizer):
    """Feed two rows token by token: each row is done right after its own closing fence line, not before."""
    prompt = tokenizer("Q:", add_special_tokens=False)["input_ids"]
    replies = [REPLY, HELPER_FIRST]
    ids = [tokenizer(r, add_special_tokens=False)["input_ids"] for r in replies]
    width = max(len(x) for x in ids)
    pad = tokenizer.pad_token_id
    rows = torch.tensor([prompt + x + [pad] * (width - len(x)) for x in ids])
    stop = AnswerStop(tokenizer, len(prompt), ["add", "add"])
    first_done = [None, None]
    for t in range(1, width + 1):
        done = stop(rows[:, : len(prompt) + t], scores=None)
        for r in range(2):
            if done[r] and first_done[r] is None:
                first_done[r] = t
    for r in range(len(replies)):
        text = tokenizer.decode(ids[r][: first_done[r]])
        one_token_earlier = tokenizer.decode(ids[r][: first_done[r] - 1])
        assert answer_complete(text, "add") and not answer_complete(one_token_earlier, "add")
        assert text.rstrip().endswith("```") and "This function" not in text and "Done." not in text


class _LengthStamp:
    """tiny-random's real ``generate``, then each row's first new tokens overwritten with its prompt's length.

    The random model writes the same text for every prompt, so this stamp is what shows a row landing in the
    wrong place. It also records the padded width of each batch.
    """

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer, self.widths = model, tokenizer, []
        self.device, self.generation_config = model.device, model.generation_config

    def generate(self, input_ids, attention_mask, **kwargs):
        output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        width = input_ids.shape[1]
        self.widths.append(width)
        for r in range(output.shape[0]):
            stamp = self.tokenizer(f" {int(attention_mask[r].sum())}|", add_special_tokens=False)["input_ids"]
            output[r, width : width + len(stamp)] = torch.tensor(stamp)
        return output


def test_batches_sorted_by_prompt_length_come_back_in_the_callers_order():
    from rrtf_lite.backends import HFGenerator
    from rrtf_lite.models import load_model
    from rrtf_lite.prompts import chat_prompt

    model, tok = load_model("tiny-random")
    prompts = ["Write a function " + "with many words " * k + "please." for k in (6, 0, 9, 2, 4, 1)]
    stamped = _LengthStamp(model, tok)
    generator = HFGenerator(batch_size=2, model=stamped, tokenizer=tok)
    got = generator.generate(prompts, max_new_tokens=8, entry_points=["f"] * len(prompts))
    lengths = [len(tok(chat_prompt(tok, p), add_special_tokens=False)["input_ids"]) for p in prompts]
    assert [row[0].text.split("|")[0].strip() for row in got] == [str(n) for n in lengths]
    assert stamped.widths == sorted(stamped.widths)  # shortest prompts first: little padding per batch


def test_no_stop_while_the_defining_block_needs_a_helper_from_a_later_block():
    """The extractor joins a helper written in a later block; stopping after the first block would lose it."""
    first = "```python\ndef f(xs):\n    return helper(xs) + 1\n```\n"
    assert not answer_complete(first, "f")
    full = first + "with:\n```python\ndef helper(xs):\n    return len(xs)\n```\n"
    assert answer_complete(full, "f")
    assert "def helper" in extract_code(full, "f")
    typed = "```python\ndef f(xs: List[int]) -> int:\n    return len(xs)\n```\n"  # List comes from a preamble
    assert answer_complete(typed, "f")


# ---------------------------------------------------------------- vLLM's stop string
@pytest.mark.parametrize("text", [REPLY, BROKEN_THEN_FIXED.replace("def add(a, b)\n", "def add(a, b):\n")])
def test_fence_cut_keeps_the_closing_fence_and_the_extracted_code(text):
    cut = first_closed_block_cut(text)
    assert cut.endswith("\n" + FENCE_STOP.strip("\n") + "\n") and len(cut) < len(text)
    assert extract_code(cut, "add") == extract_code(text, "add")


def test_fence_cut_leaves_replies_without_a_closed_block_alone():
    for text in ("```python\ndef add(a, b):\n    return a + b\n", "def add(a, b):\n    return a + b\n", ""):
        assert first_closed_block_cut(text) == text
    opening_first = "```\ndef f():\n    pass\n```\n"
    assert first_closed_block_cut(opening_first) == opening_first  # a fence at the very start is not cut there


def test_fence_cut_is_an_approximation_of_the_answer_stop():
    """A string stop cannot tell which function a block defines: it ends at a helper block, and at a bare opening
    fence after prose (benchmarks/bench_fence_stop.py measures how often that changes the extracted code)."""
    assert extract_code(first_closed_block_cut(HELPER_FIRST), "add") == "def helper(x):\n    return x * 2"
    prose_first = "Here:\n```\ndef add(a, b):\n    return a + b\n```\n"
    assert first_closed_block_cut(prose_first) == "Here:\n```\n"

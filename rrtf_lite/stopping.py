"""Stop generating once a reply's answer is complete: its fenced python block that defines the function is closed.

Small chat models usually follow the code block with prose ("This function uses…") that no stage reads; on a
CPU those tokens are most of the generation time. ``answer_complete`` decides on the text, ``AnswerStop`` is
the per-row transformers ``StoppingCriteria`` that applies it during ``generate``.

Why this does not change what the extractor returns: with an entry point, a row stops at the first closed
block that defines it *and compiles*, which is exactly the block ``extract_code`` picks first; everything cut
off comes after it. A block that does not compile lets generation go on, as before. Without an entry point the
rule is the first closed python block that compiles and defines any function; here the extractor could have
preferred a longer later block, so callers that know the entry point should pass it.

vLLM can only stop at strings: ``FENCE_STOP`` ends a reply at its first closed fenced block, whatever it defines
(``first_closed_block_cut`` is that rule on text; ``backends.VLLMGenerator`` says how often it changes the code).
"""

from __future__ import annotations

import torch
from transformers import StoppingCriteria

from rrtf_lite.programs import PY_LANGS, defines, fenced_blocks, missing_names, parse, provided_names


def closed_python_blocks(text: str) -> list[str]:
    """Code of the fenced python blocks whose closing fence line is finished (followed by a newline).

    Fences are read by ``programs.fenced_blocks``, as the extractor reads them. A closing fence at the very end
    of the text, without its newline, does not count yet: the next token could still turn it into something else.
    """
    finished = text[: text.rfind("\n") + 1]  # the last piece is an unfinished line
    return [b.code for b in fenced_blocks(finished) if b.closed and b.lang in PY_LANGS]


def answer_complete(text: str, entry_point: str | None = None) -> bool:
    """True once ``text`` holds a closed python block that defines ``entry_point`` (any function if None), parses
    and needs nothing from another block (a helper or import it uses but does not define: the extractor would take
    that block too, so generation goes on)."""
    blocks = closed_python_blocks(text)
    provided = set().union(*(provided_names(b) or set() for b in blocks))
    return any(
        defines(code, entry_point) and parse(code) is not None and not missing_names(code) - provided for code in blocks
    )


FENCE_STOP = "\n```\n"  # a fence line after code: the end of the first closed block, as vLLM's stop string


def first_closed_block_cut(text: str, stop: str = FENCE_STOP) -> str:
    """``text`` as vLLM returns it with ``stop=[FENCE_STOP]`` and ``include_stop_str_in_output=True``: up to and
    including the first fence line that follows a line (the end of the first closed block), unchanged without one.

    A string stop cannot run ``answer_complete``: it ends at the first closed block even when that block does
    not define the function (a bare opening fence after prose matches too). vLLM checks stop strings only in
    the generated text, so a reply that opens with a fence is not cut there.
    """
    end = text.find(stop)
    return text if end < 0 else text[: end + len(stop)]


class AnswerStop(StoppingCriteria):
    """Per-row stop for ``model.generate``: a row is done once its new text ``answer_complete``s.

    ``entry_points`` has one entry (or None) per row of the batch; ``prompt_width`` is the padded prompt length
    (left padding: new tokens start there for every row). The text is decoded only when the last token holds
    a newline, since a block can only end at the end of a line; done rows are not decoded again.
    """

    def __init__(self, tokenizer, prompt_width: int, entry_points: list[str | None]):
        self.tokenizer = tokenizer
        self.prompt_width = prompt_width
        self.entry_points = entry_points
        self.done = torch.zeros(len(entry_points), dtype=torch.bool)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        for row in range(input_ids.shape[0]):
            if self.done[row] or "\n" not in self.tokenizer.decode(input_ids[row, -1:]):
                continue
            text = self.tokenizer.decode(input_ids[row, self.prompt_width :], skip_special_tokens=True)
            self.done[row] = answer_complete(text, self.entry_points[row])
        return self.done.to(input_ids.device).clone()

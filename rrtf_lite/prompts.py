"""The one prompt format shared by sampling, training and evaluation.

Scores on HumanEval swing by tens of points with the prompt format, so every stage builds its prompt here.
The paper trains only on code extracted from responses; ``format_target`` is that target.
"""

from __future__ import annotations

SYSTEM_HINT = "Answer with a single Python code block that defines the requested function."

# "humaneval": a problem that has a HumanEval-style ``prompt`` (signature + docstring with examples) is shown
# that prompt to complete; the others their instruction. "instruction": always the prose instruction and the
# signature. Every stage uses PROMPT_FORMAT: "humaneval". In the paired comparison of
# data/calibration/smollm2-135m-instruct.md the bundled student's rates in the two formats differ by less than
# the interval around the difference, so the format of HumanEval, where the course evaluates, is the one kept.
PROMPT_FORMATS = ("humaneval", "instruction")
PROMPT_FORMAT = "humaneval"


def build_prompt(problem: dict, prompt_format: str = PROMPT_FORMAT) -> str:
    """User-message text for a problem in one of PROMPT_FORMATS, ending with the answer format."""
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
    if prompt_format == "humaneval" and problem.get("prompt"):
        body = "Complete the following Python function.\n\n```python\n" + problem["prompt"].rstrip() + "\n```"
    else:
        body = problem["instruction"].strip()
        signature = problem.get("signature") or ""
        if signature and signature not in body:
            body += f"\n\nUse this signature:\n```python\n{signature}\n```"
    return f"{body}\n\n{SYSTEM_HINT}"


def chat_prompt(tokenizer, prompt: str) -> str:
    """Apply the tokenizer's chat template with a generation prompt (instruct models need it)."""
    messages = [{"role": "user", "content": prompt}]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return prompt + "\n"


def format_target(code: str) -> str:
    """Training target for a response: only its code, in the fenced block the prompt asks for."""
    return "```python\n" + code.strip("\n") + "\n```"

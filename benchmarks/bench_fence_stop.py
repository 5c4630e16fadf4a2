"""Does stopping at the first closed fenced block change what the evaluate stage extracts?

    export VLLM_CPU_KVCACHE_SPACE=1
    .venv-vllm/bin/python benchmarks/bench_fence_stop.py --out benchmarks/results/fence_stop.json
    .venv/bin/python benchmarks/bench_fence_stop.py --texts benchmarks/results/fence_stop.json  # score them again

vLLM's stop strings cannot run ``stopping.answer_complete``; ``VLLMGenerator`` stops at ``stopping.FENCE_STOP``
instead. This generates full replies (no stop) with vLLM on the first N train problems of ``data.stable_order``,
greedy (256 new tokens, the evaluate stage's default) and sampled (n=3, temperature 0.8, top-p 0.95, 192 new
tokens), and compares, for every reply, the code the evaluate stage extracts (``programs.code_from_text``) from
the full reply and from ``stopping.first_closed_block_cut(reply)``; where they differ, both programs run in the
sandbox. Results: benchmarks/README_generation.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

SETTINGS = (
    {"n": 1, "temperature": 0.0, "top_p": 1.0, "max_new_tokens": 256},
    {"n": 3, "temperature": 0.8, "top_p": 0.95, "max_new_tokens": 192},
)


def generate(model: str, n_problems: int) -> dict:
    """Full replies from vLLM, no stop: what the stop rule is measured on."""
    from rrtf_lite.backends import VLLMGenerator
    from rrtf_lite.data import load_problems, stable_order
    from rrtf_lite.prompts import build_prompt

    problems = stable_order(load_problems("train"))[:n_problems]
    generator = VLLMGenerator(model, max_model_len=2048)
    prompts = [build_prompt(p) for p in problems]
    rows, started = [], time.perf_counter()
    for settings in SETTINGS:
        out = generator.generate(prompts, seed=0, **settings)
        rows += [
            {"problem_id": p["id"], **settings, "text": c.text}
            for p, row in zip(problems, out, strict=True)
            for c in row
        ]
    seconds = round(time.perf_counter() - started, 1)
    return {"model": model, "seconds": seconds, "problem_ids": [p["id"] for p in problems], "rows": rows}


def outcome(problem: dict, code: str | None) -> int | None:
    """The sandbox level of a program built from ``code`` (None: no usable code)."""
    from rrtf_lite.programs import build_program
    from rrtf_lite.sandbox import Job, run_many

    program = build_program(problem, code)
    if program is None:
        return None
    job = Job(program, list(problem["tests"]), entry_point=problem["entry_point"], timeout=5.0)
    return run_many([job], workers=1)[0].level


def compare(data: dict) -> dict:
    """Share of replies the stop cuts, and of replies whose extracted code (and sandbox level) it changes."""
    from rrtf_lite.data import load_problems
    from rrtf_lite.programs import code_from_text, fenced_blocks
    from rrtf_lite.stopping import first_closed_block_cut

    problems = {p["id"]: p for p in load_problems("all") if p["id"] in set(data["problem_ids"])}
    cut = changed = level_changed = 0
    examples = []
    for row in data["rows"]:
        problem, text = problems[row["problem_id"]], row["text"]
        short = first_closed_block_cut(text)
        cut += short != text
        full_code, short_code = code_from_text(problem, text), code_from_text(problem, short)
        if full_code == short_code:
            continue
        changed += 1
        levels = outcome(problem, full_code), outcome(problem, short_code)
        level_changed += levels[0] != levels[1]
        examples.append({"problem_id": row["problem_id"], "levels_full_cut": levels, "text": text})
    n = len(data["rows"])
    several = sum(len([b for b in fenced_blocks(r["text"]) if b.closed]) > 1 for r in data["rows"])
    counts = {"replies": n, "cut": cut, "several_closed_blocks": several, "code_changed": changed}
    return {**counts, "level_changed": level_changed, "code_changed_share": round(changed / n, 4), "examples": examples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--problems", type=int, default=48, help="first N train problems of data.stable_order")
    parser.add_argument("--texts", help="score the replies of an earlier --out instead of generating")
    parser.add_argument("--out", help="write the replies (and the comparison) to this JSON")
    args = parser.parse_args()
    data = json.loads(Path(args.texts).read_text()) if args.texts else generate(args.model, args.problems)
    result = compare(data)
    if args.out:
        Path(args.out).write_text(json.dumps({**data, "comparison": result}, indent=1))
    for example in result["examples"]:
        print(f"--- {example['problem_id']}: sandbox level full {example['levels_full_cut'][0]}, "
              f"cut {example['levels_full_cut'][1]}\n{example['text'][:600]}")  # fmt: skip
    print(f"{result['replies']} replies ({result['several_closed_blocks']} with several closed blocks): the fence "
          f"stop cuts {result['cut']}, changes the extracted code of "
          f"{result['code_changed']} ({result['code_changed_share']:.1%}) and the sandbox level of "
          f"{result['level_changed']}")  # fmt: skip


if __name__ == "__main__":
    main()

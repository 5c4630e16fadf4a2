"""Seconds per usable answer, before vs after "stop at the end of the answer" + length-sorted batches.

    .venv/bin/python benchmarks/bench_generation.py [--model smollm2-135m-instruct] [--prompts 32]
        [--max-new-tokens 256] [--batch-size 8] [--threads N]

One process, the same model, the first N HumanEval prompts, greedy, twice:
- before: ``HFGenerator`` without entry points, fed batch by batch in problem order (the old batching, each
  row runs to eos or max tokens);
- after: one call with ``entry_points``: rows sorted by prompt length, and each row stops once its python
  block defining the entry point is closed (``rrtf_lite.stopping``).
A usable answer is one the evaluate stage can turn into a program (``evaluate.program_from_text``); pass@1 is
the share of problems whose program passes all tests in the sandbox, as the evaluate stage runs them.
Results: benchmarks/README_generation.md.
"""

from __future__ import annotations

import argparse
import os
import time


def generate_before(generator, prompts: list[str], max_new_tokens: int, batch_size: int) -> list[str]:
    """The old behaviour: consecutive batches in the caller's order, each row runs to eos or max tokens."""
    texts = []
    for start in range(0, len(prompts), batch_size):
        out = generator.generate(prompts[start : start + batch_size], max_new_tokens=max_new_tokens)
        texts += [row[0].text for row in out]
    return texts


def passed(problems: list[dict], texts: list[str]) -> tuple[int, list[bool], list[str | None]]:
    """(usable answers, passes per problem, programs) with the evaluate stage's own extraction and sandbox."""
    from rrtf_lite.evaluate import program_from_text
    from rrtf_lite.sandbox import Job, run_many

    programs = [program_from_text(p, t) for p, t in zip(problems, texts, strict=True)]
    todo = [(i, Job(prog, list(problems[i]["tests"]), entry_point=problems[i]["entry_point"], timeout=10.0))
            for i, prog in enumerate(programs) if prog is not None]  # fmt: skip
    results = run_many([job for _, job in todo], workers=2)
    ok = [False] * len(problems)
    for (i, _), result in zip(todo, results, strict=True):
        ok[i] = result.level == 3
    return len(todo), ok, programs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=32, help="first N HumanEval problems")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="the evaluate stage's default")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is steadier on a busy box)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from rrtf_lite.backends import HFGenerator
    from rrtf_lite.data import load_humaneval
    from rrtf_lite.models import load_model
    from rrtf_lite.prompts import build_prompt

    problems = load_humaneval(args.prompts)
    prompts = [build_prompt(p) for p in problems]
    model, tokenizer = load_model(args.model)
    before = HFGenerator(args.model, batch_size=args.batch_size, model=model, tokenizer=tokenizer)
    after = HFGenerator(args.model, batch_size=args.batch_size, model=model, tokenizer=tokenizer)
    before.generate(prompts[:1], max_new_tokens=4)  # warm-up: first-call overhead is not throughput
    before.tokens, before.seconds = 0, 0.0
    print(f"model {args.model}, {len(prompts)} HumanEval prompts, greedy, max_new_tokens={args.max_new_tokens}, "
          f"batch {args.batch_size}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip

    rows = {}
    for label in ("before", "after"):
        started = time.perf_counter()
        if label == "before":
            texts = generate_before(before, prompts, args.max_new_tokens, args.batch_size)
            tokens = before.tokens
        else:
            entry_points = [p["entry_point"] for p in problems]
            out = after.generate(prompts, max_new_tokens=args.max_new_tokens, entry_points=entry_points)
            texts, tokens = [row[0].text for row in out], after.tokens
            capped = [row[0].n_tokens for row in out if row[0].finish_reason == "length"]
        seconds = time.perf_counter() - started
        usable, ok, programs = passed(problems, texts)
        rows[label] = (seconds, tokens, usable, ok, programs)
        print(f"{label:<7} {seconds:7.1f} s  {tokens:>6} tokens  {tokens / seconds:6.1f} tokens/s  "
              f"usable {usable}/{len(prompts)}  {seconds / max(usable, 1):6.2f} s/usable answer  "
              f"pass@1 {sum(ok) / len(ok):.3f}", flush=True)  # fmt: skip
    (s_b, t_b, u_b, ok_b, prog_b), (s_a, t_a, u_a, ok_a, prog_a) = rows["before"], rows["after"]
    same_programs = sum(a == b for a, b in zip(prog_b, prog_a, strict=True))
    same_verdicts = sum(a == b for a, b in zip(ok_b, ok_a, strict=True))
    print(f"seconds per usable answer before/after: {(s_b / max(u_b, 1)) / (s_a / max(u_a, 1)):.2f}x")
    print(f"generated tokens before/after: {t_b / max(t_a, 1):.2f}x")
    print(f"identical programs: {same_programs}/{len(prompts)}, identical pass/fail: {same_verdicts}/{len(prompts)}")
    print(f"after: {len(capped)}/{len(prompts)} rows ran to max_new_tokens, with {sum(capped)} of its {t_a} tokens")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

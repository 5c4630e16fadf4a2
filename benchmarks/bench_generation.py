"""Batched vs one-at-a-time local generation: same prompts, same model, same max_new_tokens, greedy.

    .venv/bin/python benchmarks/bench_generation.py [--model smollm2-135m-instruct] [--prompts 16]
        [--max-new-tokens 64] [--batch-size 8] [--threads N]

Prints generated tokens/s for both modes and their ratio. Results: benchmarks/README_generation.md.
"""

from __future__ import annotations

import argparse
import os
import time


def run(generator, prompts: list[str], max_new_tokens: int) -> tuple[float, int, list[str]]:
    started = time.perf_counter()
    out = generator.generate(prompts, temperature=0.0, max_new_tokens=max_new_tokens)
    seconds = time.perf_counter() - started
    return seconds, sum(c.n_tokens for row in out for c in row), [row[0].text for row in out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=16, help="first N HumanEval problems")
    parser.add_argument("--max-new-tokens", type=int, default=64)
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

    prompts = [build_prompt(p) for p in load_humaneval(args.prompts)]
    model, tokenizer = load_model(args.model)
    batched = HFGenerator(args.model, batch_size=args.batch_size, model=model, tokenizer=tokenizer)
    single = HFGenerator(args.model, batch_size=1, model=model, tokenizer=tokenizer)
    single.generate(prompts[:1], max_new_tokens=4)  # warm-up: first-call overhead is not throughput
    print(f"model {args.model}, {len(prompts)} HumanEval prompts, greedy, max_new_tokens={args.max_new_tokens}, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    rows = []
    for label, generator in ((f"batched (batch {args.batch_size})", batched), ("one prompt at a time", single)):
        seconds, tokens, texts = run(generator, prompts, args.max_new_tokens)
        rows.append((label, seconds, tokens, texts))
        print(f"{label:<24} {tokens:>6} tokens  {seconds:7.1f} s  {tokens / seconds:7.1f} tokens/s", flush=True)
    (_, s_b, t_b, x_b), (_, s_s, t_s, x_s) = rows
    same = sum(a == b for a, b in zip(x_b, x_s, strict=True))
    print(f"speed-up batched / single: {(t_b / s_b) / (t_s / s_s):.2f}x")
    print(f"identical greedy completions: {same}/{len(prompts)} (left padding can flip a near-tie token)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

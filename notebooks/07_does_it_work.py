# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   rrtf_lite:
#     summary: Does it work? base, SFT, RRTF, RRHF and DPO on the same data, with paired
#       bootstrap intervals
# ---

# %% [markdown]
# # 07 · Does it work? RRTF next to SFT, RRHF and DPO on the same data
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rrtf-lite/rrtf-lite/blob/main/notebooks/07_does_it_work.ipynb)
#
# PanGu-Coder2's central claim is that **ranking responses by test and teacher feedback** beats plain
# supervised fine-tuning on the teacher's answers. A single before/after number (notebook 05) cannot show
# that: even a gain could come from the SFT term alone, and on a few dozen problems one extra solved
# problem is noise. This notebook answers two questions with one controlled experiment:
#
# 1. Does any training arm beat the untrained model on problems it never saw?
# 2. Does the rank term add anything over SFT on the same teacher answers (`rrtf` − `sft`)?
#
# **In this notebook you will**
# 1. see the design: five arms, same data, same steps, same LoRA set-up, same seeds;
# 2. read every arm's pass@1 with its 95 % interval, and the paired differences;
# 3. look at the held-out preference margin, which shows what the rank term does even where pass@1 cannot move;
# 4. learn what these numbers allow you to conclude, and what they do not.
#
# | | |
# |---|---|
# | **Time** | default: 5 s for the whole notebook (it reads the committed results; `make executed`, 2026-12-01 15:46 UTC) · `RRTF_ABLATION=tiny`: the tiny ablation, about 2 min in CI · `RRTF_ABLATION=cpu-ablation`: about 70 min on 2 CPU cores (README "Measured results": 63 min measured for all but part of the sampling) · `colab-t4`: not measured |
# | **Prerequisites** | [04 · Training](04_training.ipynb) (the losses) and [05 · Evaluation](05_evaluation.ipynb) (pass@1); what a confidence interval is |
# | **Papers** | PanGu-Coder2 ([2307.14936](https://arxiv.org/abs/2307.14936)) §3 (RRTF) and §4.2 (results); RRHF ([2304.05302](https://arxiv.org/abs/2304.05302)) §3 (the listwise loss); DPO ([2305.18290](https://arxiv.org/abs/2305.18290)); Efron and Tibshirani, *An Introduction to the Bootstrap* (1993), ch. 13 (percentile intervals) |

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
# ## The design
#
# | arm | what trains | loss |
# |---|---|---|
# | `base` | nothing | the untrained student |
# | `sft` | each teacher answer once | cross-entropy on the teacher answer only |
# | `rrtf` | (teacher, student) pairs | gap-weighted pair hinge on $p_i$ + SFT (the paper) |
# | `rrhf` | all ranked responses of a problem | listwise hinge + SFT on the best one |
# | `dpo` | the same pairs | TRL's `DPOTrainer` |
# | `rank_only` (optional) | the same pairs | rank loss alone, `sft_weight = 0` |
#
# Everything else is shared: the problems are evolved, sampled and ranked **once**, every trained arm gets
# the same pairs (`ablation.pairs_per_problem` per problem, widest score gap first), the same number of
# optimizer steps, the same LoRA set-up (`train.lora_config`) and the same seeds. Each arm is then measured on
# the held-out seed problems and on HumanEval:
#
# - **greedy pass@1** per problem (solved or not), and sampled pass@1 with the unbiased estimator when
#   `ablation.sampled_n` ≥ 5;
# - the **share of answers without usable code** and the level histogram (compile error … all tests pass);
# - the **held-out preference margin**: on held-out pairs (the base student's greedy answer vs the teacher's,
#   ranked like the training pairs) the mean of $p_\text{tea} - p_\text{stu}$ and the share of pairs with
#   $p_\text{tea} > p_\text{stu}$, with $p$ the length-normalised log-likelihood the rank loss uses.
#
# **Statistics.** Every arm answers the same problems, so scores are *paired*. A paired bootstrap resamples
# problems (with replacement) 10 000 times and recomputes the mean difference; the 2.5th and 97.5th
# percentiles are the 95 % interval. An interval that excludes 0 is evidence of a difference on *this kind*
# of problem; one that includes 0 means the experiment cannot tell, not that the arms are equal.

# %%
# Which results to show: the committed CPU ablation by default. Set RRTF_ABLATION to a profile ("tiny" takes a
# few minutes, "cpu-ablation" about 70 minutes on 2 cores) to rerun it here instead.
import json
from pathlib import Path

import pandas as pd

from rrtf_lite.config import load_config

RERUN = os.environ.get("RRTF_ABLATION", "")  # "" | "tiny" | "cpu-ablation" | any profile
ROOT = next((p for p in (Path("."), Path(".."), Path("rrtf-lite")) if (p / "benchmarks").is_dir()), Path("."))
COMMITTED = ROOT / "benchmarks" / "results" / "ablation_cpu.json"

if not RERUN and not COMMITTED.is_file():
    print(
        f"No committed results at {COMMITTED}: the CPU ablation has not been run and committed in this checkout.\n"
        "Running the tiny ablation instead (random 2-layer model, 3-4 problems: it shows the mechanics, its "
        "numbers mean nothing). Set RRTF_ABLATION=cpu-ablation to run the real one (about 70 minutes on 2 cores)."
    )
    RERUN = "tiny"
if RERUN:
    from rrtf_lite.ablation import ablate

    config = load_config(RERUN, overrides={"run_dir": f"runs/nb-ablation-{RERUN}"})
    results = ablate(config, command=f"notebook 07, profile {RERUN}")
    SOURCE = f"rerun here on profile {RERUN} ({config.run_dir}/ablation.json)"
else:
    results = json.loads(COMMITTED.read_text())
    SOURCE = f"{COMMITTED} (committed; command: `{results['command']}`)"
print(f"results: {SOURCE}")
print(f"model {results['model']}, {results['heldout_problems']} held-out problems")
print(f"machine: {results['machine']['device']}; total time {results['total_seconds']} s")

# %% [markdown]
# ## pass@1 of every arm, with its interval

# %%
from rrtf_lite.viz import plot_ablation_arms, plot_ablation_margins

rows = [
    {
        "arm": arm,
        "dataset": dataset,
        "pass@1 %": round(100 * e["pass@1"], 1),
        "95 % interval": f"[{100 * e['ci95'][0]:.1f}, {100 * e['ci95'][1]:.1f}]",
        "n": e["n"],
        "no usable code %": None if e["no_code_share"] is None else round(100 * e["no_code_share"], 1),
        "levels 0/1/2/3": "/".join(str(e["levels"][str(lv)]) for lv in range(4)),
    }
    for arm, by_dataset in results["arms"].items()
    for dataset, e in by_dataset.items()
]
display(pd.DataFrame(rows).set_index(["dataset", "arm"]).sort_index(level=0, sort_remaining=False))
plot_ablation_arms(results, title=f"pass@1 per arm ({results['profile']})");

# %% [markdown]
# ## Paired differences
#
# Each row compares two arms on the same problems: `delta` is the mean difference of per-problem scores
# (percentage points for pass@1, levels for `level`, nats per token for the margin), with its paired-bootstrap
# 95 % interval. `level` is the RRTF level (0 no code or compile error, 1 runtime error, 2 runs but fails a test,
# 3 passes) of each greedy answer: it moves when answers get better without passing yet.

# %%
from rrtf_lite.ablation_report import PERCENT_METRICS  # pass@1 and pair accuracy in points

deltas = pd.DataFrame(
    [
        {
            "arm": d["arm"],
            "vs": d["vs"],
            "dataset": d["dataset"],
            "metric": d["metric"],
            "delta": d["delta"] * (100 if d["metric"] in PERCENT_METRICS else 1),
            "ci95 low": d["ci95"][0] * (100 if d["metric"] in PERCENT_METRICS else 1),
            "ci95 high": d["ci95"][1] * (100 if d["metric"] in PERCENT_METRICS else 1),
        }
        for d in results["deltas"] + results.get("other_deltas", [])
    ]
)
deltas["excludes 0"] = (deltas["ci95 low"] > 0) | (deltas["ci95 high"] < 0)
display(deltas.round(3))

# %% [markdown]
# ## The held-out preference margin
#
# pass@1 is coarse: a 135M model may prefer the teacher's answer more after training without yet *writing*
# a passing one. The margin measures exactly what the rank term optimises, on pairs from problems that
# were never trained on. The student side of each pair is the base model's own greedy answer, which is close
# to the most likely answer under the base model, so `base` starts with a clearly negative margin and a pair
# accuracy near 0 by construction: read each arm's margin **against base's**. Expect the rank arms (`rrtf`,
# `rrhf`, `rank_only`) and `dpo` to raise it more than `sft`; if they do not, the rank term did not
# generalise beyond the training pairs.

# %%
if results["margins"]:
    display(pd.DataFrame(results["margins"]).T.round(4))
    plot_ablation_margins(results);
else:
    print("This run measured no preference margin (ablation.margin = false or no held-out dataset).")

# %% [markdown]
# ## What the numbers say
#
# The cell below reads the verdict off the intervals in the results file (`ablation_report.verdict`), so it stays
# true whichever way the numbers fall; the results' markdown carries the same lines.

# %%
from rrtf_lite.ablation_report import verdict

display(Markdown("\n".join(results.get("verdict") or verdict(results))))

# %% [markdown]
# ### What you may conclude
# - An interval that excludes 0 says this arm differs from the other **on problems like these, with this
#   model, data size and step count**. That is the claim, with its uncertainty.
# - The margin tells you whether the rank term changed the model's *preferences* on unseen problems,
#   separately from whether it changed what it *writes*.
#
# ### What you may not conclude
# - "RRTF does not work" from an interval that includes 0: a 135M model trained for a few hundred steps on a
#   CPU is far from the paper's 15B model and data; small models often cannot turn better preferences into
#   passing code. Absence of evidence is not evidence of absence.
# - Anything about larger models, other languages or the paper's numbers (62.20 % on HumanEval).
# - A ranking of arms whose intervals overlap heavily, or a difference seen on one dataset only.
# - With one training seed, how much of a difference is due to the seed; the `seeds` list in the
#   `cpu-ablation` profile (or a GPU run) averages several.
#
# ### Rerun it yourself
# ```bash
# rrtf-lite ablate --profile cpu-ablation --out benchmarks/results/ablation_cpu.json   # about 70 min on 2 CPU cores (README "Measured results")
# rrtf-lite ablate --profile tiny                                                      # the mechanics, minutes
# ```
# Every phase is resumable: interrupt it and run the same command again.

# %% [markdown]
# ## ✏️ Exercise: the paired interval
#
# Every delta above comes from `rrtf_lite.stats.paired_bootstrap`. Write it yourself: given two arms' scores on
# the *same* problems, resample problems with replacement (each problem keeps both of its scores), average the
# differences, and return the 2.5th and 97.5th percentiles of those averages.

# %% tags=["exercise"]
from rrtf_lite.exercises import check_paired_interval

paired_interval = None  # your function here: def paired_interval(a, b, resamples, seed) -> (lo, hi)
check_paired_interval(paired_interval)

# %% [markdown]
# The reference solution is in the collapsed cell below; it runs through the same check.

# %% jupyter={"source_hidden": true}
# Reference solution.
import numpy as np

from rrtf_lite.exercises import check_paired_interval


def paired_interval_reference(a, b, resamples, seed):
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(resamples, diff.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


check_paired_interval(paired_interval_reference)

# %% [markdown]
# ## Key takeaways
# - A claim about a training method needs a control: SFT on the same teacher answers, same steps, same seeds.
# - Paired intervals over problems show whether a difference is more than the luck of a few problems.
# - Report what comes out, whichever way it falls; the results file carries the command, versions and times.
#
# ## Questions
# Answers: [the teacher's guide](../docs/teaching.md#07-does-it-work). Words: [glossary](../docs/glossary.md).
#
# 1. Why compare `rrtf` with `sft` rather than with `base`?
# 2. Why resample problems and not answers?
# 3. What does an interval that excludes 0 allow you to say, and what does one that includes 0 not allow?
# 4. Why is the `level` of each greedy answer worth measuring next to pass@1?
# 5. What does a positive held-out margin with unchanged pass@1 mean?
# 6. Why does `base` start with a negative margin and a pair accuracy near 0, by construction?
# 7. When every problem brings one pair, how does the `rrhf` arm differ from the `rrtf` arm?
# 8. What does the `dpo` arm need at every step that the rank arms do not?
# 9. What would a second training seed tell you?
# 10. Name two changes that would let the experiment detect a smaller difference.
#
# **Next:** rerun the ablation with more seeds or on a GPU (`rrtf-lite ablate --profile colab-t4 ...`), or go
# back to [04 · Training](04_training.ipynb) and try `train.mode=listwise`.
#
# ## Where to go next
# - **PanGu-Coder2** (the paper this course rebuilds): [arXiv 2307.14936](https://arxiv.org/abs/2307.14936).
# - **RRHF** (the rank loss RRTF weights): the paper, [arXiv 2304.05302](https://arxiv.org/abs/2304.05302), and
#   the code, [GanjinZero/RRHF](https://github.com/GanjinZero/RRHF) (read its issues on the pair mask and the
#   length normalisation next to notebook 04).
# - **RLTF** (online RL from unit-test feedback, with the failing line located):
#   [arXiv 2307.04349](https://arxiv.org/abs/2307.04349), code at [Zyq-scut/RLTF](https://github.com/Zyq-scut/RLTF).
# - **CodeRL** (RL for code with a critic that predicts test outcomes): [arXiv 2207.01780](https://arxiv.org/abs/2207.01780),
#   code at [salesforce/CodeRL](https://github.com/salesforce/CodeRL).
# - **RAFT** (reward-ranked fine-tuning: SFT on the best of $k$): [arXiv 2304.06767](https://arxiv.org/abs/2304.06767),
#   implemented in [OptimalScale/LMFlow](https://github.com/OptimalScale/LMFlow).
# - **TRL** (the DPO arm's `DPOTrainer`, SFT, GRPO and more): [huggingface/trl](https://github.com/huggingface/trl)
#   and its [documentation](https://huggingface.co/docs/trl).
# - **smol-course** (a hands-on course on aligning small models, SFT and preference optimisation with TRL):
#   [huggingface/smol-course](https://github.com/huggingface/smol-course).
#
# The [teacher's guide](../docs/teaching.md#where-to-go-next) says what to read in each.

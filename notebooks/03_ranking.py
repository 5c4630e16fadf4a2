# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   rrtf_lite:
#     summary: The sandbox, per-test results, the four levels, teacher tie-break, level
#       histograms, explorer
# ---

# %% [markdown]
# # 03 · Ranking: test feedback and teacher feedback
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rrtf-lite/rrtf-lite/blob/main/notebooks/03_ranking.ipynb)
#
# This is the step that gives RRTF its name. Every response is run against its problem's unit tests; the
# outcome ranks it, and at the same outcome the teacher's response ranks above the student's.
#
# **In this notebook you will**
# 1. run candidate programs in the sandbox and read the per-test results;
# 2. learn the four outcome levels and the scores we give them;
# 3. see the teacher tie-break and the pair filter;
# 4. run the `rank` stage, plot the levels per source, and browse the ranked responses.

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
# ## Four outcomes
#
# PanGu-Coder2 orders execution results as **compile error < runtime error < passes some tests < passes all
# tests**. `rrtf_lite.sandbox` decides the level of a program:
#
# | level | outcome | decided by |
# |---|---|---|
# | 0 | compile error | `compile()` fails: no process is even started |
# | 1 | runtime error | the module raises (or times out) while loading, or no test passes and one raised |
# | 2 | partial | it runs and some tests fail; the **pass fraction** orders answers inside this level |
# | 3 | all pass | every test passes |
#
# The code is untrusted (it comes from a model), so it never runs in this process: each candidate runs in a
# short-lived child process with resource limits, no network and a per-test deadline enforced from outside,
# and the child only *reports* values, which this process compares (a lying `__eq__`, an early `sys.exit(0)` or
# printed "PASSED" lines cannot fake a pass).
#
# ## Four candidates, live
#
# One seed problem and four hand-written answers, one per level:

# %%
from rrtf_lite.data import load_seed_problems
from rrtf_lite.sandbox import run_tests

problem = load_seed_problems("train")[0]
entry = problem["entry_point"]
print(problem["instruction"][:300], "...\n")
candidates = {
    "syntax error": f"def {entry}(text)\n    return text",
    "crashes on import": f"raise ImportError('no such module')\ndef {entry}(*args):\n    return None",
    "wrong answer": f"def {entry}(*args):\n    return args[0]",
    "reference": problem["reference_solution"],
}
results = {name: run_tests(code, problem["tests"], entry, timeout=config.rank.timeout)
           for name, code in candidates.items()}
pd.DataFrame([{"candidate": name, "level": r.level, "pass fraction": round(r.pass_fraction, 2),
               "tests": " ".join({"pass": "✅", "fail": "❌", "error": "💥", "timeout": "⏱"}[t.status] for t in r.tests)}
              for name, r in results.items()]).set_index("candidate")

# %% [markdown]
# Per-test results of the wrong answer: the failing assertion with the values the candidate produced.

# %%
pd.DataFrame([{"test": test, "status": t.status, "error": t.error_type, "message": t.message}
              for test, t in zip(problem["tests"], results["wrong answer"].tests, strict=True)])

# %% [markdown]
# ## From outcomes to scores
#
# The paper publishes no numbers, only the order. Ours (`RankConfig`, all configurable):
#
# $$
# r = \begin{cases}
# 0 & \text{compile error} \\
# 1 & \text{runtime error} \\
# 2 + \text{pass fraction} & \text{partial (so } 2 \le r < 3) \\
# 4 & \text{all tests pass}
# \end{cases}
# \qquad\text{and the teacher gets } +\ \text{tie\_gap}\ \text{at an equal outcome.}
# $$
#
# The gap between levels matters in RRTF because the rank loss is **weighted by the score difference**
# $r_{tea} - r_{stu}$: a teacher that passes everything against a student that does not compile (gap 4) pulls
# 8× as hard as a half-point difference. The **tie-break** (`tie_gap`, 0.25) makes a teacher answer win when both
# pass equally ("we prefer the student to learn from the teacher"), and pairs where the teacher scores
# *below* the student are **dropped**.

# %%
from rrtf_lite.ranking import score as rank_score

print(pd.Series(vars(config.rank)).to_frame("RankConfig"), "\n")
for level, fraction in [(0, 0.0), (1, 0.0), (2, 0.5), (3, 1.0)]:
    print(f"level {level}, pass fraction {fraction}: score {rank_score(level, fraction, config.rank)}")

# %% [markdown]
# Responses without usable code (no function could be extracted) are not run: they score as level 0 and are
# counted (`no_code` in the stats). A student's code-less reply still enters pairs and groups as the *rejected*
# answer, with its raw text as the target (pushing it below the teacher's code is what the student should
# learn); a teacher's code-less reply has nothing to imitate and is left out.

# %% [markdown]
# ## The `rank` stage
#
# It runs every sample of `samples.jsonl` in the sandbox (`rank.workers` processes in parallel) and writes
# - `executions.jsonl`: level, pass fraction, score and per-test results of every response;
# - `pairs.jsonl`: (teacher, student) pairs with $r_{tea} > r_{stu}$, the RRTF training data;
# - `groups.jsonl`: all responses of each prompt with their scores, for the listwise (RRHF) mode.
#
# Earlier stages run first if needed (each skips when done).

# %%
from rrtf_lite.records import read_jsonl

run_stage("evolve", config)
run_stage("sample", config)
rank_summary = run_stage("rank", config)
executions = read_jsonl(f"{RUN_DIR}/executions.jsonl", kind="execution")
pairs = read_jsonl(f"{RUN_DIR}/pairs.jsonl", kind="pair")
groups = read_jsonl(f"{RUN_DIR}/groups.jsonl", kind="group")
print(f"{len(executions)} executions, {len(pairs)} pairs, {len(groups)} groups")
rank_summary

# %% [markdown]
# Level histogram per source. Expect the teacher near "all pass" (the offline reference teacher always
# passes) and the student spread out (the random `tiny` student mostly fails to produce code at all).

# %%
from rrtf_lite.viz import plot_levels

plot_levels(rank_summary, title=f"execution outcome per source ({PROFILE})");

# %%
columns = ["problem_id", "chosen_source", "score_chosen", "rejected_source", "score_rejected"]
pd.DataFrame(pairs, columns=columns).head(10)

# %% [markdown]
# ## Explore the ranked responses
#
# Pick a problem: its responses, best first, with the code side by side and every test's result under it.

# %%
from rrtf_lite.viz import explore_groups

explore_groups(groups, executions)


# %% [markdown]
# ## ✏️ Exercise
#
# Write `score(level, pass_fraction)`: the score of one outcome with the values above (leave the teacher's
# tie-break aside). The cell holds a reference answer so "Run all" works: replace its body with your own
# (or set `score = None` to see a hint) and run the check.

# %%
def score(level, pass_fraction):  # SOLUTION: replace the body with your own
    rc = config.rank
    return {0: rc.score_compile_error, 1: rc.score_runtime_error,
            2: rc.score_partial_base + pass_fraction, 3: rc.score_all_pass}[level]


# %%
from rrtf_lite.exercises import check_score_function

check_score_function(score, config.rank)

# %% [markdown]
# **Next:** [04 · Training](04_training.ipynb) turns the pairs into a loss.

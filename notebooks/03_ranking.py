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
#
# | | |
# |---|---|
# | **Time** | `tiny`: 17 s for the whole notebook (measured by `RRTF_PROFILE=tiny pytest tests/test_notebooks.py`, notebooks run in order, on a busy 2-core machine) · `cpu`: 7 s for the whole notebook, run in order after the ones before it on a quiet 2-core machine (`make executed`, 2026-12-01 15:35 UTC; the executed copy is in `docs/executed/`) · `colab-t4`: not measured |
# | **Prerequisites** | [02 · Sampling](02_sampling.ipynb); Python `assert` |
# | **Papers** | PanGu-Coder2 ([2307.14936](https://arxiv.org/abs/2307.14936)) §3.4, step 2: the four outcomes, the teacher tie-break and the filter; RRHF ([2304.05302](https://arxiv.org/abs/2304.05302)) §3 for ranking several responses of one prompt |

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
# ## Teacher feedback, made visible
#
# Four tiny problems (all asking for `clamp(x, lo, hi)`), one teacher and one student reply each, written by hand
# so that each shows one rule of the pair builder. They go through the real path: `rrtf_lite.programs` turns the
# text into the program, the sandbox runs it (`execute_samples`), and `build_pairs` makes the pairs.
#
# | problem | teacher | student | what `build_pairs` does |
# |---|---|---|---|
# | tie | passes all | passes all, other code | **tie**: the teacher gets `+ tie_gap`, so the pair still teaches something |
# | dropped | runtime error (`high` is undefined) | passes 2 of 3 | teacher **below** student: the pair is **dropped** |
# | large gap | passes all | syntax error | kept with the largest gap, 4: it pulls hardest in the loss |
# | identical | passes all | the same code, after a sentence | the scored programs are the same text: **not a pair** |

# %%
from rrtf_lite.programs import code_from_text
from rrtf_lite.ranking import build_pairs, execute_samples

toy_problems = {
    pid: {"id": pid, "instruction": "Write `clamp(x, lo, hi)`: x limited to the range [lo, hi].",
          "signature": "def clamp(x, lo, hi):", "entry_point": "clamp",
          "tests": ["assert clamp(5, 0, 10) == 5", "assert clamp(-1, 0, 10) == 0", "assert clamp(11, 0, 10) == 10"]}
    for pid in ("tie", "dropped", "large gap", "identical")
}
teacher_ok = "```python\ndef clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n```"
replies = [  # (problem, source, reply text)
    ("tie", "teacher", teacher_ok),
    ("tie", "student", "```python\ndef clamp(x, lo, hi):\n    return lo if x < lo else hi if x > hi else x\n```"),
    ("dropped", "teacher", "```python\ndef clamp(x, lo, hi):\n    return max(lo, min(x, high))\n```"),
    ("dropped", "student", "```python\ndef clamp(x, lo, hi):\n    return max(lo, x)\n```"),
    ("large gap", "teacher", teacher_ok),
    ("large gap", "student", "```python\ndef clamp(x, lo, hi)\n    return x\n```"),
    ("identical", "teacher", teacher_ok),
    ("identical", "student", "Here is my solution:\n" + teacher_ok),
]
toy_samples = [{"problem_id": pid, "source": src, "sample_index": 0, "response": text,
                "code": code_from_text(toy_problems[pid], text)} for pid, src, text in replies]
toy_executions = execute_samples(toy_problems, toy_samples, config.rank)
pd.DataFrame([{"problem": e["problem_id"], "source": e["source"], "level": e["level"],
               "pass fraction": round(e["pass_fraction"], 2), "score": round(e["score"], 3)} for e in toy_executions])

# %%
toy_pairs, toy_groups, toy_stats = build_pairs(toy_problems, toy_executions, toy_samples, config.rank)
display(pd.DataFrame(toy_pairs, columns=["problem_id", "score_chosen", "score_rejected"]))
{key: toy_stats[key] for key in ("pairs_kept", "pairs_dropped", "pairs_identical")}

# %% [markdown]
# Two pairs survive: the tie, with the teacher raised from 4.0 to 4.25, and the large gap (4.0 against 0.0,
# weight 4 in the loss, 16x the tie's 0.25). The teacher with a runtime error is not imitated, and the identical
# programs give nothing to prefer. The training text of each side is exactly the program that was scored, wrapped
# in the python block the prompt asks for:

# %%
print(toy_pairs[0]["chosen"])

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
# 1. Write `score(level, pass_fraction)`: the score of one outcome with the default values above (leave the
#    teacher's tie-break aside).
# 2. Write the pair rule of `build_pairs`: `pair_rule(r_tea, r_stu, same_text, tie_gap)` returns the scores
#    `(r_tea, r_stu)` of the pair it keeps (with the tie bonus applied), or `None` when there is no pair. The
#    check compares your rule with the real `build_pairs` on hand-made cases like the ones above.
#
# Replace each `None` with your function; while it is `None` the check prints a hint.

# %% tags=["exercise"]
from rrtf_lite.exercises import check_pair_rule, check_score_function

score = None  # your function here: def score(level: int, pass_fraction: float) -> float
pair_rule = None  # your function here: def pair_rule(r_tea, r_stu, same_text, tie_gap) -> tuple | None
check_score_function(score)
check_pair_rule(pair_rule)

# %% [markdown]
# The reference solutions are in the collapsed cell below; they run through the same checks.

# %% jupyter={"source_hidden": true}
# Reference solutions.
from rrtf_lite.config import RankConfig
from rrtf_lite.exercises import check_pair_rule, check_score_function


def score_reference(level: int, pass_fraction: float) -> float:
    rc = RankConfig()
    return {0: rc.score_compile_error, 1: rc.score_runtime_error,
            2: rc.score_partial_base + pass_fraction, 3: rc.score_all_pass}[level]


def pair_rule_reference(r_tea: float, r_stu: float, same_text: bool, tie_gap: float) -> tuple[float, float] | None:
    if r_tea == r_stu:
        r_tea += tie_gap  # teacher feedback: at the same outcome the teacher ranks higher
    if r_tea < r_stu or same_text:
        return None  # the teacher scored below the student, or there is nothing to prefer
    return r_tea, r_stu


check_score_function(score_reference)
check_pair_rule(pair_rule_reference)

# %% [markdown]
# ### Going further
# - 🐢 Rebuild the toy pairs with `tie_gap=0` (`build_pairs(..., RankConfig(tie_gap=0))`) and count the pairs:
#   the tie pair is still kept, but what does its weight in the rank loss become?
# - 🐕 Run the stages up to `rank` with `load_config(PROFILE, overrides={"rank.tie_gap": 0, "run_dir": "runs/nb-tie0"})`
#   and compare `pairs_kept` and the scores in `pairs.jsonl` with this run's.
# - 🦁 Read `listwise_scores` in `rrtf_lite/ranking.py`: with a teacher at 2.5, a student at 2.5 and another at
#   2.6, what score does the teacher get, and why is the bonus capped?
#
# ## Key takeaways
# - The tests order answers: compile error < runtime error < partial pass < all pass; our scores 0, 1, 2 + pass
#   fraction, 4 only encode that order, and their gaps weight the loss.
# - Teacher feedback: at the same outcome the teacher wins by `tie_gap`; a teacher below its student is
#   dropped; identical texts are not a pair.
# - Each side of a pair trains on exactly the program that was scored (`rrtf_lite.programs` is its one home).
#
# ## Questions
# Answers: [the teacher's guide](../docs/teaching.md#03-ranking). Words: [glossary](../docs/glossary.md).
#
# 1. Put the four outcome levels in order and say what decides each one.
# 2. A program runs every test without an error and passes none. Which level is it, and why not a runtime error?
# 3. Why do tests such as `assert True` not count towards the level or the pass fraction?
# 4. Why must model code never run in the notebook's own process, and why does the parent compare the values?
# 5. The paper publishes only the order of the outcomes. Would scores 0, 1, 2, 3 work as well as ours? What would
#    change?
# 6. What would `tie_gap = 0` change for two all-pass answers?
# 7. Why is a pair whose teacher scores below its student dropped instead of swapped?
# 8. Why is the large-gap pair worth 16 tie pairs in the loss?
# 9. A student reply has no code at all. What becomes of it in the pairs, and what of a teacher reply without code?
# 10. Why are a teacher and a student answer with the same program not a pair?
# 11. In listwise mode, why is the tie bonus capped at half the distance to the next better response?
#
# **Next:** [04 · Training](04_training.ipynb) turns the pairs into a loss.

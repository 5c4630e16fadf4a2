# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   rrtf_lite:
#     summary: Temperature and k; student and teacher responses side by side; code extraction
# ---

# %% [markdown]
# # 02 · Sampling: student and teacher responses
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rrtf-lite/rrtf-lite/blob/main/notebooks/02_sampling.ipynb)
#
# RRTF learns from *comparisons*, so every problem needs several answers: **k** sampled from the student
# (the model we are training) and one or more from a **teacher**. This notebook produces them.
#
# **In this notebook you will**
# 1. see how temperature and top-p shape the next-token distribution, and why RRTF samples at $T > 0$;
# 2. generate student answers live and watch them change with the temperature;
# 3. extract the code from a reply (the paper trains only on code);
# 4. run the `sample` stage and compare student and teacher answers side by side.
#
# | | |
# |---|---|
# | **Time** | `tiny`: 90 s for the whole notebook (measured by `RRTF_PROFILE=tiny pytest tests/test_notebooks.py`, notebooks run in order, on a busy 2-core machine) · `cpu`: 4.5 min for the whole notebook, run in order after the ones before it on a quiet 2-core machine (`make executed`, 2026-12-01 15:34 UTC; the executed copy is in `docs/executed/`) · `colab-t4`: not measured |
# | **Prerequisites** | [01 · Evol-Instruct](01_evol_instruct.ipynb); softmax |
# | **Papers** | PanGu-Coder2 ([2307.14936](https://arxiv.org/abs/2307.14936)) §3.4, step 1 (sampling student and teacher "by various temperatures") and §3.5 (only code is trained on) |

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
# ## Temperature and top-p
#
# At each step the model gives logits $z$ over the vocabulary. Sampling at temperature $T$ draws the next
# token from
#
# $$ P_T(i) = \frac{\exp(z_i / T)}{\sum_j \exp(z_j / T)} $$
#
# $T \to 0$ is greedy decoding (always the top token), $T = 1$ is the model's own distribution and $T > 1$
# flattens it. **Top-p** (nucleus) sampling then keeps only the smallest set of tokens whose probabilities
# add up to $p$, cutting the long tail of unlikely tokens.
#
# For RRTF we want the $k$ student answers to *differ*: some pass, some fail, and the ranking has something
# to say about them. The profile uses $T$ = `config.sampling.temperature` and top-p = `config.sampling.top_p`.

# %%
import math

import matplotlib.pyplot as plt

logits = [3.0, 2.0, 1.0, 0.5, 0.0]


def softmax_at(z, t):
    e = [math.exp(v / t) for v in z]
    return [v / sum(e) for v in e]


fig, ax = plt.subplots(figsize=(6, 3))
for i, t in enumerate([0.2, 0.8, 1.5]):
    ax.bar([x + 0.27 * (i - 1) for x in range(len(logits))], softmax_at(logits, t), 0.27, label=f"T={t}")
ax.set_xlabel("token")
ax.set_ylabel("probability")
ax.legend()
plt.show()

# %% [markdown]
# ## Student answers, live
#
# `HFGenerator` is the local-model backend every stage uses: chat template, batching, left padding and a
# seed per batch. We ask it for 3 answers to one problem, greedily and at the profile's temperature.
# (With the `tiny` profile the student is a random model and writes gibberish; with `cpu` you see real
# attempts by SmolLM2-135M.)

# %%
from rrtf_lite.backends import HFGenerator
from rrtf_lite.data import load_seed_problems
from rrtf_lite.programs import extract_code
from rrtf_lite.prompts import build_prompt

problem = load_seed_problems("train")[0]
prompt = build_prompt(problem)
print(prompt)

# %%
student = HFGenerator(config.model.student, batch_size=config.sampling.batch_size)
live = {}
for temperature in (0.0, config.sampling.temperature):
    replies = student.generate([prompt], n=3, temperature=temperature, top_p=config.sampling.top_p,
                               max_new_tokens=config.sampling.max_new_tokens, seed=config.seed)[0]
    live[temperature] = [r.text for r in replies]
    print(f"T={temperature}: {len(set(live[temperature]))} different answers out of 3")
print(f"{student.tokens_per_s:.1f} generated tokens/s")

# %%
print(live[config.sampling.temperature][0])

# %% [markdown]
# ## Only the code
#
# The paper trains only on "code snippets extracted from responses". `rrtf_lite.programs` is the one place that
# turns model text into a program, for every stage: `extract_code` takes the fenced python block that defines the
# entry point plus any other block it needs (an import or a helper written separately), reads a reply that starts
# with unfenced code and "closes" a block it never opened, and returns `None` when there is nothing usable: such
# samples are counted, never silently dropped. Ranking then cleans that code (`programs.clean`: code cut off by
# the token limit and demonstrable example usage go) and the program it scores is exactly the text training uses.

# %%
reply = """Sure! Here is a solution:

```python
def add(a, b):
    return a + b
```

It runs in O(1)."""
print(extract_code(reply, "add"))
print(extract_code("I am not sure how to do that.", "add"))

# %% [markdown]
# ## The teacher
#
# The paper samples from stronger "teacher" models but does not say which. The profile's teacher is
# `config.sampling.teacher.kind`: offline it is the **reference teacher**, which answers with each
# problem's reference solution (a perfect teacher, so the pipeline runs with no network). With an API key
# you can use any OpenAI-compatible model instead (notebook 06).

# %% [markdown]
# ## The `sample` stage
#
# The stage reads `problems.jsonl` (written by the `evolve` stage of notebook 01: it runs here too if it is
# missing, or skips when it is done) and writes every response to `samples.jsonl` as soon as it exists, so
# an interrupted run resumes where it stopped.

# %%
run_stage("evolve", config)
sample_summary = run_stage("sample", config)
sample_summary

# %%
from rrtf_lite.records import read_jsonl

samples = read_jsonl(f"{RUN_DIR}/samples.jsonl", kind="sample")
frame = pd.DataFrame(samples)
frame["has code"] = frame["code"].notna()
frame.groupby("source").agg(samples=("response", "size"), with_code=("has code", "sum"),
                            mean_tokens=("n_tokens", "mean"), temperature=("temperature", "first"))

# %% [markdown]
# Side by side for one problem: the student's $k$ samples on the left, the teacher on the right.

# %%
import html as _html


def side_by_side(problem_id):
    cols = []
    for source in ("student", "teacher"):
        answers = [s for s in samples if s["problem_id"] == problem_id and s["source"] == source]
        body = "".join(f"<b>{source} #{s['sample_index']}</b><pre style='white-space:pre-wrap;font-size:11px'>"
                       f"{_html.escape(s['code'] or '(no code) ' + s['response'][:200])}</pre>" for s in answers)
        cols.append(f"<div style='flex:1;min-width:280px;padding:4px'>{body}</div>")
    return HTML(f"<h4>{problem_id}</h4><div style='display:flex'>{''.join(cols)}</div>")


side_by_side(samples[0]["problem_id"])

# %% [markdown]
# ## ✏️ Exercise
#
# Write `temperature_softmax(logits, temperature)`: the probabilities $P_T(i)$ from the formula above.
# Subtract the largest scaled logit before `exp` so large logits cannot overflow. Replace `None` with your
# function; while it is `None` the check prints a hint.

# %% tags=["exercise"]
from rrtf_lite.exercises import check_temperature_softmax

temperature_softmax = None  # your function here: def temperature_softmax(logits, temperature) -> list[float]
check_temperature_softmax(temperature_softmax)

# %% [markdown]
# The reference solution is in the collapsed cell below; it runs through the same check.

# %% jupyter={"source_hidden": true}
# Reference solution.
from rrtf_lite.exercises import check_temperature_softmax


def softmax_at_temperature_reference(logits: list[float], temperature: float) -> list[float]:
    from math import exp

    scaled = [z / temperature for z in logits]
    top = max(scaled)
    exps = [exp(z - top) for z in scaled]
    return [e / sum(exps) for e in exps]


check_temperature_softmax(softmax_at_temperature_reference)

# %% [markdown]
# ### Going further
# - 🐢 Rerun the live generation at temperature 0.2 and 1.2: count how many of the replies contain code.
# - 🐕 Run `evolve`, `sample` and `rank` with `sampling.k=8` in a fresh run directory and compare the student's
#   levels in its `rank_stats.json` with this run's.
# - 🦁 Write a reply that `rrtf_lite.programs` cannot turn into a program (for example code cut off mid-line)
#   and check what `extract_code` returns for it.
#
# ## Key takeaways
# - RRTF compares answers, so it needs several per problem: $k$ from the student at $T > 0$ and one or more
#   from the teacher.
# - Temperature divides the logits before the softmax: low $T$ sharpens, high $T$ flattens.
# - Only code is trained on: `rrtf_lite.programs` is the one place that turns a model's text into the program
#   that is run, scored and trained on; a reply with no usable code is recorded as such.
#
# ## Questions
# 1. Why would greedy decoding ($T = 0$) be a poor choice for the student's $k$ samples?
#    <details><summary>Answer</summary>All $k$ samples would be the same text, so there would be nothing to rank
#    between them and the pairs would repeat one comparison.</details>
# 2. What happens to $P_T$ as $T \to \infty$, and as $T \to 0$?
#    <details><summary>Answer</summary>It tends to the uniform distribution, and to a one-hot on the largest
#    logit (greedy).</details>
# 3. Why subtract the largest logit before `exp`?
#    <details><summary>Answer</summary>`exp` of a large number overflows; subtracting a constant from every logit
#    does not change the softmax.</details>
# 4. A student reply has no code block at all. Is it thrown away?
#    <details><summary>Answer</summary>No: it scores 0 ("no usable code") and still enters pairs as the rejected
#    answer, with its raw text, because pushing it below the teacher's code is what the student should learn.</details>
#
# **Next:** [03 · Ranking](03_ranking.ipynb) runs every response against its tests.

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
# (the model we are training) and one or more from a **teacher**. This notebook produces them. (Terms such as
# *temperature*, *top-p* or *pass@k*: [glossary](../docs/glossary.md).)
#
# **In this notebook you will**
# 1. see how temperature and top-p shape the next-token distribution, and why RRTF samples at $T > 0$;
# 2. generate student answers live and watch them change with the temperature;
# 3. extract the code from a reply (the paper trains only on code);
# 4. run the `sample` stage and compare student and teacher answers side by side.
#
# | | |
# |---|---|
# | **Time** | machine time on `cpu` (the `sample` stage is most of it): [docs/executed/README.md](../docs/executed/README.md) (measured when the executed copy was made) · learner time: [the teacher's guide](../docs/teaching.md) (an estimate) · `tiny`: `pytest tests/test_notebooks.py -k 02` prints it · `colab-t4`: not measured |
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
# ### Break it: temperature and top-p on one prompt
#
# How far can you turn the knobs before the student stops writing code? The cell below asks for a few answers to
# the same prompt at the setting you choose and counts the **usable** ones (`extract_code` finds a function in
# them) and those that also **compile**. Every setting you try stays in the table, next to the two settings of
# the live cell above (greedy, and the profile's $T$ and top-p), so you can compare them.
#
# **Edit** `TEMPERATURE` and `TOP_P` and rerun: try a high temperature with top-p off (1.0), the same temperature
# with a tight top-p (0.5), and a low temperature. Each run generates `N` answers (the cell prints how long it
# took). **Look for** where the share of usable code collapses, how many answers are distinct, and how top-p
# rescues a high temperature by cutting the tail of unlikely tokens. RRTF wants the middle: answers that differ
# from each other but are still code, so the tests have something to rank.

# %%
# Break it: edit TEMPERATURE and TOP_P, rerun, and compare the rows.
TEMPERATURE, TOP_P = 1.5, 1.0
N = 3  # answers per setting: keep it small, each one is a full generation

import time

from rrtf_lite.programs import parse


def code_share(texts, entry_point):
    """(usable, compiles, distinct) counts of a list of replies."""
    codes = [extract_code(text, entry_point) for text in texts]
    usable = [code for code in codes if code is not None]
    return len(usable), sum(parse(code) is not None for code in usable), len(set(texts))


trials = globals().setdefault("sampling_trials", {})  # survives reruns of this cell
for temperature, texts in live.items():  # the live cell's answers (top-p 1.0 when greedy)
    top_p = 1.0 if temperature == 0 else config.sampling.top_p
    trials.setdefault((temperature, top_p), (texts, None))
start = time.perf_counter()
replies = student.generate([prompt], n=N, temperature=TEMPERATURE, top_p=TOP_P,
                           max_new_tokens=config.sampling.max_new_tokens, seed=config.seed,
                           entry_points=[problem["entry_point"]])[0]
trials[(TEMPERATURE, TOP_P)] = ([r.text for r in replies], time.perf_counter() - start)
print(f"T={TEMPERATURE}, top-p={TOP_P}: {N} answers in {trials[(TEMPERATURE, TOP_P)][1]:.1f} s")

table = []
for (temperature, top_p), (texts, _) in sorted(trials.items()):
    usable, compiles, distinct = code_share(texts, problem["entry_point"])
    table.append({"temperature": temperature, "top-p": top_p, "answers": len(texts), "distinct": distinct,
                  "usable code": f"{usable}/{len(texts)}", "compiles": f"{compiles}/{len(texts)}"})
pd.DataFrame(table).set_index(["temperature", "top-p"])

# %%
# One of the answers at your setting: what does the model write when the code is not usable?
print(trials[(TEMPERATURE, TOP_P)][0][0][:600])

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
#
# <details><summary>Stuck? A hint that does not give it away</summary>
#
# Write it in three lines: scale, exponentiate, normalise. Then check it on paper with two equal logits (the
# answer must not depend on $T$) and with `[1000.0, 0.0]` at $T = 1$ (a plain `exp(1000)` overflows: why does
# subtracting the same number from every scaled logit not change the result?).
# </details>

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
# <details><summary>Hints for the three tasks</summary>
#
# - 🐢 The "break it" cell above already counts usable code per setting: set `TEMPERATURE` to 0.2, then 1.2,
#   with `TOP_P = config.sampling.top_p`.
# - 🐕 Each stage compares its settings with the ones it ran with: a fresh run directory (`"run_dir": ...` in the
#   overrides) keeps this run intact. `rank_stats.json` has the levels per source.
# - 🦁 Try at least three shapes: a fence that never closes, a `def` line cut in the middle, and prose with no
#   fence at all. Then pass the result through `rrtf_lite.programs.clean` and compare.
# </details>
#
# ## Key takeaways
# - RRTF compares answers, so it needs several per problem: $k$ from the student at $T > 0$ and one or more
#   from the teacher.
# - Temperature divides the logits before the softmax: low $T$ sharpens, high $T$ flattens.
# - Only code is trained on: `rrtf_lite.programs` is the one place that turns a model's text into the program
#   that is run, scored and trained on; a reply with no usable code is recorded as such.
#
# ## Questions
# Answers: [the teacher's guide](../docs/teaching.md#02-sampling). Words: [glossary](../docs/glossary.md).
#
# 1. Why does RRTF need several answers per problem, and from whom?
# 2. Why would greedy decoding ($T = 0$) be a poor choice for the student's $k$ samples?
# 3. What happens to $P_T$ as $T \to \infty$, and as $T \to 0$?
# 4. What does top-p do that the temperature alone does not?
# 5. Why subtract the largest logit before `exp`, and why is the result unchanged?
# 6. In the "break it" cell, what happened to the share of usable code at a high temperature with top-p off, and
#    what changed when you tightened top-p at the same temperature?
# 7. Which setting would you pick for the student's samples after the "break it" cell, and why not the one with
#    the most usable code?
# 8. What does `extract_code` return for a reply without usable code, and is such a sample thrown away?
# 9. The paper trains only on the code extracted from a response. Why not on the whole reply?
# 10. Who is the teacher when there is no network, and what does a teacher that always passes mean for the pairs?
# 11. Why does the `sample` stage write each response to disk as soon as it exists?
#
# **Next:** [03 · Ranking](03_ranking.ipynb) runs every response against its tests.

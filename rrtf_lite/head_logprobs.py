"""Response-token log-probs from the last hidden states, through the LM head in chunks.

A causal LM's forward returns logits ``[rows, T, V]``; with a 49k vocabulary and 500-token rows these (plus
their gradient) are the largest tensors of a training step, although the rank and SFT losses only read the
target token's log-prob at the response positions. Here the model returns its last hidden states instead
(``logits_to_keep=1``: one position of logits), the response positions are picked out, and the LM head runs
on ``chunk_size`` of them at a time under activation checkpointing: forward keeps one float per token, and
backward recomputes each chunk's logits just before it needs them. At most one chunk's logits exist at a
time. This is the idea behind fused linear cross-entropy (Liger, TRL's chunked LM head), in plain torch.

The head is called as the model's own module, so a PEFT/LoRA-wrapped ``lm_head``, a head tied to the input
embeddings and a 4-bit base (whose head transformers keeps unquantised) all work unchanged. Logit post-processing
read from the model config: ``final_logit_softcapping`` (Gemma 2/3), ``logit_scale`` (Cohere, multiplies) and
``logits_scaling`` (Granite, divides). Models with other post-processing are not supported.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

IGNORE_INDEX = -100


def logit_transform(config) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's own post-processing of ``lm_head`` outputs, read from its config (identity for most models)."""
    config = getattr(config, "get_text_config", lambda: config)()
    softcap = getattr(config, "final_logit_softcapping", None)
    multiply = getattr(config, "logit_scale", None)  # Cohere: logits * logit_scale
    divide = getattr(config, "logits_scaling", None)  # Granite: logits / logits_scaling

    def transform(logits: torch.Tensor) -> torch.Tensor:
        if multiply is not None:
            logits = logits * multiply
        if divide is not None:
            logits = logits / divide
        if softcap is not None:
            logits = torch.tanh(logits / softcap) * softcap
        return logits

    return transform


def _chunk_logprobs(hidden: torch.Tensor, targets: torch.Tensor, head, transform) -> torch.Tensor:
    """log P(target) for [n, H] hidden states: logits of one chunk only, in float32."""
    logits = transform(head(hidden)).float()
    return logits.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def hidden_logprobs(
    hidden: torch.Tensor,
    labels: torch.Tensor,
    head: torch.nn.Module,
    transform: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
    ignore_index: int = IGNORE_INDEX,
    chunk_size: int = 512,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row sum of response-token log-probs [B] (float32) and the number of those tokens [B].

    ``hidden`` [B, T, H] and ``labels`` [B, T] are aligned as a causal LM's logits and labels are: the state
    at t predicts label t+1 (same contract as ``loss.sequence_logprobs``). Padding may be on either side.
    """
    targets = F.pad(labels[:, 1:], (0, 1), value=ignore_index)
    mask = targets != ignore_index
    rows, _ = mask.nonzero(as_tuple=True)
    picked, picked_targets = hidden[mask], targets[mask]  # [N, H], [N]: response positions only
    pieces = []
    for start in range(0, picked.shape[0], chunk_size):
        h, t = picked[start : start + chunk_size], picked_targets[start : start + chunk_size]
        if torch.is_grad_enabled() and h.requires_grad:
            pieces.append(checkpoint(_chunk_logprobs, h, t, head, transform, use_reentrant=False))
        else:
            pieces.append(_chunk_logprobs(h, t, head, transform))
    token_logp = torch.cat(pieces) if pieces else picked.new_zeros(0, dtype=torch.float32)
    sums = torch.zeros(labels.shape[0], dtype=torch.float32, device=hidden.device).index_add(0, rows, token_logp)
    return sums, mask.sum(-1)


def unwrap(model):
    """The module that owns ``get_output_embeddings``/``config`` under DDP-style ``.module`` wrappers."""
    while hasattr(model, "module") and not hasattr(model, "get_output_embeddings"):
        model = model.module
    return model


def model_response_logprobs(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor, chunk_size: int = 512
):
    """(per-row log-prob sums, token counts, model outputs) without the model ever building [B, T, V] logits.

    The forward goes through ``model`` itself (so DDP/PEFT wrappers see it); only the head is called on the
    side, which is why sharded set-ups (FSDP, ZeRO-3), whose head weights are gathered inside forward only,
    must use the full-logits path instead.
    """
    outputs = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        use_cache=False,
        output_hidden_states=True,
        logits_to_keep=1,
    )
    inner = unwrap(model)
    head = inner.get_output_embeddings()
    logp_sum, n_tokens = hidden_logprobs(
        outputs.hidden_states[-1], labels, head, logit_transform(inner.config), chunk_size=chunk_size
    )
    return logp_sum, n_tokens, outputs

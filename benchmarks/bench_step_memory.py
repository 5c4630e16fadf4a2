"""Peak RSS of one RRTF QLoRA training step on CPU: log-probs from hidden states vs full logits.

    MALLOC_MMAP_THRESHOLD_=131072 .venv/bin/python benchmarks/bench_step_memory.py fused full

Bundled model, QLoRA as the trainer sets it up, activation checkpointing on, one batch of 2 pairs with
~512-token responses (the pairs of bench_rrtf_vs_dpo.py), one forward + backward per path, 1 torch thread.
Prints VmRSS / VmHWM (peak, reset before each step) in GB. With glibc's default dynamic mmap threshold, freed
activations stay in the heap and the RSS reflects the allocator more than live tensors; a fixed
``MALLOC_MMAP_THRESHOLD_`` returns large blocks to the OS, so the peak tracks what the step really holds.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch


def rss() -> str:
    values = {}
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            key, value = line.split(":")
            values[key] = int(value.split()[0]) / 2**20
    return f"RSS {values['VmRSS']:.2f} HWM {values['VmHWM']:.2f} GB"


def main() -> None:
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_rrtf_vs_dpo import make_pairs

    from rrtf_lite.config import TrainConfig
    from rrtf_lite.head_logprobs import model_response_logprobs
    from rrtf_lite.loss import rrtf_loss, rrtf_loss_from_logprobs
    from rrtf_lite.train import RankCollator, records_to_groups, setup_model, tokenize_groups

    model, tok = setup_model("smollm2-135m-instruct", TrainConfig(finetune="qlora", max_response_length=530))
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    features, _ = tokenize_groups(records_to_groups(make_pairs(2, tok, 512), "pair"), tok, 256, 10**6)
    batch = RankCollator(tok.pad_token_id)(features)
    print("model + batch", tuple(batch["input_ids"].shape), rss(), flush=True)
    for path in sys.argv[1:] or ["fused", "full"]:
        Path(f"/proc/{os.getpid()}/clear_refs").write_text("5")  # reset VmHWM
        started = time.perf_counter()
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        if path == "fused":
            logp_sum, n_tokens, _ = model_response_logprobs(model, ids, mask, labels)
            out = rrtf_loss_from_logprobs(logp_sum, n_tokens, batch["scores"], batch["valid"])
        else:
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            out = rrtf_loss(logits, labels, batch["scores"], batch["valid"])
            del logits
        print(path, "after forward ", rss(), flush=True)
        out.loss.backward()
        model.zero_grad(set_to_none=True)
        del out
        print(path, "after backward", rss(), f"{time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()

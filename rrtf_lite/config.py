"""The run configuration: typed dataclasses, named profiles, YAML files and ``section.key=value`` overrides.

Defaults live only in the dataclasses below; a profile is a short list of overrides on top of them, so
there is one source of defaults (RRHF's code had one default in its dataclass and another in its scripts).

Profiles:
- ``tiny``: tests and CI. The random 2-layer model, a handful of problems, seconds per stage.
- ``cpu``: the offline default. The bundled SmolLM2-135M-Instruct, QLoRA on CPU, about 10 minutes on a quiet 2-core
  machine (README "Measured results").
- ``cpu-ablation``: ``rrtf-lite ablate`` (base, SFT, RRTF, RRHF, DPO on the same data) in about 70 minutes on
  2 CPU cores (where the time goes: benchmarks/results/ablation_timing.md).
- ``colab-t4``: a free Colab T4 (16 GB, fp16 only) with a hub student.
- ``full``: full-size runs: vLLM sampling, an API teacher, several GPUs via ``accelerate launch``.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rrtf_lite.errors import UserError

EVOL_METHODS = ["add_constraints", "rarer_requirement", "more_reasoning", "erroneous_code", "complexity", "breadth"]


@dataclass(frozen=True)
class Decoding:
    """How to decode, in one object: every ``Generator.generate(prompts, decoding)`` takes one; temperature 0 is
    greedy. Each stage's config section makes its own (``EvolConfig.decoding``, ``SamplingConfig.decoding``,
    ``EvalConfig.decoding``), so the settings are spelled out once."""

    n: int = 1  # completions per prompt
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] | None = None  # stop strings (excluded from the text)

    @classmethod
    def of(cls, decoding: Decoding | None = None, **keywords) -> Decoding:
        """``decoding`` (default: greedy, one completion) with ``keywords`` replaced: ``generate`` also accepts
        the settings as keywords (``n=4, temperature=0.8``), as notebooks and scripts write them."""
        unknown = sorted(set(keywords) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"generate() got unexpected keyword argument(s) {unknown}")
        if keywords.get("stop") is not None:
            keywords["stop"] = tuple(keywords["stop"])
        return dataclasses.replace(decoding or cls(), **keywords)


@dataclass
class ModelConfig:
    student: str = "smollm2-135m-instruct"  # alias, local folder or hub id
    quantization: str = "none"  # for generation/evaluation: none | 4bit | 8bit
    device: str | None = None  # None picks cuda > mps > cpu


@dataclass
class BackendConfig:
    """A text generator: the local student, an OpenAI-compatible endpoint, vLLM, or the reference teacher."""

    kind: str = "hf"  # hf | openai | vllm | reference | recorded (evolver only: data/evol_recorded)
    model: str = ""  # empty: the student model
    base_url: str | None = None  # OpenAI-compatible server; None reads OPENAI_BASE_URL
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4
    max_retries: int = 5
    request_timeout: float = 60.0


@dataclass
class DataConfig:
    seed_split: str = "train"  # problems that enter the pipeline: train | heldout | all (seed set) | train_frontier
    max_problems: int | None = 12  # cap (None: all)
    # train problems the student solves sometimes (data/splits.json train_frontier), added to the run's problems
    # as they are: where its answers spread over the four levels and the teacher's tie-break fires
    frontier_problems: int = 0
    hub_dataset: str | None = None  # e.g. "sahil2801/CodeAlpaca-20k" when a hub is reachable


@dataclass
class EvolConfig:
    rounds: int = 1
    problems_per_round: int = 4  # parents evolved per round
    methods: list[str] = field(default_factory=lambda: list(EVOL_METHODS))
    evolver: BackendConfig = field(default_factory=BackendConfig)
    test_writer: BackendConfig = field(default_factory=lambda: BackendConfig(kind="reference"))
    max_new_tokens: int = 192
    temperature: float = 0.7
    min_tests: int = 3

    def decoding(self, seed: int) -> Decoding:
        """The evolver's decoding (top-p off: the temperature alone spreads the rewrites)."""
        return Decoding(temperature=self.temperature, top_p=1.0, max_new_tokens=self.max_new_tokens, seed=seed)

    def test_writer_decoding(self, seed: int) -> Decoding:
        """The test writer's decoding: greedy, with room for a solution and its tests."""
        return Decoding(max_new_tokens=2 * self.max_new_tokens, seed=seed)


@dataclass
class SamplingConfig:
    k: int = 4  # student samples per problem
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 192
    batch_size: int = 8
    student: BackendConfig = field(default_factory=BackendConfig)  # hf (local) or vllm for full-size runs
    teacher: BackendConfig = field(default_factory=lambda: BackendConfig(kind="reference"))
    teacher_samples: int = 1

    def decoding(self, source: str, seed: int) -> Decoding:
        """The student's k samples, or the teacher's (greedy when it gives one answer per problem)."""
        if source == "student":
            return Decoding(self.k, self.temperature, self.top_p, self.max_new_tokens, seed)
        greedy = self.teacher_samples == 1
        temperature, top_p = (0.0, 1.0) if greedy else (self.temperature, self.top_p)
        return Decoding(self.teacher_samples, temperature, top_p, self.max_new_tokens, seed)


@dataclass
class RankConfig:
    """Scores per level; the paper publishes none, these are ours (see docs/architecture.md)."""

    score_compile_error: float = 0.0
    score_runtime_error: float = 1.0
    score_partial_base: float = 2.0  # partial pass scores base + pass_fraction, in [2, 3)
    score_all_pass: float = 4.0
    tie_gap: float = 0.25  # at equal outcome the teacher ranks above the student by this much
    timeout: float = 3.0  # seconds per test
    workers: int = 2
    # packages candidates may import besides the standard library (e.g. ["numpy"]); empty: none are visible
    sandbox_packages: list[str] = field(default_factory=list)


@dataclass
class TrainConfig:
    mode: str = "pair"  # pair (RRTF: teacher vs student) | listwise (RRHF) | sft (teacher answers only) | dpo (TRL)
    finetune: str = "qlora"  # qlora | lora | full
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    learning_rate: float = 2e-4
    num_epochs: float = 1.0
    max_steps: int = -1
    per_device_batch_size: int = 1  # prompts per step (each brings 2 or K responses)
    grad_accum: int = 1
    max_prompt_length: int = 512
    max_response_length: int = 512
    sft_weight: float = 1.0  # 0 only as an explicit ablation: rank losses alone degenerate
    gradient_checkpointing: bool = True
    logging_steps: int = 1
    save_steps: int = 50
    seed: int = 0
    warmup_ratio: float = 0.03
    lr_scheduler: str = "cosine"
    dpo_beta: float = 0.1  # mode dpo only: TRL DPOTrainer's beta (its default)


@dataclass
class EvalConfig:
    # what the evaluate stage measures: humaneval and/or splits of data/splits.json (heldout: the calibrated
    # held-out bank problems; heldout_hard: the old held-out set; validation; train)
    datasets: list[str] = field(default_factory=lambda: ["humaneval", "heldout"])
    humaneval_limit: int | None = 16  # None: all 164
    heldout_limit: int | None = 24  # cap on each split dataset, a fixed random sample (None: all of it)
    max_new_tokens: int = 256
    batch_size: int = 8
    n_samples: int = 1  # 1: greedy pass@1; >1: sampled, pass@k for k in ks
    temperature: float = 0.2
    top_p: float = 0.95
    ks: list[int] = field(default_factory=lambda: [1])
    timeout: float = 3.0
    workers: int = 2
    # hf: transformers, the adapter merged in memory; vllm: vLLM's engine on a merged copy (models.merge_adapter),
    # faster for many samples (benchmarks/README_generation.md), answers end at their first closed code block
    backend: typing.Literal["hf", "vllm"] = "hf"

    def decoding(self, seed: int) -> Decoding:
        """Greedy when one sample per problem (pass@1 is then the fraction solved), else sampling."""
        greedy = self.n_samples == 1
        temperature, top_p = (0.0, 1.0) if greedy else (self.temperature, self.top_p)
        return Decoding(self.n_samples, temperature, top_p, self.max_new_tokens, seed)


@dataclass
class AblationConfig:
    """``rrtf-lite ablate``: several training arms on the same ranked data, compared on the same problems."""

    arms: list[str] = field(default_factory=lambda: ["base", "sft", "rrtf", "rrhf", "dpo"])  # + rank_only
    seeds: list[int] = field(default_factory=lambda: [0])  # training seeds; per-problem results are averaged
    pairs_per_problem: int | None = 1  # training pairs kept per problem, widest score gap first (None: all)
    datasets: list[str] = field(default_factory=lambda: ["heldout", "humaneval"])
    sampled_n: int = 0  # >= 5: also sampled pass@1 (unbiased estimator) from this many samples per problem
    margin: bool = True  # held-out preference margin on (base greedy answer, teacher answer) pairs
    margin_limit: int | None = None  # held-out problems whose pair enters the margin (None: all)
    margin_batch_size: int = 8
    bootstrap: int = 10000  # paired bootstrap resamples over problems
    bootstrap_seed: int = 0


@dataclass
class RunConfig:
    profile: str = "cpu"
    run_dir: str = "runs/cpu"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    evol: EvolConfig = field(default_factory=EvolConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    rank: RankConfig = field(default_factory=RankConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, dict[str, object]] = {
    "tiny": {
        "run_dir": "runs/tiny",
        "model.student": "tiny-random",
        "data.max_problems": 4,
        "evol.problems_per_round": 2,
        "evol.max_new_tokens": 32,
        "sampling.k": 2,
        "sampling.max_new_tokens": 32,
        "train.max_steps": 4,
        "train.max_prompt_length": 256,
        "train.max_response_length": 128,
        "eval.humaneval_limit": 4,
        "eval.heldout_limit": 4,
        "eval.max_new_tokens": 32,
        "ablation.bootstrap": 2000,
    },
    # The 135M student cannot rewrite a task (its replies are code, which the eliminator drops: notebook 01 shows
    # it live); the demo replays recorded evolutions instead. `--set evol.evolver.kind=hf` watches the 135M try.
    # 12 seed problems and their recorded evolutions, plus 12 from the student's frontier (data/splits.json)
    "cpu": {"evol.evolver.kind": "recorded", "data.frontier_problems": 12},
    # ``rrtf-lite ablate`` on a 2-core CPU in about 70 minutes; the measured times per phase and arm are in
    # benchmarks/results/ablation_timing.md ("The cpu-ablation profile as measured").
    "cpu-ablation": {
        "run_dir": "runs/cpu-ablation",
        "data.max_problems": 120,  # training seed problems, plus 40 of their recorded evolutions:
        "evol.evolver.kind": "recorded",  # the live 135M evolver keeps nothing (benchmarks/results/evolve_cpu_live)
        "evol.problems_per_round": 40,
        "sampling.k": 1,  # one student answer per problem: one (teacher, student) pair per problem
        "sampling.max_new_tokens": 192,
        "sampling.batch_size": 16,
        "train.finetune": "lora",  # plain LoRA on the fp32 base: no 4-bit dequantisation on CPU (see the note)
        "train.gradient_checkpointing": False,  # 135M fits easily; recomputing activations costs ~25 %
        "train.max_steps": 64,  # the same for every arm
        "train.max_prompt_length": 384,
        "train.max_response_length": 256,  # reference answers: median 91 tokens, 90 % under 210
        "train.save_steps": 32,
        "eval.heldout_limit": None,  # every held-out problem (120+ once the new problems land)
        "eval.humaneval_limit": 40,
        "eval.max_new_tokens": 192,
        "eval.batch_size": 16,
        "ablation.pairs_per_problem": 1,
        "ablation.margin_limit": 60,
    },
    "colab-t4": {
        "run_dir": "runs/colab-t4",
        "model.student": "Qwen/Qwen2.5-Coder-0.5B-Instruct",
        "data.max_problems": None,
        "evol.rounds": 2,
        "evol.problems_per_round": 64,
        "sampling.k": 4,
        "sampling.max_new_tokens": 512,
        "sampling.batch_size": 16,
        "train.num_epochs": 3.0,
        "train.grad_accum": 8,
        "train.max_prompt_length": 512,
        "train.max_response_length": 1024,
        "eval.humaneval_limit": None,
        "eval.heldout_limit": None,
        "eval.batch_size": 16,
        "eval.max_new_tokens": 512,
    },
    "full": {
        "run_dir": "runs/full",
        "model.student": "Qwen/Qwen2.5-Coder-1.5B",
        "data.max_problems": None,
        "data.hub_dataset": "sahil2801/CodeAlpaca-20k",
        "evol.rounds": 3,
        "evol.problems_per_round": 2000,
        "evol.evolver.kind": "openai",
        "evol.evolver.model": "gpt-4o-mini",
        "evol.test_writer.kind": "openai",
        "evol.test_writer.model": "gpt-4o-mini",
        "sampling.k": 8,
        "sampling.max_new_tokens": 1024,
        "sampling.batch_size": 256,
        "sampling.student.kind": "vllm",
        "sampling.teacher.kind": "openai",
        "sampling.teacher.model": "gpt-4o-mini",
        "rank.workers": 16,
        "train.finetune": "lora",
        "train.num_epochs": 4.0,
        "train.per_device_batch_size": 2,
        "train.grad_accum": 16,
        "train.learning_rate": 1e-4,
        "train.max_prompt_length": 1024,
        "train.max_response_length": 1024,
        "eval.humaneval_limit": None,
        "eval.heldout_limit": None,
        "eval.n_samples": 20,
        "eval.ks": [1, 10],
        "eval.batch_size": 64,
        "eval.max_new_tokens": 768,
        "eval.workers": 16,
    },
}


# ---------------------------------------------------------------- setting values by dotted key
def _fields(obj) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(obj)}


def _known_keys(obj, prefix: str = "") -> list[str]:
    keys = []
    for name in _fields(obj):
        value = getattr(obj, name)
        keys.append(prefix + name)
        if dataclasses.is_dataclass(value):
            keys += _known_keys(value, prefix + name + ".")
    return keys


def _coerce(value, annotation, key: str, where: str):
    """Check a value against its field's type with pydantic in strict mode (no bool for a number, no "3" for 3);
    ints are accepted where floats are expected, and so is a float written as a string (YAML 1.1 reads "1e-2" as
    one)."""
    from pydantic import TypeAdapter, ValidationError

    adapter = TypeAdapter(annotation)
    try:
        return adapter.validate_python(value, strict=True)
    except ValidationError:
        if isinstance(value, str):
            try:
                return adapter.validate_python(float(value), strict=True)
            except (ValueError, ValidationError):
                pass
    raise UserError(f"{where}: {key} must be {_type_label(annotation)}, got {value!r}.")


def _type_label(annotation) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    return " or ".join(getattr(a, "__name__", str(a)) for a in args)


def set_key(config: RunConfig, key: str, value, where: str = "override") -> None:
    """Set ``section.sub.key`` on the config, refusing unknown keys with a suggestion."""
    target = config
    parts = key.split(".")
    for depth, part in enumerate(parts):
        fields = _fields(target)
        if part not in fields:
            near = difflib.get_close_matches(key, _known_keys(config), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise UserError(f"{where}: unknown config key {key!r}{hint}.")
        if depth == len(parts) - 1:
            if dataclasses.is_dataclass(getattr(target, part)):
                raise UserError(f"{where}: {key!r} is a section; set one of its keys, e.g. {key}.<name>=...")
            hints = typing.get_type_hints(type(target))
            setattr(target, part, _coerce(value, hints[part], key, where))
        else:
            target = getattr(target, part)
            if not dataclasses.is_dataclass(target):
                raise UserError(f"{where}: {'.'.join(parts[: depth + 1])!r} is not a section.")


def _flatten(mapping: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def parse_override(text: str) -> tuple[str, object]:
    """``train.max_steps=10`` -> ("train.max_steps", 10); values are parsed as YAML scalars."""
    import yaml

    if "=" not in text:
        raise UserError(f"Override {text!r} must look like section.key=value, e.g. train.max_steps=10.")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


def load_config(
    profile: str | None = None, path: str | Path | None = None, overrides: list[str] | dict | None = None
) -> RunConfig:
    """Defaults, then the profile, then a YAML file, then overrides (later wins)."""
    file_values: dict = {}
    if path is not None:
        file_values = read_yaml(path)
        profile = profile or file_values.pop("profile", None)
        file_values.pop("profile", None)
    profile = profile or "cpu"
    if profile not in PROFILES:
        near = difflib.get_close_matches(profile, list(PROFILES), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise UserError(f"Unknown profile {profile!r}{hint}: choose one of {', '.join(PROFILES)}.")
    config = RunConfig(profile=profile)
    if profile != "cpu":
        config.run_dir = f"runs/{profile}"
    for key, value in PROFILES[profile].items():
        set_key(config, key, value, where=f"profile {profile}")
    for key, value in _flatten(file_values).items():
        set_key(config, key, value, where=str(path))
    items = overrides.items() if isinstance(overrides, dict) else [parse_override(o) for o in overrides or []]
    for key, value in items:
        set_key(config, key, value)
    return config


def read_yaml(path: str | Path) -> dict:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"Config file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"Config file {path} is unreadable ({exc}).") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"Config file {path} is not valid YAML at{line}: {getattr(exc, 'problem', exc)}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"Config file {path} must hold a mapping of sections, got {type(data).__name__}.")
    return data


def save_config(config: RunConfig, path: str | Path) -> None:
    """The resolved config, written next to a run's artifacts so the run can be repeated."""
    import yaml

    from rrtf_lite.records import write_atomic  # several ranks may write it at once: each its own temp file

    write_atomic(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def derive_seed(base: int, *parts: str) -> int:
    """A stable 31-bit seed from the run seed and names (Python's ``hash`` differs between processes)."""
    digest = hashlib.sha256("/".join([str(base), *parts]).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF

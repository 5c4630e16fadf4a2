"""``rrtf-lite ablate``: does RRTF work, and which part matters? Several arms on the same ranked data.

Arms: ``base`` (no training), ``sft`` (teacher answers only), ``rrtf`` (pair rank loss + SFT), ``rrhf``
(listwise), ``dpo`` (TRL's DPOTrainer), optionally ``rank_only`` (sft_weight = 0). Every trained arm gets the
same pairs, steps, LoRA set-up and seeds; only ``train.mode`` (and for rank_only ``train.sft_weight``) differs.

Layout under ``config.run_dir``::

    shared/            evolve, sample, rank once (the stage functions of the pipeline)
    heldout_pairs/     the base student's greedy held-out answers vs the teacher's, ranked like training pairs
    arms/<arm>/seed<s>/  pairs.jsonl, adapter/, eval_<dataset>.json(l), margin.json, phase_*.json

Every phase is a piece of the stage cache (``rrtf_lite.stages``): ``phase_<name>.json`` holds a fingerprint of
its inputs and config section, so a rerun skips a finished phase with the same fingerprint, resumes an
unfinished one and redoes one whose inputs changed. The shared stages use their own stage markers
(``shared/.stages/``), exactly as in a pipeline run.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from rrtf_lite.ablation_report import margin_per_problem
from rrtf_lite.config import RunConfig, set_key
from rrtf_lite.errors import UserError
from rrtf_lite.pipeline import stage_function
from rrtf_lite.records import read_json, write_json
from rrtf_lite.stages import SKIP, Marker, file_digest, fingerprint, marker

ARMS: dict[str, dict[str, object] | None] = {
    "base": None,  # the untrained student
    "sft": {"train.mode": "sft"},
    "rrtf": {"train.mode": "pair"},
    "rrhf": {"train.mode": "listwise"},
    "dpo": {"train.mode": "dpo"},
    "rank_only": {"train.mode": "pair", "train.sft_weight": 0.0},  # the degeneration the docs warn of
}
SHARED_STAGES = ("evolve", "sample", "rank")


# ---------------------------------------------------------------- phases: pieces of the stage cache
class Phases:
    """Runs phases once per fingerprint and remembers what it did (``log``) and how long it took."""

    def __init__(self):
        self.log: dict[str, str] = {}  # phase key -> "ran" | "skipped"
        self.seconds: dict[str, float] = {}

    def run(self, path: Path, fp: str, work: Callable[[bool], dict | None], key: str) -> dict:
        """``work(force)`` unless the marker at ``path`` records a finished run with fingerprint ``fp``.

        ``force`` is True when the marker is missing or records other inputs (old outputs must go), False
        when the same phase was interrupted (its outputs resume).
        """
        piece, now = Marker(path, label=f"ablate {key}"), {"fingerprint": fp}
        decision = piece.open(now)
        if decision == SKIP:
            state = piece.read()
            self._record(key, "skipped", state.get("seconds", 0.0))
            return state.get("summary") or {}
        summary = work(decision != "resume") or {}
        piece.finish(now, summary=summary)
        self._record(key, "ran", piece.read().get("seconds", 0.0))
        return summary

    def stage(self, name: str, config: RunConfig, run_dir: Path) -> dict:
        """A pipeline stage in ``run_dir``, cached by its own stage marker; logged as a phase named ``name``."""
        before = marker(name, run_dir).read() or {}
        summary = stage_function(name)(config, run_dir, False)
        after = marker(name, run_dir).read() or {}
        ran = after.get("started") != before.get("started")  # a skipped stage does not touch its marker
        self._record(name, "ran" if ran else "skipped", after.get("seconds", 0.0))
        return summary

    def _record(self, key: str, what: str, seconds: float) -> None:
        self.log[key], self.seconds[key] = what, seconds


def with_overrides(config: RunConfig, overrides: dict[str, object]) -> RunConfig:
    out = copy.deepcopy(config)
    for key, value in overrides.items():
        set_key(out, key, value, where="ablation")
    return out


def arm_config(config: RunConfig, arm: str, seed: int) -> RunConfig:
    if arm not in ARMS:
        raise UserError(f"Unknown ablation arm {arm!r}: choose from {', '.join(ARMS)}.")
    return with_overrides(config, {**(ARMS[arm] or {}), "train.seed": seed})


# ---------------------------------------------------------------- shared data
def shared_phases(config: RunConfig, root: Path, phases: Phases) -> str:
    """evolve -> sample -> rank once in root/shared; returns the fingerprint of the ranked data (what arms train on)."""
    shared = root / "shared"
    for stage in SHARED_STAGES:
        phases.stage(stage, config, shared)
    return fingerprint(file_digest(shared / "pairs.jsonl"), file_digest(shared / "groups.jsonl"))


def heldout_pairs_phase(config: RunConfig, root: Path, base_eval: Path, eval_fp: str, phases: Phases):
    """Held-out pairs for the preference margin: the base student's greedy answer vs the teacher's answer.

    The base arm's held-out evaluation already generated the student's answers, so no extra generation is
    needed; they are written as samples next to the teacher's (reference) answers and go through the rank
    stage, so the pairs are scored, tie-broken and filtered exactly like the training pairs.
    Returns (the pairs, a fingerprint of them).
    """
    from rrtf_lite.backends import ReferenceTeacher
    from rrtf_lite.programs import extract_code
    from rrtf_lite.records import read_jsonl, write_jsonl

    folder = root / "heldout_pairs"
    fp = fingerprint("heldout_pairs", eval_fp, asdict(config.rank))

    def work(force: bool) -> dict:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("problems", "samples", "executions", "pairs", "groups"):
            (folder / f"{name}.jsonl").unlink(missing_ok=True)  # cheap to rebuild: only the sandbox runs
        (folder / "rank_stats.json").unlink(missing_ok=True)
        evaluated = read_json(base_eval)
        problems = {p["id"]: p for p in evaluated["problems"]}
        teacher = ReferenceTeacher(problems)
        samples = []
        for result in evaluated["results"]:
            problem = problems[result["problem_id"]]
            answers = [("student", result["model"], result["completions"][0]), ("teacher", "reference", None)]
            for source, model, text in answers:
                text = teacher.answer(problem).text if text is None else text
                samples.append(
                    {
                        "problem_id": problem["id"],
                        "source": source,
                        "model": model,
                        "sample_index": 0,
                        "response": text,
                        "code": extract_code(text, problem.get("entry_point")),
                        "temperature": 0.0,
                        "top_p": 1.0,
                        "n_tokens": 0,
                    }
                )
        write_jsonl(folder / "problems.jsonl", list(problems.values()), kind="problem")
        write_jsonl(folder / "samples.jsonl", samples, kind="sample")
        return stage_function("rank")(config, folder, True)

    phases.run(folder / "phase_pairs.json", fp, work, "heldout_pairs")
    pairs = read_jsonl(folder / "pairs.jsonl", kind="pair")
    limit = config.ablation.margin_limit
    if limit is not None:  # the first problems in id order: the same ones for every arm
        keep = set(sorted({p["problem_id"] for p in pairs})[:limit])
        pairs = [p for p in pairs if p["problem_id"] in keep]
    return pairs, fingerprint(fp, limit)


def select_pairs(pairs: list[dict], per_problem: int | None) -> list[dict]:
    """At most ``per_problem`` pairs per problem, the widest score gap first (ties: lowest student index)."""
    if per_problem is None:
        return list(pairs)
    by_problem: dict[str, list[dict]] = {}
    for p in pairs:
        by_problem.setdefault(p["problem_id"], []).append(p)
    out = []
    for items in by_problem.values():
        items.sort(key=lambda p: (-(p["score_chosen"] - p["score_rejected"]), p["rejected_index"], p["chosen_index"]))
        out += items[:per_problem]
    return out


def write_arm_data(shared: Path, folder: Path, per_problem: int | None) -> None:
    """The arm's pairs.jsonl and groups.jsonl: the same selected pairs for every arm, groups of the same problems."""
    from rrtf_lite.records import read_jsonl, write_jsonl

    pairs = select_pairs(read_jsonl(shared / "pairs.jsonl", kind="pair"), per_problem)
    ids = {p["problem_id"] for p in pairs}
    groups = [g for g in read_jsonl(shared / "groups.jsonl", kind="group") if g["problem_id"] in ids]
    write_jsonl(folder / "pairs.jsonl", pairs, kind="pair")
    write_jsonl(folder / "groups.jsonl", groups, kind="group")


# ---------------------------------------------------------------- per-arm measures
def preference_margins(model, tokenizer, pairs: list[dict], train_config, batch_size: int) -> list[dict]:
    """p_tea and p_stu (length-normalised log-likelihoods, as the rank loss uses them) for every pair."""
    import torch

    from rrtf_lite.loss import length_normalised, sequence_logprobs
    from rrtf_lite.train import RankCollator, records_to_groups, tokenize_groups

    groups = records_to_groups(pairs, "pair")
    features, _ = tokenize_groups(groups, tokenizer, train_config.max_prompt_length, train_config.max_response_length)
    collate = RankCollator(tokenizer.pad_token_id)
    out = []
    model.eval()
    for start in range(0, len(features), max(1, batch_size)):
        batch = collate(features[start : start + max(1, batch_size)])
        with torch.inference_mode():
            logits = model(
                input_ids=batch["input_ids"].to(model.device), attention_mask=batch["attention_mask"].to(model.device)
            ).logits
            logp, n_tokens = sequence_logprobs(logits, batch["labels"].to(model.device))
        p = length_normalised(logp, n_tokens).view(-1, 2).tolist()
        for pair, (p_tea, p_stu) in zip(pairs[start : start + max(1, batch_size)], p, strict=True):
            out.append({"problem_id": pair["problem_id"], "p_tea": p_tea, "p_stu": p_stu})
    return out


class ArmModel:
    """The arm's model (base, or base + merged adapter), loaded on first use and shared by its phases."""

    def __init__(self, config: RunConfig, adapter: Path | None):
        self.config, self.adapter, self._generator = config, adapter, None

    @property
    def generator(self):
        if self._generator is None:
            from rrtf_lite.evaluate import student_generator

            m = self.config.model  # answers end once their code block defining the entry point closes
            self._generator = student_generator(m.student, self.config.eval, self.adapter, m.quantization, m.device)
        return self._generator


def evaluate_phase(arm_model: ArmModel, problems, cfg, folder: Path, dataset: str, label: str, seed: int):
    """One evaluation, resumable from its per-problem .jsonl; returns the summary and per-problem results."""
    from rrtf_lite.evaluate import evaluate_model

    def work(force: bool) -> dict:
        records = folder / f"{dataset}.jsonl"
        if force:
            records.unlink(missing_ok=True)
        out = evaluate_model(
            arm_model.generator,
            problems,
            cfg,
            arm_model.adapter,
            label,
            dataset=dataset,
            model=arm_model.config.model.student,
            records_path=records,
            check_harness=False,  # checked once per dataset in the shared harness phase
            seed=seed,
        )
        summary = {k: v for k, v in out["summary"].items() if k not in ("problem_ids", "prompt_format")}
        write_json(folder / f"{dataset}.json", {"summary": summary, "results": out["results"], "problems": problems})
        return {"pass@1": summary["pass_at_k"].get("1"), "seconds": summary["seconds"]}

    return work


# ---------------------------------------------------------------- the experiment
def load_problems(config: RunConfig) -> dict[str, list[dict]]:
    from rrtf_lite.evaluate import load_datasets

    return load_datasets(config, config.ablation.datasets)


def ablate(config: RunConfig, out: str | Path | None = None, command: str | None = None) -> dict:
    """Run (or resume) the whole ablation and write the results JSON and markdown; returns the results."""
    from tqdm.auto import tqdm

    from rrtf_lite.config import save_config
    from rrtf_lite.evaluate import adapter_fingerprint, harness_sanity_check

    ab = config.ablation
    arms = list(dict.fromkeys(ab.arms))
    for arm in arms:
        arm_config(config, arm, 0)  # unknown arm names fail before any work
    if "base" not in arms:
        raise UserError("ablation.arms must include 'base': every delta is measured against it.")
    if not ab.seeds:
        raise UserError("ablation.seeds must list at least one training seed.")
    if 0 < ab.sampled_n < 5:
        raise UserError(f"ablation.sampled_n must be 0 (off) or >= 5 for a usable pass@1 estimate, got {ab.sampled_n}.")
    root = Path(config.run_dir)
    root.mkdir(parents=True, exist_ok=True)
    save_config(config, root / "ablation_config.yaml")
    phases = Phases()
    start = time.perf_counter()

    problems = load_problems(config)
    for name, items in problems.items():
        fp = fingerprint("harness", name, [p["id"] for p in items], config.eval.timeout)
        phases.run(
            root / f"harness_{name}.json",
            fp,
            lambda force, items=items: harness_sanity_check(items, config.eval.workers, config.eval.timeout),
            f"harness/{name}",
        )
    data_fp = shared_phases(config, root, phases)
    margin_pairs, margin_fp = None, None

    greedy_cfg = with_overrides(config, {"eval.n_samples": 1, "eval.ks": [1]}).eval
    sampled_cfg = with_overrides(config, {"eval.n_samples": max(ab.sampled_n, 1), "eval.ks": [1]}).eval
    arms = ["base"] + [arm for arm in arms if arm != "base"]  # base first: its answers make the margin pairs
    runs = [(arm, seed) for arm in arms for seed in ([0] if arm == "base" else ab.seeds)]
    bar = tqdm(runs, desc="ablate", unit="arm")
    for arm, seed in bar:
        bar.set_postfix_str(f"{arm} seed {seed}")
        cfg = arm_config(config, arm, seed)
        folder = root / "arms" / arm / f"seed{seed}"
        adapter, model_fp = None, fingerprint("base", config.model.student, config.model.quantization)
        if arm != "base":
            train_fp = fingerprint(data_fp, asdict(cfg.train), config.model.student, ab.pairs_per_problem)
            phases.run(folder / "phase_train.json", train_fp, _train_work(cfg, root, folder), f"{arm}/{seed}/train")
            adapter = folder / "adapter"
            model_fp = fingerprint(train_fp, adapter_fingerprint(adapter))
        model = ArmModel(cfg, adapter)
        for name, items in problems.items():
            decodings = [("greedy", greedy_cfg)] + ([("sampled", sampled_cfg)] if ab.sampled_n >= 5 else [])
            for decoding, eval_cfg in decodings:
                fp = fingerprint(model_fp, asdict(eval_cfg), [p["id"] for p in items], config.seed, "answer_stop")
                key = f"{name}_{decoding}"
                work = evaluate_phase(model, items, eval_cfg, folder / "eval", key, arm, config.seed)
                phases.run(folder / f"phase_eval_{key}.json", fp, work, f"{arm}/{seed}/eval/{key}")
                if arm == "base" and key == "heldout_greedy" and ab.margin:
                    base_eval = folder / "eval" / f"{key}.json"
                    margin_pairs, margin_fp = heldout_pairs_phase(config, root, base_eval, fp, phases)
        if margin_pairs:
            fp = fingerprint(model_fp, margin_fp, cfg.train.max_prompt_length, cfg.train.max_response_length)
            phases.run(
                folder / "phase_margin.json",
                fp,
                _margin_work(model, margin_pairs, cfg, folder, ab.margin_batch_size),
                f"{arm}/{seed}/margin",
            )
        del model
    bar.close()

    from rrtf_lite.ablation_report import build_results, write_results

    results = build_results(config, root, problems, runs, phases, command, time.perf_counter() - start)
    write_results(results, Path(out) if out else root / "ablation.json")
    return results


def _train_work(cfg: RunConfig, root: Path, folder: Path) -> Callable[[bool], dict]:
    def work(force: bool) -> dict:
        from rrtf_lite.train import train

        folder.mkdir(parents=True, exist_ok=True)
        write_arm_data(root / "shared", folder, cfg.ablation.pairs_per_problem)
        summary = train(cfg, folder, force=force)
        return {k: summary.get(k) for k in ("steps", "examples", "final_loss", "train_seconds", "mode")}

    return work


def _margin_work(model: ArmModel, pairs: list[dict], cfg: RunConfig, folder: Path, batch_size: int):
    def work(force: bool) -> dict:
        generator = model.generator
        rows = preference_margins(generator.model, generator.tokenizer, pairs, cfg.train, batch_size)
        write_json(folder / "margin.json", {"pairs": rows})
        margin, accuracy = margin_per_problem(rows)
        return {
            "margin": sum(margin.values()) / max(len(margin), 1),
            "pair_accuracy": sum(accuracy.values()) / max(len(accuracy), 1),
        }

    return work

"""Calibration: how often the student solves each problem, per prompt format, before any training.

RRTF learns only where the student sometimes succeeds: there its own answers spread over the four levels, the
teacher wins ties, and pass@1 can move either way. This measures that frontier for any student: ``n`` answers per
problem with the sampling settings training uses (``config.sampling``: temperature, top_p, max_new_tokens; a
fixed seed per batch), each graded in the sandbox, one line per problem and prompt format in
``data/calibration/<model>.jsonl``; ``<model>.json`` beside it holds the settings, command, time, machine and
a histogram. Splits are stratified by these rates (``data.write_splits``).

The file is resumable (a killed run continues where it stopped) and refuses to mix settings: a line written
with another temperature, n, seed, ... is an error naming the file, line and field, never silently reused.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import sys
import time
from pathlib import Path

from rrtf_lite.backends import answer_stop_kwargs, make_generator
from rrtf_lite.config import Decoding, RunConfig, derive_seed
from rrtf_lite.errors import UserError
from rrtf_lite.programs import extract_code
from rrtf_lite.prompts import PROMPT_FORMATS, build_prompt
from rrtf_lite.records import ResumableWriter, write_atomic, write_json
from rrtf_lite.stages import digest

log = logging.getLogger(__name__)

KEY = ("id", "prompt_format")
SETTINGS = ("model", "sampler", "n", "temperature", "top_p", "max_new_tokens", "seed")  # what a rate depends on
RATE_BINS = (0.0, 0.25, 0.5, 0.75, 1.0)


def model_slug(model: str) -> str:
    """A file name for a model alias, folder or hub id ("Qwen/Qwen2.5-Coder-0.5B" -> "qwen2.5-coder-0.5b")."""
    return re.sub(r"[^a-z0-9._-]+", "-", Path(model.rstrip("/")).name.lower()).strip("-") or "model"


def default_path(model: str, root: Path | None = None) -> Path:
    from rrtf_lite.data import data_dir

    return (root or data_dir() / "calibration") / f"{model_slug(model)}.jsonl"


def offers(problem: dict, prompt_format: str) -> bool:
    """Whether a problem has its own text in this format: without a ``prompt`` the "humaneval" format falls back to
    the instruction, the same text as the "instruction" format, so it is not measured twice."""
    return prompt_format != "humaneval" or bool(problem.get("prompt"))


def problem_digest(problem: dict, prompt_format: str) -> str:
    """What a line's rate depends on in the problem itself: the prompt the student saw and the tests it ran."""
    text = json.dumps([build_prompt(problem, prompt_format), problem["tests"], problem["entry_point"]])
    return digest(text)[:16]


def settings_of(config: RunConfig, n: int) -> dict:
    s = config.sampling
    return {
        "model": config.model.student,
        "sampler": s.student.kind,  # hf or vllm: the same distribution in principle, other numerics in practice
        "n": n,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "max_new_tokens": s.max_new_tokens,
        "seed": config.seed,
    }


def _check_settings(writer: ResumableWriter, settings: dict) -> None:
    for lineno, record in enumerate(writer.records, 1):
        for field in SETTINGS:
            if record.get(field) != settings[field]:
                raise UserError(
                    f"{writer.path}:{lineno}: field '{field}': {record.get(field)!r} was written with other settings "
                    f"than this run's {settings[field]!r}; calibrate into another file (--out) or move this one away"
                )


def rate_histogram(records: list[dict]) -> dict[str, dict[str, int]]:
    """Per prompt format, how many problems have each sampled pass rate (passed / n)."""
    out: dict[str, dict[str, int]] = {}
    for r in records:
        bucket = out.setdefault(r["prompt_format"], {})
        key = f"{r['passed']}/{r['n']}"
        bucket[key] = bucket.get(key, 0) + 1
    return {fmt: dict(sorted(b.items(), key=lambda kv: int(kv[0].split("/")[0]))) for fmt, b in out.items()}


def summarise(records: list[dict]) -> dict:
    """Mean rate and level counts per prompt format, and per format and problem set (the id's first part:
    bank, heldout, seed, HumanEval)."""
    out: dict[str, dict] = {}
    for r in records:
        for g in (r["prompt_format"], f"{r['prompt_format']}/{r['id'].split('/')[0]}"):
            s = out.setdefault(g, {"problems": 0, "answers": 0, "passed": 0, "levels": [0, 0, 0, 0], "no_code": 0})
            s["problems"] += 1
            s["answers"] += r["n"]
            s["passed"] += r["passed"]
            s["no_code"] += r["no_code"]
            s["levels"] = [a + b for a, b in zip(s["levels"], r["levels"], strict=True)]
    for s in out.values():
        s["mean_rate"] = round(s["passed"] / s["answers"], 4) if s["answers"] else 0.0
    return out


PROBLEM_SETS = ("bank", "heldout_hard", "humaneval", "seed_train")


def load_problem_sets(names: list[str] | tuple[str, ...], limit: int | None = None) -> list[dict]:
    """Problems of the named sets in a fixed pseudo-random order (sha256 of the id), so that ``limit`` takes a
    random sample and a longer run extends a shorter one."""
    from rrtf_lite import data

    def heldout_hard() -> list[dict]:  # the seed problems the hash rule holds out, and what data/splits.json adds
        listed = {p["id"] for p in data.load_problems("heldout_hard")}
        return [p for p in data.load_seed_problems() if data.held_out_by_rule(p["id"])] + [
            p for p in data.load_bank() if p["id"] in listed
        ]

    loaders = {
        "bank": data.load_bank,
        "heldout_hard": heldout_hard,
        "humaneval": data.load_humaneval,
        "seed_train": lambda: data.load_seed_problems("train"),
    }
    problems = []
    for name in names:
        if name not in loaders:
            raise UserError(f"unknown problem set {name!r}: choose from {', '.join(PROBLEM_SETS)}")
        problems += loaders[name]()
    problems = data.stable_order({p["id"]: p for p in problems}.values())
    return problems[:limit] if limit else problems


def compare_formats(records: list[dict], a: str = "humaneval", b: str = "instruction") -> dict | None:
    """Paired comparison of two prompt formats on the problems measured in both: mean rate difference ``a - b``
    with its bootstrap interval (stats.paired_bootstrap); None when no problem has both."""
    from rrtf_lite.stats import paired_bootstrap

    rate = {(r["id"], r["prompt_format"]): r["passed"] / r["n"] for r in records}
    both = sorted({i for i, f in rate if f == a} & {i for i, f in rate if f == b})
    if not both:
        return None
    out = paired_bootstrap([rate[(i, a)] for i in both], [rate[(i, b)] for i in both])
    return {
        "a": a,
        "b": b,
        "problems": len(both),
        "delta": round(out["delta"], 4),
        "ci95": [round(x, 4) for x in out["ci95"]],
    }


def format_markdown(summary: dict) -> str:
    """The summary as the page beside the calibration file: command, settings, machine, rates, histogram."""
    lines = [
        f"# Calibration: {summary['settings']['model']}",
        "",
        "Written by `rrtf_lite.calibrate` from the JSONL file beside it; do not edit by hand.",
        "",
        f"- command (last run): `{summary['command']}`",
        f"- settings: {', '.join(f'{k}={v}' for k, v in summary['settings'].items())}",
        f"- last run: {summary['answers_this_run']} answers in {summary['seconds_this_run']} s, finished "
        f"{summary['finished']}; machine: {summary['machine']['platform']}, {summary['machine']['cpus']} CPUs, "
        f"torch {summary['machine']['torch']}",
        "",
        "| prompt format / source | problems | mean rate | compile / runtime / partial / all-pass answers |",
        "|---|---|---|---|",
    ]
    for name, s in sorted(summary["by_format"].items()):
        levels = " / ".join(str(x) for x in s["levels"])
        lines.append(f"| {name} | {s['problems']} | {s['mean_rate']:.3f} | {levels} |")
    if summary.get("format_comparison"):
        c = summary["format_comparison"]
        lines += [
            "",
            f"Paired over the {c['problems']} problems measured in both formats, {c['a']} minus {c['b']}: "
            f"{c['delta']:+.3f} (95% bootstrap interval {c['ci95'][0]:+.3f} to {c['ci95'][1]:+.3f}).",
        ]
    lines += ["", "Problems by answers passed (of n):", ""]
    for fmt, hist in sorted(summary["histogram"].items()):
        lines.append(f"- {fmt}: " + ", ".join(f"{k}: {v}" for k, v in hist.items()))
    return "\n".join(lines) + "\n"


def calibrate(
    config: RunConfig,
    problems: list[dict],
    out_path: str | Path | None = None,
    n: int | None = None,
    prompt_formats: tuple[str, ...] = PROMPT_FORMATS,
    command: str = "",
) -> dict:
    """Sample ``n`` answers per problem and format (``config.sampling.k`` by default), grade them, append one
    line per (problem, format) to ``out_path``; returns (and writes beside it) the summary."""
    from tqdm.auto import tqdm

    from rrtf_lite import sandbox

    n = n or config.sampling.k
    for fmt in prompt_formats:
        if fmt not in PROMPT_FORMATS:
            raise UserError(f"unknown prompt format {fmt!r}: choose from {', '.join(PROMPT_FORMATS)}")
    out_path = Path(out_path) if out_path else default_path(config.model.student)
    settings = settings_of(config, n)
    s = config.sampling
    group_size = max(1, s.batch_size // n)
    started, generated = time.time(), 0
    with ResumableWriter(out_path, KEY) as writer:
        _check_settings(writer, settings)
        # Groups are fixed by position in ``problems`` (so is each group's seed): a resumed run regenerates a
        # partly written group exactly and writes only its missing lines.
        plans = [(fmt, [p for p in problems if offers(p, fmt)]) for fmt in prompt_formats]
        total = sum(len(ps) for _, ps in plans)
        by_key = {(p["id"], fmt): p for fmt, ps in plans for p in ps}
        for lineno, record in enumerate(writer.records, 1):
            problem = by_key.get((record["id"], record["prompt_format"]))
            if problem is not None and record.get("problem_sha") != problem_digest(problem, record["prompt_format"]):
                raise UserError(
                    f"{writer.path}:{lineno}: field 'problem_sha': problem {record['id']!r} changed since it was "
                    "calibrated (prompt or tests); calibrate into another file (--out) or move this one away"
                )
        done = sum(writer.done((p["id"], fmt)) for fmt, ps in plans for p in ps)
        bar = tqdm(total=total, initial=done, desc="calibrate", unit="problem", mininterval=2.0)
        generator = None
        for fmt, fmt_problems in plans:
            for i in range(0, len(fmt_problems), group_size):
                group = fmt_problems[i : i + group_size]
                if all(writer.done((p["id"], fmt)) for p in group):
                    continue
                if generator is None:
                    generator = make_generator(
                        s.student,
                        config.model.student,
                        problems,
                        config.model.quantization,
                        config.model.device,
                        s.batch_size,
                    )
                seed = derive_seed(config.seed, "calibrate", fmt, *(p["id"] for p in group))
                replies = generator.generate(
                    [build_prompt(p, fmt) for p in group],
                    Decoding(n, s.temperature, s.top_p, s.max_new_tokens, seed),
                    **answer_stop_kwargs(generator, group),
                )
                jobs, owners = [], []
                for problem, completions in zip(group, replies, strict=True):
                    for c in completions:
                        code = extract_code(c.text, problem.get("entry_point"))
                        owners.append((problem["id"], code is None, c.n_tokens))
                        jobs.append(
                            sandbox.Job(code or "", problem["tests"], problem["entry_point"], config.rank.timeout)
                        )
                results = sandbox.run_many(jobs, workers=config.rank.workers, packages=config.rank.sandbox_packages)
                for problem in group:
                    if writer.done((problem["id"], fmt)):
                        continue
                    mine = [(o, r) for o, r in zip(owners, results, strict=True) if o[0] == problem["id"]]
                    levels = [0, 0, 0, 0]
                    for (_, no_code, _), r in mine:
                        levels[0 if no_code else r.level] += 1
                    writer.write(
                        {
                            "id": problem["id"],
                            "prompt_format": fmt,
                            "passed": levels[3],
                            "problem_sha": problem_digest(problem, fmt),
                            **settings,
                            "levels": levels,
                            "no_code": sum(o[1] for o, _ in mine),
                            "mean_pass_fraction": round(sum(r.pass_fraction for _, r in mine) / len(mine), 4),
                            "mean_tokens": round(sum(o[2] for o, _ in mine) / len(mine), 1),
                        }
                    )
                    generated += n
                    bar.update(1)
        bar.close()
        records = list(writer.records)
    summary = {
        "file": str(out_path),
        "command": command,
        "settings": settings,
        "prompt_formats": list(prompt_formats),
        "problems": len({r["id"] for r in records}),
        "answers_this_run": generated,
        "seconds_this_run": round(time.time() - started, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "by_format": summarise(records),
        "histogram": rate_histogram(records),
        "format_comparison": compare_formats(records),
    }
    if generated or not Path(out_path).with_suffix(".json").exists():
        write_json(Path(out_path).with_suffix(".json"), summary)
        write_atomic(Path(out_path).with_suffix(".md"), format_markdown(summary))
    return summary


def machine() -> dict:
    """Where a measurement ran: enough to compare two timings."""
    import os

    from rrtf_lite.models import library_versions

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        **library_versions(("torch", "transformers", "rrtf-lite")),
    }

"""The whole RRTF pipeline: the five stages in order, one run directory.

Each stage is one function ``stage(config, run_dir, force=False) -> dict`` in its own module; the CLI,
``run()`` below and the notebooks all call those same functions. A stage whose output is complete skips its
work, a partial one resumes, and ``force`` redoes it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rrtf_lite.config import RunConfig, load_config, save_config
from rrtf_lite.errors import UserError
from rrtf_lite.records import write_json

STAGES: dict[str, tuple[str, str]] = {
    "evolve": ("rrtf_lite.evol", "evolve"),
    "sample": ("rrtf_lite.sampling", "sample"),
    "rank": ("rrtf_lite.ranking", "rank"),
    "train": ("rrtf_lite.train", "train"),
    "evaluate": ("rrtf_lite.evaluate", "evaluate"),
}


# ---------------------------------------------------------------- opening a stage
@dataclass(frozen=True)
class StageSpec:
    """What a stage reads and writes, and which config sections change its result."""

    inputs: tuple[str, ...]  # run-directory files that must exist (written by earlier stages)
    outputs: tuple[str, ...]  # files or folders it writes; removed when the stage must be redone
    sections: tuple[str, ...]  # config sections (or "seed") its result depends on
    done: tuple[str, ...]  # outputs that must all be present for a finished stage to be skipped


SPECS: dict[str, StageSpec] = {
    "evolve": StageSpec(
        (),
        ("problems.jsonl", "evol_stats.json", "evol_attempts.jsonl"),
        ("data", "evol", "model", "seed"),
        ("problems.jsonl", "evol_stats.json"),
    ),
    "sample": StageSpec(("problems.jsonl",), ("samples.jsonl",), ("sampling", "model", "seed"), ("samples.jsonl",)),
    "rank": StageSpec(
        ("problems.jsonl", "samples.jsonl"),
        ("executions.jsonl", "pairs.jsonl", "groups.jsonl", "rank_stats.json"),
        ("rank",),
        ("executions.jsonl", "pairs.jsonl", "groups.jsonl", "rank_stats.json"),
    ),
    "train": StageSpec(
        ("pairs.jsonl", "groups.jsonl"),
        ("adapter", "checkpoints", "train_log.json"),
        ("train", "model"),
        ("adapter/train_summary.json",),
    ),
}
STATE_DIR = ".stages"  # run_dir/.stages/<stage>.json: the fingerprint of the inputs and config a stage ran with


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stage_fingerprint(name: str, config: RunConfig, run_dir: Path, extra: dict | None = None) -> dict:
    """Digests of the stage's input files and its config sections (plus ``extra``, e.g. the seed data files)."""
    spec, settings = SPECS[name], config.to_dict()
    inputs = {f: _file_digest(run_dir / f) for f in spec.inputs if (run_dir / f).is_file()}
    sections = {k: settings.get(k) for k in spec.sections}
    return {"inputs": {**inputs, **(extra or {})}, "config": json.loads(json.dumps(sections, default=str))}


def open_stage(name: str, config: RunConfig, run_dir: Path, force: bool = False, extra: dict | None = None) -> bool:
    """Inputs present, outputs complete and fresh, or force: True when the stage has work to do.

    False: the stage finished before with exactly these inputs and config (skip). True with outputs removed:
    ``force``, or something the stage depends on changed since (one line names it). True with outputs kept: a
    partial run with the same inputs, which the stage resumes.
    """
    spec, run_dir = SPECS[name], Path(run_dir)
    missing = [f for f in spec.inputs if not (run_dir / f).is_file()]
    if missing and not (name == "train" and len(missing) < len(spec.inputs)):  # train needs pairs or groups
        producer = next(stage for stage, s in SPECS.items() if missing[0] in s.outputs)
        raise UserError(
            f"{run_dir / missing[0]} does not exist: run the {producer} stage first "
            f"(rrtf-lite {producer}, or rrtf-lite run for every stage)."
        )
    state_path = run_dir / STATE_DIR / f"{name}.json"
    now = stage_fingerprint(name, config, run_dir, extra)
    before = json.loads(state_path.read_text()) if state_path.is_file() else None
    had_outputs = any((run_dir / o).exists() for o in spec.outputs)
    changed = _what_changed(before, now) if before else (["outputs of an unrecorded run"] if had_outputs else [])
    if (
        not force
        and not changed
        and before
        and before.get("finished")
        and all((run_dir / f).exists() for f in spec.done)
    ):
        return False
    if force or changed:
        if changed and had_outputs:
            print(f"[rrtf-lite] {name}: {', '.join(changed)} changed since the last run: redoing the stage", flush=True)
        for output in spec.outputs:
            target = run_dir / output
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    write_json(state_path, {**now, "finished": False})
    return True


def finish_stage(name: str, config: RunConfig, run_dir: Path, extra: dict | None = None) -> None:
    """Record that the stage completed with these inputs and config (its next run may skip)."""
    write_json(
        Path(run_dir) / STATE_DIR / f"{name}.json",
        {**stage_fingerprint(name, config, run_dir, extra), "finished": True},
    )


def _what_changed(before: dict, now: dict) -> list[str]:
    names = [
        f for f in set(before.get("inputs", {})) | set(now["inputs"]) if before["inputs"].get(f) != now["inputs"].get(f)
    ]
    names += [f"config.{k}" for k in now["config"] if before.get("config", {}).get(k) != now["config"][k]]
    return sorted(names)


def stage_function(name: str) -> Callable[..., dict]:
    """The function behind a stage name (imported lazily: heavy libraries load only when used)."""
    if name not in STAGES:
        raise UserError(f"Unknown stage {name!r}: choose one of {', '.join(STAGES)}.")
    module, attribute = STAGES[name]
    return getattr(importlib.import_module(module), attribute)


def prepare_run_dir(config: RunConfig, force: bool = False) -> Path:
    """Create the run directory and record the resolved config; refuse to mix two configs in one run."""
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.yaml"
    if saved.exists() and not force:
        previous = load_config(path=saved)
        changed = _changed_keys(previous.to_dict(), config.to_dict())
        if changed:
            raise UserError(
                f"{run_dir} holds a run made with a different config ({', '.join(changed[:4])} changed): "
                "use another --run-dir, or --force to redo the stage with the new config."
            )
    save_config(config, saved)
    return run_dir


def _changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(prefix + key)
    return changed


def run_stage(name: str, config: RunConfig, force: bool = False) -> dict:
    """Run one stage in the config's run directory and record its summary in ``summary.json``."""
    function = stage_function(name)
    run_dir = prepare_run_dir(config, force=force)
    print(f"[rrtf-lite] stage {name} -> {run_dir}", flush=True)
    start = time.perf_counter()
    summary = function(config, run_dir, force=force)
    summary = {**(summary or {}), "seconds": round(time.perf_counter() - start, 1)}
    _record_summary(run_dir, name, summary)
    return summary


def _record_summary(run_dir: Path, name: str, summary: dict) -> None:
    path = run_dir / "summary.json"
    summaries = json.loads(path.read_text()) if path.exists() else {}
    summaries[name] = summary
    write_json(path, summaries)


def run(config: RunConfig | None = None, force: bool = False, stages: list[str] | None = None) -> dict:
    """All stages in order (or the given subset); prints the before/after table at the end."""
    config = config or load_config("cpu")
    start = time.perf_counter()
    summaries = {}
    for name in stages or list(STAGES):
        summaries[name] = run_stage(name, config, force=force)
    summaries["total_seconds"] = round(time.perf_counter() - start, 1)
    report = Path(config.run_dir) / "report.md"
    if report.exists():
        print("\n" + report.read_text())
    print(f"[rrtf-lite] pipeline finished in {summaries['total_seconds']:.0f} s; artifacts in {config.run_dir}")
    return summaries

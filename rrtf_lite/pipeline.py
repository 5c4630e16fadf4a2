"""The whole RRTF pipeline: the five stages in order, one run directory.

Each stage is one function ``stage(config, run_dir, force=False) -> dict`` in its own module; the CLI,
``run()`` below and the notebooks all call those same functions. A stage whose output is complete skips its
work, a partial one resumes, and ``force`` redoes it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from rrtf_lite.config import RunConfig, load_config, save_config
from rrtf_lite.errors import UserError
from rrtf_lite.records import write_json

log = logging.getLogger(__name__)
STAGES = ("evolve", "sample", "rank", "train", "evaluate")  # in order; each stage's cache lives in stages.py


def stage_function(name: str) -> Callable[..., dict]:
    """The function behind a stage name (imported here, on use: heavy libraries load only when needed)."""
    if name == "evolve":
        from rrtf_lite.evol import evolve as function
    elif name == "sample":
        from rrtf_lite.sampling import sample as function
    elif name == "rank":
        from rrtf_lite.ranking import rank as function
    elif name == "train":
        from rrtf_lite.train import train as function
    elif name == "evaluate":
        from rrtf_lite.evaluate import evaluate as function
    else:
        raise UserError(f"Unknown stage {name!r}: choose one of {', '.join(STAGES)}.")
    return function


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
    log.info("stage %s -> %s", name, run_dir)
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
    log.info("pipeline finished in %.0f s; artifacts in %s", summaries["total_seconds"], config.run_dir)
    return summaries

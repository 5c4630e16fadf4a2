"""The one stage cache: what each stage reads and writes, its fingerprint, and open/finish/resume.

Every piece of work that writes into a run directory (the five stages, each evaluation, every ablation
phase) goes through a ``Marker``: a small JSON file holding the fingerprint it ran with and whether it
finished. Opening one decides between three things:

- ``skip``: it finished before with exactly this fingerprint (and its ``done`` files are there);
- ``redo``: ``force``, or something it depends on changed (one line names what): its old outputs go;
- ``resume``: it was interrupted with the same fingerprint: its outputs stay and the work continues.

A stage's fingerprint (``stage_fingerprint``) is the digest of each input file it reads plus the config
sections its result depends on (``SPECS``); ``tests/test_stages.py`` checks that every section a stage
module reads is listed. The hashing below (``digest``, ``file_digest``, ``tree_digest``, ``fingerprint``) is
the one hasher of the package.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rrtf_lite.errors import UserError
from rrtf_lite.records import read_json, write_json

log = logging.getLogger(__name__)

STATE_DIR = ".stages"  # run_dir/.stages/<name>.json: the fingerprint a stage (or evaluation) ran with
SKIP, REDO, RESUME = "skip", "redo", "resume"
BIG_FILE = 64 * 2**20  # tree_digest identifies files over this size by size and mtime, not content


# ---------------------------------------------------------------- the one hasher
def digest(data: bytes | str) -> str:
    """sha256 hex digest of bytes or text."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def file_digest(path: str | Path) -> str:
    """sha256 hex digest of a file's content, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_digest(folder: str | Path) -> str:
    """Short digest of every file under ``folder`` (names and content; size and mtime for files over 64 MB)."""
    h = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            stat = path.stat()
            h.update(str(path.relative_to(folder)).encode())
            big = stat.st_size > BIG_FILE
            h.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode() if big else path.read_bytes())
    return h.hexdigest()[:16]


def fingerprint(*parts) -> str:
    """A short digest of JSON-able parts (config sections, file digests, earlier fingerprints)."""
    return digest(json.dumps(parts, sort_keys=True, default=str))[:16]


# ---------------------------------------------------------------- what each stage reads and writes
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
        # sampling.batch_size sets its batches (and their seeds); rank's sandbox settings validate written tests
        ("data", "evol", "sampling", "rank", "model", "seed"),
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
    # evaluate caches each (phase, dataset) on its own (``evaluate.evaluate``): these are the stage's shared parts
    "evaluate": StageSpec((), ("report.json", "report.md"), ("eval", "model", "seed"), ("report.json",)),
}


# ---------------------------------------------------------------- one cached piece of work
def what_changed(before: dict, now: dict) -> list[str]:
    """Names of the parts of ``now`` that differ from ``before`` (input files by name, config as config.<section>)."""
    names = []
    for key in set(before) | set(now):
        if key in ("finished", "started", "seconds", "summary"):
            continue
        old, new = before.get(key), now.get(key)
        if isinstance(old, dict) or isinstance(new, dict):
            old, new = old if isinstance(old, dict) else {}, new if isinstance(new, dict) else {}
            prefix = "config." if key == "config" else ""
            names += [f"{prefix}{k}" for k in set(old) | set(new) if old.get(k) != new.get(k)]
        elif old != new:
            names.append(key)
    return sorted(names)


class Marker:
    """The record of one cached piece of work: the fingerprint it ran with, whether it finished, how long it took."""

    def __init__(self, path: str | Path, label: str | None = None):
        self.path = Path(path)
        self.label = label or self.path.stem

    def read(self) -> dict | None:
        return read_json(self.path)

    def open(
        self,
        now: dict,
        *,
        force: bool = False,
        outputs: Iterable[str | Path] | None = None,
        done: Iterable[str | Path] = (),
    ) -> str:
        """``skip``, ``redo`` (outputs removed) or ``resume``; see the module docstring.

        ``outputs``: what the work writes, removed on ``redo``; None when the caller removes its own outputs
        (then a missing marker means ``redo``, since nothing says what is on disk).
        """
        before = self.read()
        known = outputs is not None
        targets = [Path(o) for o in outputs] if known else []
        had_outputs = any(t.exists() for t in targets) if known else before is not None
        if before is None:
            changed = ["outputs of an unrecorded run"] if known and had_outputs else []
        else:
            changed = what_changed(before, now)
        finished = bool(before and before.get("finished"))
        if not force and not changed and finished and all(Path(p).exists() for p in done):
            return SKIP
        redo = force or bool(changed) or (before is None and not known)
        if changed and had_outputs:
            log.warning("%s: %s changed since the last run: redoing it", self.label, ", ".join(changed))
        if redo:
            for target in targets:
                shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
        write_json(self.path, {**now, "finished": False, "started": time.time()})
        return REDO if redo else RESUME

    def finish(self, now: dict, summary: dict | None = None) -> None:
        """Record that the work completed with ``now`` (its next open may skip) and how long it took."""
        started = (self.read() or {}).get("started")
        state = {**now, "finished": True}
        if started is not None:
            state["seconds"] = round(time.time() - started, 1)
        if summary is not None:
            state["summary"] = summary
        write_json(self.path, state)


# ---------------------------------------------------------------- the five stages
def marker(name: str, run_dir: str | Path) -> Marker:
    return Marker(Path(run_dir) / STATE_DIR / f"{name}.json", label=name)


def stage_fingerprint(name: str, config, run_dir: str | Path, extra: dict | None = None) -> dict:
    """Digests of the stage's input files and its config sections (plus ``extra``, e.g. the seed data files)."""
    spec, settings, run_dir = SPECS[name], config.to_dict(), Path(run_dir)
    inputs = {f: file_digest(run_dir / f) for f in spec.inputs if (run_dir / f).is_file()}
    sections = {k: settings.get(k) for k in spec.sections}
    return {"inputs": {**inputs, **(extra or {})}, "config": json.loads(json.dumps(sections, default=str))}


def open_stage(name: str, config, run_dir: str | Path, force: bool = False, extra: dict | None = None) -> bool:
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
    now = stage_fingerprint(name, config, run_dir, extra)
    outputs = [run_dir / o for o in spec.outputs]
    return marker(name, run_dir).open(now, force=force, outputs=outputs, done=[run_dir / f for f in spec.done]) != SKIP


def finish_stage(name: str, config, run_dir: str | Path, extra: dict | None = None) -> None:
    """Record that the stage completed with these inputs and config (its next run may skip)."""
    marker(name, run_dir).finish(stage_fingerprint(name, config, run_dir, extra))

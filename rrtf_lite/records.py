"""Record schemas and validated JSONL I/O: every stage file goes through here.

Records are plain dicts in memory; the pydantic models below describe them (field names are the contract in
docs/architecture.md). ``validate`` checks a dict against its model (strict JSON types) and fills optional
fields, so a bad line is reported as ``file:line: field 'x': ...`` at the stage that reads it, not as a
KeyError three stages later.
``ResumableWriter`` appends one fsync'ed line per record, so a stage killed with SIGKILL resumes without losing
or duplicating records.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from rrtf_lite.errors import UserError

# Keys that identify one record in its stage file (what ResumableWriter deduplicates on).
SAMPLE_KEY = ("problem_id", "source", "sample_index")
EXECUTION_KEY = ("problem_id", "source", "sample_index")
EVAL_KEY = ("problem_id",)


class RecordError(UserError, ValueError):
    """A record that does not match its schema; the message names file, line and field."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None, field: str | None = None):
        super().__init__(message)
        self.path, self.line, self.field = path, line, field


class Record(BaseModel):
    """Base of every record schema: strict JSON types (no "3" for 3, no true for 1), unknown fields kept."""

    model_config = ConfigDict(strict=True, extra="allow")


class Problem(Record):
    """A programming task with unit tests (data/seed, HumanEval, MBPP, evolved problems)."""

    id: str
    instruction: str
    entry_point: str
    tests: list[str]
    source: str
    signature: str = ""
    reference_solution: str = ""
    difficulty: Literal["easy", "medium", "hard"] = "medium"  # unknown difficulty counts as medium
    tags: list[str] = []
    parent_id: str | None = None
    evol_round: int = 0
    evol_method: str | None = None
    source_model: str | None = None
    prompt: str | None = None


class SeedInstruction(Problem):
    """An instruction without tests (Code Alpaca, Evol-Instruct-Code): input for Evol-Instruct, which writes
    the tests. Same fields as Problem; only here may ``tests`` be empty and ``entry_point`` be ""."""

    entry_point: str = ""
    tests: list[str] = []
    source: str = ""


class Sample(Record):
    """One response of the student or the teacher to one problem."""

    problem_id: str
    source: str  # "student" | "teacher"
    sample_index: int
    response: str
    model: str
    code: str | None = None  # None = no usable code extracted
    temperature: float = 0.0
    top_p: float = 1.0
    n_tokens: int = 0


class CaseResult(Record):
    """The outcome of one test of one Execution."""

    status: Literal["pass", "fail", "error", "timeout"]
    error_type: str | None = None
    message: str | None = None


class Execution(Record):
    """A sample run against its problem's tests."""

    problem_id: str
    source: str
    sample_index: int
    level: int  # 0 compile error, 1 runtime error, 2 partial, 3 all pass
    pass_fraction: float
    score: float
    tests: list[CaseResult]
    outcome: str | None = None  # the truthful name within the level (sandbox.CandidateResult.outcome)
    program: str | None = None  # exactly what ran (and what training uses); None: no usable code


class Pair(Record):
    """One (teacher, student) training pair; chosen/rejected are ``prompts.format_target`` code."""

    problem_id: str
    prompt: str
    chosen: str
    rejected: str
    score_chosen: float
    score_rejected: float
    chosen_source: str
    rejected_source: str
    chosen_index: int
    rejected_index: int


class Group(Record):
    """All responses of one prompt with their scores, for the listwise RRHF loss."""

    problem_id: str
    prompt: str
    responses: list[str]
    scores: list[float]
    sources: list[str]
    sample_indices: list[int] = []  # which sample each response was


class EvalResult(Record):
    """Per-problem evaluation result of one model (+ adapter) on one dataset."""

    problem_id: str
    dataset: str
    model: str
    completions: list[str]
    passed: list[bool]
    levels: list[int]
    pass_fractions: list[float] = []  # share of the tests each completion passes (0.0 without usable code)
    empty: int = 0  # generations with no usable code
    adapter: str | None = None


SCHEMAS: dict[str, type[Record]] = {
    "problem": Problem,
    "seed_instruction": SeedInstruction,
    "sample": Sample,
    "execution": Execution,
    "pair": Pair,
    "group": Group,
    "eval": EvalResult,
}


def _json_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _location(loc: tuple) -> str:
    """pydantic's ("tests", 1, "status") -> "tests[1].status"."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _record_error(error: ValidationError) -> RecordError:
    """The first schema violation as "field 'x': what is wrong, got <JSON type>"."""
    first = error.errors(include_url=False)[0]
    where = _location(first["loc"])
    if first["type"] == "missing":
        return RecordError(f"field '{where}': missing (required)", field=where)
    return RecordError(f"field '{where}': {first['msg']}, got {_json_name(first['input'])}", field=where)


def _validate_fields(record: dict, schema: type[Record]) -> dict:
    try:
        return schema.model_validate(record).model_dump()
    except ValidationError as error:
        raise _record_error(error) from None


def _semantic_checks(record: dict, kind: str) -> None:
    """Rules beyond types; raise RecordError(field=...)."""
    if kind == "problem":
        if not record["tests"]:
            raise RecordError("field 'tests': a problem needs at least one test", field="tests")
        if not record["entry_point"].isidentifier():
            raise RecordError(f"field 'entry_point': not a Python name: {record['entry_point']!r}", field="entry_point")
    if kind in ("problem", "seed_instruction"):
        if not record["id"]:
            raise RecordError("field 'id': empty", field="id")
        for i, test in enumerate(record["tests"]):
            if not test.strip():
                raise RecordError(f"field 'tests': empty test at [{i}]", field="tests")
    if kind == "execution" and not 0 <= record["level"] <= 3:
        raise RecordError(f"field 'level': expected 0..3, got {record['level']}", field="level")
    if kind == "group":
        n = len(record["responses"])
        for name in ("scores", "sources", "sample_indices"):
            if len(record[name]) != n and (name != "sample_indices" or record[name]):  # [] = not recorded
                raise RecordError(f"field '{name}': {len(record[name])} entries for {n} responses", field=name)
    if kind == "eval":
        n = len(record["completions"])
        for name in ("passed", "levels"):
            if len(record[name]) != n:
                raise RecordError(f"field '{name}': {len(record[name])} entries for {n} completions", field=name)


def validate(record: dict, kind: str, where: str = "") -> dict:
    """Check ``record`` against the schema of ``kind`` and return a copy with optional fields filled in.

    Unknown extra fields are kept (later versions may add fields). ``where`` (e.g. "file.jsonl:12") prefixes
    the error message.
    """
    if kind not in SCHEMAS:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {sorted(SCHEMAS)}")
    prefix = f"{where}: " if where else ""
    if not isinstance(record, dict):
        raise RecordError(f"{prefix}expected a JSON object, got {_json_name(record)}")
    try:
        out = _validate_fields(record, SCHEMAS[kind])
        _semantic_checks(out, kind)
    except RecordError as e:
        path, _, line = where.rpartition(":")
        raise RecordError(
            prefix + str(e), path=path or where or None, line=int(line) if line.isdigit() else None, field=e.field
        ) from None
    return out


def _parse_line(raw: bytes, path: str, lineno: int, kind: str | None) -> dict | None:
    """One JSONL line -> validated record, None for a blank line; RecordError naming path:line otherwise."""
    where = f"{path}:{lineno}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecordError(f"{where}: not valid UTF-8 (byte {e.start}: {e.reason})", path, lineno) from None
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecordError(f"{where}: malformed JSON: {e.msg} (column {e.colno})", path, lineno) from None
    if kind is None:
        if not isinstance(record, dict):
            raise RecordError(f"{where}: expected a JSON object, got {_json_name(record)}", path, lineno)
        return record
    return validate(record, kind, where)


def iter_jsonl(path: str | os.PathLike, kind: str | None = None) -> Iterator[tuple[int, dict]]:
    """Yield (line number, validated record) pairs; raises the first RecordError. Blank lines are skipped."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            record = _parse_line(raw, str(path), lineno, kind)
            if record is not None:
                yield lineno, record


def read_jsonl(
    path: str | os.PathLike,
    kind: str | None = None,
    strict: bool = True,
    errors: list[RecordError] | None = None,
) -> list[dict]:
    """Read a JSONL file, validating each record against ``kind`` (if given). Blank lines are ignored.

    strict: raise the first RecordError. Otherwise skip bad lines, append each error to ``errors`` and print
    one summary warning on stderr: nothing is dropped silently.
    """
    path = str(path)
    records, bad = [], []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                record = _parse_line(raw, path, lineno, kind)
            except RecordError as e:
                if strict:
                    raise
                bad.append(e)
                continue
            if record is not None:
                records.append(record)
    if bad:
        if errors is not None:
            errors.extend(bad)
        print(f"warning: skipped {len(bad)} bad records in {path} (first: {bad[0]})", file=sys.stderr)
    return records


def _dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False)


def write_jsonl(path: str | os.PathLike, records: Iterable[dict], kind: str | None = None) -> None:
    """Write the whole file atomically (temp file in the same folder, then os.replace)."""
    write_atomic(path, "".join(_dumps(validate(r, kind) if kind else r) + "\n" for r in records))


def read_json(path: str | os.PathLike):
    """A whole JSON file written by ``write_json``, or None when there is none."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Every whole JSON file of a run directory goes through here: a kill leaves the old file or the new one,
    never half of one (a stage reads some of them, such as a finished marker, to decide that it is done)."""
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; read once, at import, before any thread runs


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """The one atomic writer: every whole file a run writes (JSON, JSONL, markdown, YAML, plots) goes through here.

    A temp file in the same folder (unique, so several processes may write the same path at once), fsync'ed,
    then renamed over ``path``: a kill leaves the old file or the new one. It gets the mode ``open()`` would give.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600 files: results meant to be shared or committed would be private
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResumableWriter:
    """Append-only stage output that survives SIGKILL.

    On open it reads the complete records already in the file (validated, duplicates are an error) and cuts
    off a trailing line without newline: that is a record whose write was interrupted. Each ``write`` appends
    one line and fsyncs, so after a kill every record is either fully there or not at all.

        with ResumableWriter(run_dir / "samples.jsonl", SAMPLE_KEY, kind="sample") as out:
            for rec in todo:
                if not out.done(rec):
                    out.write(rec)
    """

    def __init__(self, path: str | os.PathLike, key_fields: tuple[str, ...], kind: str | None = None, fsync=True):
        self.path, self.key_fields, self.kind, self.fsync = Path(path), tuple(key_fields), kind, fsync
        self.records: list[dict] = []
        self.keys: set[tuple] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._truncate_partial_line()
        if self.path.exists():
            for lineno, record in iter_jsonl(self.path, self.kind):
                key = self._key(record, f"{self.path}:{lineno}")
                if key in self.keys:
                    raise RecordError(f"{self.path}:{lineno}: duplicate key {key}", str(self.path), lineno)
                self.keys.add(key)
                self.records.append(record)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # umask applies

    def _truncate_partial_line(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1  # 0 when the only line is partial
            print(
                f"warning: {self.path}: dropped an interrupted last record ({len(data) - keep} bytes)",
                file=sys.stderr,
            )
            with open(self.path, "r+b") as fh:
                fh.truncate(keep)
                os.fsync(fh.fileno())

    def _key(self, record: dict, where: str) -> tuple:
        missing = [f for f in self.key_fields if f not in record]
        if missing:
            raise RecordError(f"{where}: field '{missing[0]}': missing (key field)", field=missing[0])
        return tuple(record[f] for f in self.key_fields)

    def done(self, record_or_key: dict | tuple) -> bool:
        """True if a record with this key (or this key tuple) is already written."""
        if isinstance(record_or_key, dict):
            return self._key(record_or_key, str(self.path)) in self.keys
        return tuple(record_or_key) in self.keys

    def write(self, record: dict) -> dict:
        """Validate, refuse a duplicate key, append one line and fsync. Returns the stored record."""
        if self._fd is None:
            raise ValueError(f"{self.path}: writer is closed")
        if self.kind:
            record = validate(record, self.kind, where=f"{self.path} (new record)")
        key = self._key(record, f"{self.path} (new record)")
        if key in self.keys:
            raise RecordError(f"{self.path}: duplicate key {key}: already written", str(self.path))
        data = (_dumps(record) + "\n").encode("utf-8")
        while data:  # os.write may write less than asked for large lines
            data = data[os.write(self._fd, data) :]
        if self.fsync:
            os.fsync(self._fd)
        self.keys.add(key)
        self.records.append(record)
        return record

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ResumableWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.records)


def to_dataset(records: list[dict]):
    """Records -> ``datasets.Dataset``. Columns are the union of all records' fields (missing -> None)."""
    import datasets

    columns: dict[str, None] = {}
    for r in records:
        columns.update(dict.fromkeys(r))
    return datasets.Dataset.from_dict({c: [r.get(c) for r in records] for c in columns})

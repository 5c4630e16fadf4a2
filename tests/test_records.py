"""Record schemas, validated JSONL I/O and kill-safe resumable writing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rrtf_lite.records import (
    SAMPLE_KEY,
    SCHEMAS,
    RecordError,
    ResumableWriter,
    read_jsonl,
    to_dataset,
    validate,
    write_jsonl,
)

REPO = Path(__file__).resolve().parent.parent


def problem(**over) -> dict:
    rec = {
        "id": "seed/x001",
        "instruction": "Return the sum of two integers.",
        "entry_point": "add_two",
        "signature": "def add_two(a: int, b: int) -> int:",
        "reference_solution": "def add_two(a: int, b: int) -> int:\n    return a + b\n",
        "tests": ["assert add_two(1, 2) == 3"],
        "difficulty": "easy",
        "tags": ["math"],
        "source": "seed",
    }
    rec.update(over)
    return rec


def sample(i: int, **over) -> dict:
    rec = {"problem_id": "p1", "source": "student", "model": "m", "sample_index": i, "response": f"r{i}"}
    rec.update(over)
    return rec


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


def test_schema_kinds():
    assert set(SCHEMAS) >= {"problem", "sample", "execution", "pair", "group", "eval", "seed_instruction"}


def test_validate_fills_lineage_defaults():
    rec = validate({k: v for k, v in problem().items() if k not in ("tags", "difficulty")}, "problem")
    assert rec["parent_id"] is None and rec["evol_round"] == 0 and rec["evol_method"] is None
    assert rec["source_model"] is None and rec["prompt"] is None and rec["tags"] == []
    s = validate(sample(0), "sample")
    assert s["code"] is None and s["n_tokens"] == 0 and s["model"] == "m"


def test_validate_keeps_extra_fields_and_does_not_mutate():
    rec = problem(extra="kept")
    out = validate(rec, "problem")
    assert out["extra"] == "kept" and "parent_id" not in rec


@pytest.mark.parametrize(
    ("record", "kind", "field", "text"),
    [
        ({k: v for k, v in problem().items() if k != "entry_point"}, "problem", "entry_point", "missing"),
        (problem(tests="assert add_two(1, 2) == 3"), "problem", "tests", "should be a valid list, got str"),
        (problem(tests=[]), "problem", "tests", "a problem needs at least one test"),
        (problem(tests=["assert x", 3]), "problem", "tests[1]", "should be a valid string, got int"),
        (problem(evol_round=True), "problem", "evol_round", "should be a valid integer, got bool"),
        (problem(evol_round=1.0), "problem", "evol_round", "should be a valid integer, got float"),
        (problem(difficulty="trivial"), "problem", "difficulty", "'easy', 'medium' or 'hard', got str"),
        (problem(parent_id=3), "problem", "parent_id", "should be a valid string, got int"),
        (problem(entry_point="not a name"), "problem", "entry_point", "not a Python name"),
        (sample(True), "sample", "sample_index", "should be a valid integer, got bool"),
        (sample(0, temperature=True), "sample", "temperature", "should be a valid number, got bool"),
        (sample(0, code=None, response=None), "sample", "response", "should be a valid string, got null"),
    ],
)
def test_validate_errors_name_file_line_field(record, kind, field, text):
    with pytest.raises(RecordError) as e:
        validate(record, kind, where="data/seed/part_a.jsonl:12")
    msg = str(e.value)
    assert msg.startswith(f"data/seed/part_a.jsonl:12: field '{field}': "), msg
    assert text in msg
    assert (e.value.path, e.value.line, e.value.field) == ("data/seed/part_a.jsonl", 12, field)


def test_exact_message_format():
    with pytest.raises(
        RecordError, match=r"^data/seed/part_a\.jsonl:12: field 'tests': Input should be a valid list, got str$"
    ):
        validate(problem(tests="x"), "problem", "data/seed/part_a.jsonl:12")


def test_execution_nested_tests_validated_and_filled():
    rec = {"problem_id": "p", "source": "student", "sample_index": 0, "level": 2, "pass_fraction": 0.5}
    rec.update(score=2, tests=[{"status": "pass"}, {"status": "fail", "error_type": "AssertionError"}])
    out = validate(rec, "execution")
    assert out["score"] == 2.0 and isinstance(out["score"], float)
    assert out["tests"][0] == {"status": "pass", "error_type": None, "message": None}
    bad = dict(rec, tests=[{"status": "pass"}, {"status": "ok"}])
    with pytest.raises(RecordError, match=r"f:3: field 'tests\[1\]\.status': Input should be 'pass', .* got str"):
        validate(bad, "execution", "f:3")
    with pytest.raises(RecordError, match="field 'level': expected 0..3"):
        validate(dict(rec, level=4), "execution")


def test_group_and_eval_lengths_checked():
    g = {"problem_id": "p", "prompt": "x", "responses": ["a", "b"], "scores": [1, 2.5], "sources": ["student"]}
    with pytest.raises(RecordError, match="field 'sources': 1 entries for 2 responses"):
        validate(g, "group")
    g["sources"] = ["student", "teacher"]
    assert validate(g, "group")["sample_indices"] == []  # optional: older files have none
    with pytest.raises(RecordError, match="field 'sample_indices': 1 entries for 2 responses"):
        validate(dict(g, sample_indices=[0]), "group")
    e = {"problem_id": "p", "dataset": "humaneval", "model": "m", "completions": ["a"], "passed": [1], "levels": [3]}
    with pytest.raises(RecordError, match=r"field 'passed\[0\]': Input should be a valid boolean, got int"):
        validate(e, "eval")
    assert validate(dict(e, passed=[True]), "eval")["adapter"] is None


def test_read_jsonl_malformed_json(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [json.dumps(problem()), '{"id": "seed/x002",'])
    with pytest.raises(RecordError, match=r"p\.jsonl:2: malformed JSON: .*column") as e:
        read_jsonl(path, "problem")
    assert e.value.line == 2


def test_read_jsonl_non_utf8(tmp_path):
    bad = json.dumps(problem(id="seed/x002")).encode().replace(b"sum", b"s\xff\xfem")
    path = write_lines(tmp_path / "p.jsonl", [json.dumps(problem()), bad])
    with pytest.raises(RecordError, match=r"p\.jsonl:2: not valid UTF-8"):
        read_jsonl(path, "problem")


def test_read_jsonl_field_error_has_file_and_line(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", ["", json.dumps(problem()), json.dumps(problem(tests=[]))])
    with pytest.raises(RecordError) as e:
        read_jsonl(path, "problem")
    assert str(e.value) == f"{path}:3: field 'tests': a problem needs at least one test"


def test_read_jsonl_non_object_line(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", ["[1, 2]"])
    with pytest.raises(RecordError, match=r":1: expected a JSON object, got list"):
        read_jsonl(path)


def test_read_jsonl_skip_and_report(tmp_path, capsys):
    lines = [json.dumps(problem(id="a")), "{oops", "", json.dumps(problem(id="b", tests=[])), json.dumps(problem())]
    path = write_lines(tmp_path / "p.jsonl", lines + [b"\xff"])
    errors: list[RecordError] = []
    records = read_jsonl(path, "problem", strict=False, errors=errors)
    assert [r["id"] for r in records] == ["a", "seed/x001"]
    assert [e.line for e in errors] == [2, 4, 6]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: skipped 3 bad records in {path} (first: {path}:2:")
    # without an errors list the summary is still printed
    read_jsonl(path, "problem", strict=False)
    assert "skipped 3 bad records" in capsys.readouterr().err


def test_write_jsonl_atomic_roundtrip(tmp_path):
    path = tmp_path / "sub" / "p.jsonl"
    recs = [problem(id=f"p{i}", instruction="unicode: é ✓") for i in range(3)]
    write_jsonl(path, recs)
    assert read_jsonl(path, "problem")[2]["instruction"] == "unicode: é ✓"
    write_jsonl(path, recs[:1])
    assert len(read_jsonl(path)) == 1
    assert [p.name for p in path.parent.iterdir()] == ["p.jsonl"]  # no temp file left
    with pytest.raises(RecordError):
        write_jsonl(path, [problem(tests=[])], kind="problem")
    assert len(read_jsonl(path)) == 1  # a failed write leaves the old file intact


def test_resumable_writer_truncates_partial_line_and_refuses_duplicates(tmp_path, capsys):
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps(sample(0)) + "\n" + json.dumps(sample(1)) + "\n" + json.dumps(sample(2))[:20])
    with ResumableWriter(path, SAMPLE_KEY, kind="sample") as out:
        assert "interrupted" in capsys.readouterr().err
        assert out.keys == {("p1", "student", 0), ("p1", "student", 1)} and len(out.records) == 2
        assert out.done(sample(1)) and out.done(("p1", "student", 0)) and not out.done(sample(2))
        with pytest.raises(RecordError, match="duplicate key"):
            out.write(sample(1))
        with pytest.raises(RecordError, match="field 'sample_index'"):
            out.write(sample(True))
        out.write(sample(2))
    assert path.read_bytes().endswith(b"\n")
    assert [r["sample_index"] for r in read_jsonl(path, "sample")] == [0, 1, 2]


def test_resumable_writer_only_partial_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"problem_id": "p1", "sou')
    with ResumableWriter(path, SAMPLE_KEY) as out:
        assert out.records == []
        out.write(sample(0))
    assert read_jsonl(path) == [sample(0)]


def test_resumable_writer_rejects_corrupt_middle_and_duplicate_existing(tmp_path):
    path = write_lines(tmp_path / "s.jsonl", [json.dumps(sample(0)), "{bad", json.dumps(sample(1))])
    with pytest.raises(RecordError, match=r"s\.jsonl:2: malformed JSON"):
        ResumableWriter(path, SAMPLE_KEY)
    path = write_lines(tmp_path / "d.jsonl", [json.dumps(sample(0)), json.dumps(sample(0))])
    with pytest.raises(RecordError, match=r"d\.jsonl:2: duplicate key"):
        ResumableWriter(path, SAMPLE_KEY)


CHILD = textwrap.dedent(
    """
    import sys, time
    from rrtf_lite.records import ResumableWriter, SAMPLE_KEY
    path, n = sys.argv[1], int(sys.argv[2])
    with ResumableWriter(path, SAMPLE_KEY, kind="sample") as out:
        for i in range(n):
            rec = {"problem_id": "p1", "source": "student", "model": "m", "sample_index": i,
                   "response": "x" * 200_000}  # big lines: a kill can land in the middle of one
            if out.done(rec):
                continue
            out.write(rec)
            print(i, flush=True)
            time.sleep(0.02)
    """
)


def test_resumable_writer_survives_sigkill(tmp_path):
    path, n = tmp_path / "samples.jsonl", 60
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen([sys.executable, str(script), str(path), str(n)], stdout=subprocess.PIPE, env=env)
    for _ in range(10):  # wait until some records are written
        child.stdout.readline()
    time.sleep(0.013)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    with ResumableWriter(path, SAMPLE_KEY, kind="sample") as out:
        first = len(out.records)
    assert 10 <= first < n
    done = subprocess.run([sys.executable, str(script), str(path), str(n)], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    records = read_jsonl(path, "sample")
    assert [r["sample_index"] for r in records] == list(range(n))  # none lost, none duplicated
    assert len(done.stdout.split()) == n - first  # the second run wrote only the missing ones


def test_to_dataset_nested_and_ragged():
    pytest.importorskip("datasets")
    execs = [
        {"problem_id": "p", "source": "student", "sample_index": 0, "level": 3, "pass_fraction": 1.0, "score": 4.0},
        {"problem_id": "p", "source": "teacher", "sample_index": 0, "level": 1, "pass_fraction": 0.0, "score": 1.0},
    ]
    execs[0]["tests"] = [{"status": "pass", "error_type": None, "message": None}]
    execs[1]["tests"] = [{"status": "error", "error_type": "ZeroDivisionError", "message": "division by zero"}] * 2
    recs = [validate(e, "execution") for e in execs]
    recs[1]["extra"] = "only in the second"
    ds = to_dataset(recs)
    assert len(ds) == 2 and ds[1]["tests"][1]["error_type"] == "ZeroDivisionError"
    assert ds[0]["tests"][0]["message"] is None and ds[0]["extra"] is None
    assert len(to_dataset([validate(problem(), "problem")])) == 1
    assert len(to_dataset([])) == 0


def test_atomically_written_files_get_the_mode_open_would_give(tmp_path):
    """mkstemp creates 0600 files; results written for others to read (and to commit) must not be private."""
    import os

    from rrtf_lite.records import write_json

    mask = os.umask(0o022)
    os.umask(mask)
    write_json(tmp_path / "summary.json", {"a": 1})
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o666 & ~mask

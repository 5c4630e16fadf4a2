"""Backends: the local HF generator (tiny-random), the OpenAI client against a loopback
server (retries, timeouts, concurrency), the reference teacher and the factory."""

from __future__ import annotations

import importlib.util
import time

import pytest
from _fake_openai_server import FakeOpenAIServer

from rrtf_lite.backends import (
    Completion,
    Generator,
    HFGenerator,
    OpenAIGenerator,
    ReferenceTeacher,
    VLLMGenerator,
    make_generator,
    truncate_at_stop,
)
from rrtf_lite.config import BackendConfig
from rrtf_lite.errors import UserError
from rrtf_lite.programs import extract_code
from rrtf_lite.prompts import build_prompt

ADD = "def add(a, b):\n    return a + b"


def test_truncate_at_stop():
    assert truncate_at_stop("abc\n```\nmore", ["```", "zzz"]) == ("abc\n", True)
    assert truncate_at_stop("abc", ["x"]) == ("abc", False)
    assert truncate_at_stop("abc", None) == ("abc", False)


# ---------------------------------------------------------------- HF generator on the tiny model
@pytest.fixture(scope="module")
def tiny():
    return HFGenerator("tiny-random", batch_size=4)


def test_hf_generator_shapes_seeds_and_tokens(tiny):
    assert isinstance(tiny, Generator)
    prompts = ["Write add(a, b).", "Write a longer prompt so that padding matters here."]
    out = tiny.generate(prompts, n=3, temperature=0.8, top_p=0.95, max_new_tokens=8, seed=1)
    assert [len(row) for row in out] == [3, 3]
    assert all(isinstance(c, Completion) and 0 < c.n_tokens <= 8 for row in out for c in row)
    assert out == tiny.generate(prompts, n=3, temperature=0.8, top_p=0.95, max_new_tokens=8, seed=1)
    other = tiny.generate(prompts, n=3, temperature=0.8, top_p=0.95, max_new_tokens=8, seed=2)
    assert [c.text for r in other for c in r] != [c.text for r in out for c in r]
    assert tiny.tokens_per_s > 0


def test_hf_generator_greedy_is_deterministic_and_batch_independent(tiny):
    prompt = "Write a function that reverses a list."
    alone = tiny.generate([prompt], max_new_tokens=8)[0][0]
    longer = "Another, much longer prompt that needs left padding in the batch."
    batched = tiny.generate([prompt, longer], max_new_tokens=8)
    assert batched[0][0].text == alone.text
    assert alone.finish_reason in ("stop", "length")


def test_hf_generator_stop_strings_and_reuse_of_a_loaded_model(tiny):
    reused = HFGenerator(model=tiny.model, tokenizer=tiny.tokenizer, batch_size=2)
    free = reused.generate(["Say something."], max_new_tokens=12)[0][0]
    assert free.text, "the tiny model always produces some text"
    stop = free.text[2:5]
    cut = reused.generate(["Say something."], max_new_tokens=12, stop=[stop])[0][0]
    assert stop not in cut.text and free.text.startswith(cut.text)
    assert cut.finish_reason == "stop"


def test_hf_generator_needs_a_model():
    with pytest.raises(UserError):
        HFGenerator("")


# ---------------------------------------------------------------- OpenAI-compatible client
@pytest.fixture
def no_openai_env(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def _client(server, **kwargs):
    kwargs = {"request_timeout": 5, **kwargs}
    return OpenAIGenerator("fake-model", base_url=server.base_url, **kwargs)


def test_openai_generates_in_order_with_n(no_openai_env):
    with FakeOpenAIServer(reply=lambda p: f"answer to {p}\nSTOP here") as server:
        gen = _client(server)
        out = gen.generate(["p0", "p1", "p2"], n=2, temperature=0.5, max_new_tokens=20, seed=7, stop=["STOP"])
    assert [[c.text for c in row] for row in out] == [[f"answer to p{i}\n"] * 2 for i in range(3)]
    assert all(c.finish_reason == "stop" and c.n_tokens == 3 for row in out for c in row)
    assert len(server.requests) == 6
    body = server.requests[0]
    assert body["model"] == "fake-model" and body["max_tokens"] == 20 and body["stop"] == ["STOP"]
    assert sorted(r["seed"] for r in server.requests) == [7, 7, 7, 8, 8, 8]


@pytest.mark.parametrize("failure", [429, 500, 503, "slow"])
def test_openai_retries_transient_failures(no_openai_env, failure):
    with FakeOpenAIServer(slow_delay=1.5) as server:
        server.script = [failure]
        gen = _client(server, request_timeout=0.5 if failure == "slow" else 5)
        out = gen.generate(["hello"])
    assert out[0][0].text.startswith("```python")
    assert gen.retries == 1 and len(server.requests) == 2


def test_openai_gives_up_after_max_retries(no_openai_env):
    with FakeOpenAIServer() as server:
        server.default = 500
        gen = _client(server, max_retries=2)
        with pytest.raises(UserError, match="after 2 retries"):
            gen.generate(["hello"])
    assert len(server.requests) == 3


def test_openai_does_not_retry_a_bad_request(no_openai_env):
    with FakeOpenAIServer() as server:
        server.script = [400]
        with pytest.raises(UserError, match="refused"):
            _client(server).generate(["hello"])
    assert len(server.requests) == 1


def test_openai_concurrency_limit_holds(no_openai_env):
    with FakeOpenAIServer(delay=0.15) as server:
        gen = _client(server, concurrency=3)
        started = time.perf_counter()
        out = gen.generate([f"p{i}" for i in range(6)], n=2)
        elapsed = time.perf_counter() - started
    assert sum(len(row) for row in out) == 12
    assert server.max_active == 3, "three workers, twelve slow requests: exactly three at a time"
    assert elapsed < 12 * 0.15, "requests overlapped"


def test_openai_needs_a_key_or_a_base_url(no_openai_env, monkeypatch):
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        OpenAIGenerator("gpt-4o-mini")
    monkeypatch.setenv("MY_KEY", "sk-test")
    assert OpenAIGenerator("gpt-4o-mini", api_key_env="MY_KEY").name == "gpt-4o-mini"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert OpenAIGenerator("local").base_url == "http://127.0.0.1:9/v1"


# ---------------------------------------------------------------- reference teacher, vLLM, factory
PROBLEM = {
    "id": "seed/x",
    "instruction": "Write add(a, b) that returns the sum.",
    "entry_point": "add",
    "signature": "def add(a, b):",
    "reference_solution": ADD,
    "tests": ["assert add(1, 2) == 3"],
}


def test_reference_teacher_answers_known_prompts_only():
    teacher = ReferenceTeacher({PROBLEM["id"]: PROBLEM})
    out = teacher.generate([build_prompt(PROBLEM), "unknown prompt"], n=2)
    assert extract_code(out[0][0].text, "add") == ADD and len(out[0]) == 2
    assert out[1][0] == Completion("", 0, "no_reference")
    assert teacher.answer(dict(PROBLEM, reference_solution="")) == Completion("", 0, "no_reference")


def test_vllm_missing_is_a_clear_error():
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    with pytest.raises(UserError, match=r"rrtf-lite\[vllm\]"):
        VLLMGenerator("tiny-random")


class FakeLLM:
    """Stands in for ``vllm.LLM``: records the sampling params, answers each prompt with ``text``."""

    def __init__(self, text: str):
        self.text, self.params = text, None

    def chat(self, conversations, sampling_params, use_tqdm=False):
        from types import SimpleNamespace as NS

        self.params = sampling_params
        out = NS(text=self.text, token_ids=[1, 2, 3], finish_reason="stop")
        return [NS(outputs=[out] * p.n) for p in sampling_params]


@pytest.fixture
def fake_vllm(monkeypatch):
    """A ``vllm`` module with a ``SamplingParams`` that keeps its keywords, and a generator built around FakeLLM."""
    import sys
    from types import ModuleType, SimpleNamespace

    module = ModuleType("vllm")
    module.SamplingParams = lambda **kwargs: SimpleNamespace(**kwargs)
    monkeypatch.setitem(sys.modules, "vllm", module)

    def make(text: str) -> VLLMGenerator:
        generator = object.__new__(VLLMGenerator)  # no engine: generate only talks to .llm
        generator.name, generator.llm = "fake", FakeLLM(text)
        return generator

    return make


def test_vllm_generator_stops_at_the_first_closed_block_only_when_asked(fake_vllm):
    from rrtf_lite.backends import answer_stop_kwargs
    from rrtf_lite.stopping import FENCE_STOP

    generator = fake_vllm("```python\ndef add(a, b):\n    return a + b\n```\n")
    assert answer_stop_kwargs(generator, [PROBLEM]) == {"entry_points": ["add"]}
    out = generator.generate(["p1", "p2"], n=2, entry_points=["add", None])
    assert [len(row) for row in out] == [2, 2] and out[0][0].text.endswith("```\n")
    params = generator.llm.params
    assert [p.stop for p in params] == [[FENCE_STOP]] * 2 and all(p.include_stop_str_in_output for p in params)
    assert [p.seed for p in params] == [0, 1]
    generator.generate(["p1"])  # without entry points: no stop, as before
    assert generator.llm.params[0].stop is None and not generator.llm.params[0].include_stop_str_in_output


def test_vllm_generator_cuts_the_callers_own_stops_when_the_fence_stays(fake_vllm):
    generator = fake_vllm("```python\ndef add(a, b):\n    return a + b\n# END\n```\n")
    out = generator.generate(["p"], stop=["# END"], entry_points=[None])
    assert generator.llm.params[0].stop[0] == "# END" and len(generator.llm.params[0].stop) == 2
    assert out[0][0].text == "```python\ndef add(a, b):\n    return a + b\n" and out[0][0].finish_reason == "stop"


def test_make_generator(no_openai_env, tiny):
    assert isinstance(make_generator(BackendConfig(kind="reference"), "tiny-random", [PROBLEM]), ReferenceTeacher)
    hf = make_generator(BackendConfig(kind="hf"), "tiny-random", batch_size=2)
    assert isinstance(hf, HFGenerator) and hf.name == "tiny-random" and hf.batch_size == 2
    api = make_generator(BackendConfig(kind="openai", model="m", base_url="http://127.0.0.1:9/v1"), "tiny-random")
    assert isinstance(api, OpenAIGenerator)
    with pytest.raises(UserError, match="model name"):
        make_generator(BackendConfig(kind="openai", base_url="http://127.0.0.1:9/v1"), "tiny-random")
    with pytest.raises(UserError, match="Unknown backend"):
        make_generator(BackendConfig(kind="hff"), "tiny-random")

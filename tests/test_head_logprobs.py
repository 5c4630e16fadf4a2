"""Log-probs from hidden states through the LM head in chunks == the full-logits path, values and gradients."""

import pytest
import torch
from transformers import PretrainedConfig

from rrtf_lite.head_logprobs import hidden_logprobs, logit_transform, model_response_logprobs
from rrtf_lite.loss import IGNORE_INDEX, sequence_logprobs

H, V = 16, 11


def _labels(lengths: list[tuple[int, int]], total: int, left_pad: bool, seed: int = 0) -> torch.Tensor:
    """Rows of (prompt, response) lengths, padded left or right to ``total``; labels only on responses."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.full((len(lengths), total), IGNORE_INDEX)
    for r, (prompt, response) in enumerate(lengths):
        start = (total - prompt - response if left_pad else 0) + prompt
        labels[r, start : start + response] = torch.randint(0, V, (response,), generator=g)
    return labels


@pytest.mark.parametrize("left_pad", [False, True])
@pytest.mark.parametrize("chunk_size", [1, 3, 512])
def test_chunked_head_matches_full_logits_values_and_grads(left_pad, chunk_size):
    torch.manual_seed(0)
    labels = _labels([(2, 5), (3, 1), (1, 7)], total=10, left_pad=left_pad)
    head_a = torch.nn.Linear(H, V, bias=False)
    head_b = torch.nn.Linear(H, V, bias=False)
    head_b.load_state_dict(head_a.state_dict())
    hidden = torch.randn(3, 10, H)
    ha, hb = hidden.clone().requires_grad_(), hidden.clone().requires_grad_()

    got_sum, got_n = hidden_logprobs(ha, labels, head_a, chunk_size=chunk_size)
    ref_sum, ref_n = sequence_logprobs(head_b(hb), labels)
    torch.testing.assert_close(got_sum, ref_sum)
    assert got_n.tolist() == ref_n.tolist() == [5, 1, 7]

    weights = torch.tensor([1.0, -2.0, 0.5])
    (got_sum * weights).sum().backward()
    (ref_sum * weights).sum().backward()
    torch.testing.assert_close(ha.grad, hb.grad)
    torch.testing.assert_close(head_a.weight.grad, head_b.weight.grad)
    # a state whose next label is masked gets no gradient (it is never read)
    next_masked = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX) == IGNORE_INDEX
    assert ha.grad[next_masked].abs().sum() == 0


def test_empty_rows_and_no_response_tokens():
    labels = torch.full((2, 4), IGNORE_INDEX)
    hidden = torch.randn(2, 4, H, requires_grad=True)
    sums, n = hidden_logprobs(hidden, labels, torch.nn.Linear(H, V))
    assert sums.tolist() == [0.0, 0.0] and n.tolist() == [0, 0]


@pytest.mark.parametrize(
    "attrs",
    [{"final_logit_softcapping": 3.0}, {"logit_scale": 0.25}, {"logits_scaling": 4.0}, {}],
    ids=["gemma-softcap", "cohere-scale", "granite-scaling", "none"],
)
def test_logit_post_processing_from_config(attrs):
    config = PretrainedConfig(**attrs)
    transform = logit_transform(config)
    x = torch.randn(5, V) * 10
    expected = x.clone()
    if "logit_scale" in attrs:
        expected = expected * attrs["logit_scale"]
    if "logits_scaling" in attrs:
        expected = expected / attrs["logits_scaling"]
    if "final_logit_softcapping" in attrs:
        cap = attrs["final_logit_softcapping"]
        expected = torch.tanh(expected / cap) * cap
    torch.testing.assert_close(transform(x), expected)
    labels = _labels([(1, 3)], total=5, left_pad=False)
    head = torch.nn.Linear(H, V)
    hidden = torch.randn(1, 5, H)
    got, _ = hidden_logprobs(hidden, labels, head, transform, chunk_size=2)
    ref, _ = sequence_logprobs(transform(head(hidden)), labels)
    torch.testing.assert_close(got, ref)


# ---------------------------------------------------------------- real models (tiny-random: tied embeddings)
def _model_batch(tokenizer, left_pad: bool):
    texts = [("Write add(x).", "def add(x):\n    return x + 1"), ("Hi", "print('a much longer answer here')")]
    rows, labels = [], []
    for prompt, response in texts:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(p + r)
        labels.append([IGNORE_INDEX] * len(p) + r)
    width = max(len(r) for r in rows)

    def pad(seq, value):
        fill = [value] * (width - len(seq))
        return fill + seq if left_pad else seq + fill

    return (
        torch.tensor([pad(r, tokenizer.pad_token_id) for r in rows]),
        torch.tensor([pad([1] * len(r), 0) for r in rows]),
        torch.tensor([pad(lab, IGNORE_INDEX) for lab in labels]),
    )


def _compare_with_full_logits(model, tokenizer, left_pad: bool, chunk_size: int = 7):
    ids, attention, labels = _model_batch(tokenizer, left_pad)
    trainable = [p for p in model.parameters() if p.requires_grad]
    weights = torch.tensor([1.0, -0.5])

    got_sum, got_n, outputs = model_response_logprobs(model, ids, attention, labels, chunk_size=chunk_size)
    assert outputs.logits.shape[1] == 1  # no [rows, T, V] logits were built
    got_grads = torch.autograd.grad((got_sum * weights).sum(), trainable)

    logits = model(input_ids=ids, attention_mask=attention, use_cache=False).logits
    ref_sum, ref_n = sequence_logprobs(logits, labels)
    ref_grads = torch.autograd.grad((ref_sum * weights).sum(), trainable)

    torch.testing.assert_close(got_sum, ref_sum, rtol=1e-5, atol=1e-4)
    assert got_n.tolist() == ref_n.tolist()
    assert len(got_grads) > 0
    for a, b in zip(got_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("left_pad", [False, True])
def test_peft_lora_with_lora_on_a_tied_lm_head(left_pad):
    from peft import LoraConfig, get_peft_model

    from rrtf_lite.models import load_model

    model, tokenizer = load_model("tiny-random", quantization="none", dtype=torch.float32)
    assert model.config.tie_word_embeddings
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj", "lm_head"], lora_dropout=0.0)
    model = get_peft_model(model, config)
    with torch.no_grad():  # LoRA B starts at zero: make the adapters change the output, so grads are non-trivial
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    _compare_with_full_logits(model, tokenizer, left_pad)


def test_qlora_4bit_base_as_the_trainer_sets_it_up():
    from rrtf_lite.config import TrainConfig
    from rrtf_lite.train import setup_model

    model, tokenizer = setup_model("tiny-random", TrainConfig(finetune="qlora", lora_dropout=0.0))
    assert getattr(model.get_base_model(), "is_loaded_in_4bit", False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    _compare_with_full_logits(model, tokenizer, left_pad=False)

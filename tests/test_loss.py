"""The RRTF / RRHF losses against hand computations on small tensors, and RRHF's known bugs."""

import math
import warnings

import pytest
import torch

from rrtf_lite.loss import (
    IGNORE_INDEX,
    length_normalised,
    ranking_loss,
    rrtf_loss,
    sequence_logprobs,
    token_logprobs,
)

V = 7


def _batch(prompt_len: int, response_lens: list[int], total: int, seed: int = 0):
    """Random logits and labels: prompt_len masked tokens, then a response, then padding (all masked)."""
    g = torch.Generator().manual_seed(seed)
    rows = len(response_lens)
    logits = torch.randn(rows, total, V, generator=g)
    labels = torch.full((rows, total), IGNORE_INDEX)
    for r, n in enumerate(response_lens):
        labels[r, prompt_len : prompt_len + n] = torch.randint(0, V, (n,), generator=g)
    return logits, labels


def _reference_logp(logits, labels):
    """Straightforward log_softmax reference: per-row sum over response tokens and their count."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    sums, counts = [], []
    for r in range(labels.shape[0]):
        total, n = 0.0, 0
        for t in range(1, labels.shape[1]):
            if labels[r, t] != IGNORE_INDEX:
                total = total + logp[r, t - 1, labels[r, t]]
                n += 1
        sums.append(total)
        counts.append(n)
    return torch.stack([torch.as_tensor(s) for s in sums]), torch.tensor(counts)


def test_logsumexp_path_equals_log_softmax_values_and_grads():
    logits, labels = _batch(3, [4, 2, 5], total=10)
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    got_sum, got_n = sequence_logprobs(a, labels, chunk_size=4)  # chunks that do not divide the rows
    ref_sum, ref_n = _reference_logp(b, labels)
    torch.testing.assert_close(got_sum, ref_sum)
    assert got_n.tolist() == ref_n.tolist() == [4, 2, 5]
    weights = torch.tensor([1.0, -2.0, 0.5])
    (got_sum * weights).sum().backward()
    (ref_sum * weights).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_half_precision_logits_give_float32_logprobs_and_grads():
    logits, labels = _batch(2, [3, 3], total=6)
    half = logits.to(torch.bfloat16).requires_grad_()
    got, _ = sequence_logprobs(half, labels)
    assert got.dtype == torch.float32
    ref, _ = _reference_logp(half.detach().float(), labels)
    torch.testing.assert_close(got, ref)
    got.sum().backward()
    assert half.grad.dtype == torch.bfloat16


def test_token_logprobs_matches_gather_of_log_softmax():
    logits = torch.randn(2, 3, V)
    targets = torch.randint(0, V, (2, 3))
    ref = torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
    torch.testing.assert_close(token_logprobs(logits, targets, chunk_size=1), ref)


def test_labels_not_modified_in_place():
    logits, labels = _batch(3, [4, 2], total=9)
    before = labels.clone()
    rrtf_loss(logits, labels, torch.tensor([[2.0, 1.0]]), mode="pair")
    sequence_logprobs(logits, labels)
    assert torch.equal(labels, before)


def test_normalisation_uses_each_responses_own_length():
    # two responses of 2 and 6 tokens padded to the same width: RRHF issue #37 divided both by the padded length
    logits, labels = _batch(2, [2, 6], total=12)
    sums, counts = sequence_logprobs(logits, labels)
    p = length_normalised(sums, counts)
    ref_sum, _ = _reference_logp(logits, labels)
    torch.testing.assert_close(p, ref_sum / torch.tensor([2.0, 6.0]))
    out = rrtf_loss(logits, labels, torch.tensor([[3.0, 1.0]]), mode="pair")
    torch.testing.assert_close(out.p.view(-1), p)


def test_pair_loss_by_hand_with_gap_weight():
    # p for [teacher, student] per prompt, set directly to exercise the rank term
    p = torch.tensor([[-2.0, -1.0], [-1.0, -3.0], [-0.5, -0.2]])
    scores = torch.tensor([[4.0, 1.0], [4.0, 0.0], [2.25, 2.0]])  # last one: a tie broken by the 0.25 gap
    loss, acc, n = ranking_loss(p, scores, weighted=True)
    # prompt 0: gap 3 * (p_stu - p_tea = 1) = 3; prompt 1: ordered correctly -> 0; prompt 2: 0.25 * 0.3
    expected = (3.0 + 0.0 + 0.25 * 0.3) / 3
    assert loss.item() == pytest.approx(expected)
    assert n.item() == 3
    assert acc.item() == pytest.approx(1 / 3)


def test_pair_mode_total_loss_is_rank_plus_teacher_sft():
    logits, labels = _batch(2, [3, 4, 5, 2], total=9, seed=1)  # 2 prompts x [teacher, student]
    scores = torch.tensor([[4.0, 1.0], [2.5, 2.0]])
    out = rrtf_loss(logits, labels, scores, mode="pair")
    sums, counts = _reference_logp(logits, labels)
    p = (sums / counts).view(2, 2)
    rank = sum((scores[g, 0] - scores[g, 1]) * max(0.0, p[g, 1] - p[g, 0]) for g in range(2)) / 2
    sft = -(sums[0] + sums[2]) / (counts[0] + counts[2])  # teacher rows, token mean
    torch.testing.assert_close(out.rank_loss, torch.as_tensor(rank, dtype=torch.float32))
    torch.testing.assert_close(out.sft_loss, sft)
    torch.testing.assert_close(out.loss, out.rank_loss + out.sft_loss)


def test_pair_mode_ignores_pairs_where_teacher_is_not_better():
    p = torch.tensor([[-3.0, -1.0]])
    for scores in ([[1.0, 1.0]], [[0.0, 2.0]]):
        loss, acc, n = ranking_loss(p, torch.tensor(scores), weighted=True)
        if scores[0][1] > scores[0][0]:  # student better: the pair counts the other way round
            assert loss.item() == 0.0 and n.item() == 1
        else:
            assert loss.item() == 0.0 and n.item() == 0 and math.isnan(acc.item())


def test_listwise_counts_every_misordered_pair():
    # scores ascending 0 < 1 < 2 < 3 but p fully reversed: all 6 ordered pairs are wrong.
    p = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    scores = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    loss, acc, n = ranking_loss(p, scores, weighted=False)
    expected = sum(max(0.0, p[0, i] - p[0, j]) for i in range(4) for j in range(4) if scores[0, i] < scores[0, j])
    assert expected == 10.0
    assert loss.item() == pytest.approx(expected)
    assert n.item() == 6 and acc.item() == 0.0
    # RRHF's code used only row 0 of the pair matrix: put the best response first and check the others still count
    p2 = torch.tensor([[9.0, 1.0, 3.0]])
    scores2 = torch.tensor([[5.0, 2.0, 1.0]])  # response 1 > response 2 in score but p says the opposite
    loss2, _, _ = ranking_loss(p2, scores2)
    assert loss2.item() == pytest.approx(2.0)


def test_listwise_ties_contribute_nothing_and_padding_rows_are_ignored():
    p = torch.tensor([[1.0, 5.0, -2.0, 100.0]])
    scores = torch.tensor([[2.0, 2.0, 2.0, 0.0]])
    valid = torch.tensor([[True, True, True, False]])  # the 4th row is padding
    loss, acc, n = ranking_loss(p, scores, valid)
    assert loss.item() == 0.0 and n.item() == 0


def test_listwise_sft_on_best_response_and_unweighted():
    logits, labels = _batch(1, [2, 3, 4], total=7, seed=2)
    scores = torch.tensor([[1.0, 4.0, 0.0]])
    out = rrtf_loss(logits, labels, scores, mode="listwise")
    sums, counts = _reference_logp(logits, labels)
    p = sums / counts
    torch.testing.assert_close(out.sft_loss, -sums[1] / counts[1])
    rank = sum(max(0.0, p[i] - p[j]) for i in range(3) for j in range(3) if scores[0, i] < scores[0, j])
    torch.testing.assert_close(out.rank_loss, torch.as_tensor(rank, dtype=torch.float32))


@pytest.mark.parametrize("mode", ["pair", "listwise"])
def test_gradients_push_better_up_and_worse_down(mode):
    logits, labels = _batch(2, [3, 3], total=6, seed=3)
    logits = logits.requires_grad_()
    scores = torch.tensor([[3.0, 1.0]])
    sums, counts = sequence_logprobs(logits, labels)
    p = length_normalised(sums, counts).view(1, 2)
    # make the worse response look more likely so the hinge is active
    p = p + torch.tensor([[0.0, 10.0]])
    loss, _, _ = ranking_loss(p, scores, weighted=mode == "pair")
    assert loss.item() > 0
    p_better, p_worse = p[0, 0], p[0, 1]
    g_better, g_worse = torch.autograd.grad(loss, p, retain_graph=True)[0][0]
    assert g_better < 0 < g_worse  # gradient descent raises p_better and lowers p_worse
    # and one SGD step on the logits moves the real p that way
    logits.grad = None
    loss.backward()
    with torch.no_grad():
        new_p = length_normalised(*sequence_logprobs(logits - 1.0 * logits.grad, labels))
    assert new_p[0] > p_better.detach() and new_p[1] < p_worse.detach() - 10.0
    if mode == "pair":  # gap weight 2 doubles the gradient
        assert g_worse.item() == pytest.approx(2.0 / 1)


def test_sft_weight_zero_warns_and_negative_raises():
    logits, labels = _batch(1, [2, 2], total=5)
    with pytest.warns(UserWarning, match="ablation"):
        out = rrtf_loss(logits, labels, torch.tensor([[2.0, 1.0]]), sft_weight=0.0)
    torch.testing.assert_close(out.loss, out.rank_loss)
    with pytest.raises(ValueError):
        rrtf_loss(logits, labels, torch.tensor([[2.0, 1.0]]), sft_weight=-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rrtf_loss(logits, labels, torch.tensor([[2.0, 1.0]]))  # the default warns about nothing


def test_shape_errors():
    logits, labels = _batch(1, [2, 2, 2], total=5)
    with pytest.raises(ValueError, match="pair mode"):
        rrtf_loss(logits, labels, torch.ones(1, 3), mode="pair")
    with pytest.raises(ValueError, match="rows"):
        rrtf_loss(logits, labels, torch.ones(2, 2), mode="pair")

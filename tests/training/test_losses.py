"""Losses against values worked out by hand."""

import math

import pytest
import torch

from aestimo.training.losses import (
    balanced_ce,
    bradley_terry_loss,
    emd_loss,
    emd_per_sample,
    expert_loss,
    expert_loss_terms,
)

TEN = torch.arange(1.0, 11.0)


def test_emd_two_bins_by_hand():
    # CDFs [1, 1] and [0, 1]: |diff| = [1, 0] -> sqrt(mean([1, 0])) = sqrt(0.5)
    p = torch.tensor([[1.0, 0.0]])
    q = torch.tensor([[0.0, 1.0]])
    assert emd_loss(p, q).item() == pytest.approx(math.sqrt(0.5))
    # r = 1: mean |diff| = 0.5
    assert emd_loss(p, q, r=1).item() == pytest.approx(0.5)


def test_emd_three_bins_batch_mean():
    p = torch.tensor([[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    q = torch.tensor([[0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    # row 0: CDFs [.5, 1, 1] vs [0, .5, 1] -> diffs [.5, .5, 0] -> sqrt((.25 + .25) / 3)
    row0 = math.sqrt(0.5 / 3)
    assert emd_per_sample(p, q).tolist() == pytest.approx([row0, 0.0])
    assert emd_loss(p, q).item() == pytest.approx(row0 / 2)


def test_emd_gradient_is_finite_at_zero():
    p = torch.tensor([[0.2, 0.8]], requires_grad=True)
    emd_loss(p, p.detach().clone()).backward()
    assert torch.isfinite(p.grad).all()


def test_balanced_ce_by_hand():
    logits = torch.tensor([[0.0, 0.0]])
    prior = torch.tensor([0.8, 0.2])
    # adjusted logits = log prior -> softmax = prior -> CE for class 1 = -log 0.2
    assert balanced_ce(logits, torch.tensor([1]), prior).item() == pytest.approx(-math.log(0.2))
    # counts work as well as probabilities
    assert balanced_ce(logits, torch.tensor([0]), torch.tensor([8.0, 2.0])).item() == pytest.approx(-math.log(0.8))
    # uniform prior = plain CE
    x, y = torch.randn(4, 3), torch.tensor([0, 2, 1, 1])
    assert balanced_ce(x, y, torch.ones(3)).item() == pytest.approx(torch.nn.functional.cross_entropy(x, y).item())


def test_bradley_terry_three_items_with_a_tie():
    pred = torch.tensor([0.0, 1.0, 2.0], requires_grad=True)
    target = torch.tensor([1.0, 2.0, 2.0])
    # untied ordered pairs with target_i > target_j: (1, 0) diff 1, (2, 0) diff 2; (1, 2) tied
    expected = (math.log1p(math.exp(-1)) + math.log1p(math.exp(-2))) / 2
    loss = bradley_terry_loss(pred, target)
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert pred.grad[0] > 0 and pred.grad[1] < 0 and pred.grad[2] < 0


def test_bradley_terry_all_tied_is_zero_with_grad():
    pred = torch.tensor([0.3, -1.0], requires_grad=True)
    loss = bradley_terry_loss(pred, torch.tensor([2.0, 2.0]))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(pred.grad, torch.zeros(2))


def test_expert_loss_with_distribution():
    probs = torch.zeros(1, 10)
    probs[0, 4] = 1.0  # predicts 5 on the ten template
    dist = torch.zeros(1, 10)
    dist[0, 5] = 1.0  # votes all on 6
    # CDF diff is 1 on bin 4 only -> EMD = sqrt(1/10); MSE = (5 - 6)^2 = 1
    loss = expert_loss(probs, None, torch.tensor([6.0]), dist, TEN)
    assert loss.item() == pytest.approx(math.sqrt(0.1) + 10.0)


def test_expert_loss_without_distribution_is_mse():
    probs = torch.full((2, 10), 0.1)  # expectation 5.5
    loss = expert_loss(probs, None, torch.tensor([5.5, 7.5]), None, TEN)
    assert loss.item() == pytest.approx((0.0 + 4.0) / 2)


def test_expert_loss_mixed_batch_and_bal_ce():
    probs = torch.zeros(2, 10)
    probs[:, 4] = 1.0
    dist = torch.full((2, 10), float("nan"))
    dist[0] = 0.0
    dist[0, 5] = 1.0  # sample 0 has votes, sample 1 has none
    target = torch.tensor([6.0, 7.0])
    terms = expert_loss_terms(probs, None, target, dist, TEN)
    per = [math.sqrt(0.1) + 10 * 1.0, 4.0]
    assert terms["loss"].item() == pytest.approx(sum(per) / 2)
    assert terms["frac_dist"].item() == 0.5
    # Bal-CE on the head's bin logits, target = nearest template bin (6 -> bin 5, 7 -> bin 6)
    logits = torch.zeros(2, 10)
    prior = torch.ones(10)
    with_bal = expert_loss(probs, logits, target, dist, TEN, class_prior=prior)
    assert with_bal.item() == pytest.approx(sum(per) / 2 + 0.001 * math.log(10))
    # auxiliary scale classifier: -1 marks a missing class label
    aux = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    with_aux = expert_loss(
        probs, logits, target, dist, TEN, aux_logits=aux, aux_target=torch.tensor([1, -1]), class_prior=[0.5, 0.5]
    )
    assert with_aux.item() == pytest.approx((per[0] + 0.001 * math.log(2) + per[1]) / 2)


def test_expert_loss_gradients_finite_with_nan_rows():
    logits = torch.randn(3, 10, requires_grad=True)
    s = torch.sigmoid(logits)
    probs = s / s.sum(-1, keepdim=True)
    dist = torch.softmax(torch.randn(3, 10), -1)
    dist[1] = float("nan")
    expert_loss(probs, logits, torch.tensor([3.0, 5.0, 8.0]), dist, TEN, class_prior=torch.ones(10)).backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", ["rank", "mse"])
def test_person_losses_closed_form_terms_are_autograds(name):
    """The value, gradient and Hessian that instant's Newton solve uses are the loss's own, by autograd."""
    from aestimo.training.losses import person_loss

    loss = person_loss(name)
    gen = torch.Generator().manual_seed(0)
    y = torch.tensor([1.0, 3.0, 2.0, 3.0, 5.0], dtype=torch.float64)  # a tie: not a pair
    pred = torch.randn(5, generator=gen, dtype=torch.float64)
    terms = loss.terms(y)
    torch.testing.assert_close(loss.value(pred, y, terms), loss(pred, y))
    grad = torch.autograd.functional.jacobian(lambda p: loss(p, y), pred)
    hess = torch.autograd.functional.hessian(lambda p: loss(p, y), pred)
    torch.testing.assert_close(loss.grad(pred, y, terms), grad)
    torch.testing.assert_close(loss.hessian(pred, y, terms), hess)


def test_rank_loss_has_nothing_to_fit_on_equal_ratings_and_unknown_losses_are_named():
    from aestimo.training.losses import person_loss

    assert person_loss("rank").terms(torch.full((4,), 2.0)) is None
    with pytest.raises(KeyError, match="rank, mse"):
        person_loss("hinge")

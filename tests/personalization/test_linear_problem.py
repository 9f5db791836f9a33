"""Instant's linear problem: Newton in the span of the support's features reaches the minimum."""

import torch

from aestimo.training.losses import person_loss
from aestimo.personalization.methods.linear_problem import LinearObjective, LinearProblem, _lbfgs



def _solve(base, phi, at, y, init, loss="rank", l2=10.0, max_iter=200):  # loss by name
    """The instant problem of one support set, solved from ``init`` (per layer, or per source when 1-D)."""
    return LinearProblem.of(base, phi, at, layerwise=init.dim() == 2).solve(y, init, person_loss(loss), l2, max_iter)

def problem(k=40, n=3, L=5, seed=0, ties=False):
    g = torch.Generator().manual_seed(seed)
    base, phi = torch.randn(k, generator=g), torch.randn(k, n, L, generator=g)
    at, init = torch.full((n, L), 1 / n), torch.rand(n, L, generator=g)
    y = torch.randn(k, generator=g)
    if ties:
        y = y.round()
    return base, phi, at, y, init


def test_newton_reaches_the_minimum_for_both_losses_layerwise_and_per_source():
    for loss in ("rank", "mse"):
        for layerwise in (True, False):
            for ties in (False, True):
                base, phi, at, y, init = problem(seed=int(ties), ties=ties)
                init = init if layerwise else init.mean(1)
                lam = _solve(base, phi, at, y, init, loss, l2=2.0)
                p = LinearProblem.of(base, phi, at, layerwise)
                objective = LinearObjective(p.offset, p.feats, y.double(), init.double().flatten(), person_loss(loss), 2.0)
                value, grad = objective(lam.double().flatten())
                assert grad.abs().max() < 1e-5, (loss, layerwise, ties)  # float32 λ: the rounding's gradient
                reference = _lbfgs(objective, 500)
                assert value <= objective(reference)[0] + 1e-7
                torch.testing.assert_close(lam, reference.float().reshape(init.shape), rtol=1e-4, atol=1e-5)


def test_a_fold_shares_the_kernel_and_equals_a_fresh_problem_on_its_rows():
    base, phi, at, y, init = problem(k=30, seed=2)
    rows = torch.tensor([0, 3, 4, 9, 17, 29])
    whole = LinearProblem.of(base, phi, at)
    fresh = LinearProblem.of(base[rows], phi[rows], at)
    torch.testing.assert_close(whole.subset(rows).kernel, fresh.kernel)
    torch.testing.assert_close(whole.subset(rows).solve(y[rows], init, person_loss("rank"), 1.0), fresh.solve(y[rows], init, person_loss("rank"), 1.0))


def test_without_a_pull_lbfgs_moves_from_the_initialisation():
    base, phi, at, y, init = problem(seed=3)
    far = _solve(base, phi, at, y, init, "rank", l2=0.0, max_iter=30)
    assert (far - init).abs().max() > 1e-2

"""Instant's linear problem: a person's support scored linearly in λ, and its solution.

With the support's features (:mod:`aestimo.personalization.methods.linearized`) the
score of image ``b`` is ``offset[b] + X[b] · λ`` and instant minimises

    J(λ) = loss(offset + X λ, y) + (l2 / k) ‖λ − λ0‖²

with the exact method's loss (Bradley–Terry over the ordered pairs with
``y_i > y_j``, or MSE). The pull makes ``J`` strictly convex, and at its
minimum ``λ − λ0 = −Xᵀ g / (2 l2 / k)`` lies in the span of the ``k`` feature
rows: ``λ = λ0 + Xᵀ α``. Newton's method in ``α`` (``k`` numbers, not
``n × L``) needs only the kernel ``K = X Xᵀ``; its step is Newton's step in λ
(``(2c + Xᵀ H X)⁻¹ Xᵀ = Xᵀ (2c + H K)⁻¹``), and with a backtracking line search
it reaches the minimum to rounding in a handful of iterations, where L-BFGS
took a few dozen evaluations. Cross-validation reuses one kernel for every fold
(:meth:`LinearProblem.subset`). With no pull (``l2 = 0``) the minimum may not
exist (separable ratings); L-BFGS then runs its iterations from λ0.
"""

from __future__ import annotations

import torch

from aestimo.training.losses import PersonLoss


class LinearObjective:
    """``loss(offset + X λ, y) + (l2 / k) ‖λ − λ0‖²`` over flat λ, with its gradient written out
    (the no-pull solve, and the tests' check of the objective against autograd)."""

    def __init__(self, offset: torch.Tensor, feats: torch.Tensor, y: torch.Tensor, lam0: torch.Tensor, loss: PersonLoss, l2: float):
        self.offset, self.feats, self.y, self.lam0, self.loss = offset, feats, y, lam0, loss
        self.pull = l2 / len(y)
        self.terms = loss.terms(y)

    def __call__(self, lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The value and the gradient at flat ``lam``."""
        pred = self.offset + self.feats @ lam
        if self.terms is None:  # nothing to fit: only the pull
            value, g_pred = pred.sum() * 0.0, torch.zeros_like(pred)
        else:
            value, g_pred = self.loss.value(pred, self.y, self.terms), self.loss.grad(pred, self.y, self.terms)
        diff = lam - self.lam0
        return value + self.pull * diff.pow(2).sum(), self.feats.T @ g_pred + 2.0 * self.pull * diff


class LinearProblem:
    """A support's linear scores ``offset + X λ`` (float64) and the kernel ``K = X Xᵀ``."""

    def __init__(self, offset: torch.Tensor, feats: torch.Tensor, kernel: torch.Tensor | None = None):
        self.offset, self.feats = offset, feats
        self.kernel = feats @ feats.T if kernel is None else kernel

    @classmethod
    def of(cls, base: torch.Tensor, phi: torch.Tensor, at: torch.Tensor, layerwise: bool = True) -> LinearProblem:
        """From the support's base scores and features at ``at``; one coefficient per source when not
        ``layerwise`` (its features are φ summed over layers)."""
        phi = phi.double()
        offset = base.double() - (at.double() * phi).flatten(1).sum(1)
        return cls(offset, (phi if layerwise else phi.sum(-1)).flatten(1))

    def subset(self, rows: torch.Tensor) -> LinearProblem:
        """The problem of some support images (a fold), sharing this kernel."""
        return LinearProblem(self.offset[rows], self.feats[rows], self.kernel[rows][:, rows])

    def solve(self, y: torch.Tensor, init: torch.Tensor, loss: PersonLoss, l2: float = 10.0, max_iter: int = 200) -> torch.Tensor:
        """λ minimising ``J`` from ``init`` (λ0, shaped ``(n, L)`` or ``(n,)``), as float32 in ``init``'s shape."""
        y, lam0 = y.double(), init.detach().double().flatten()
        if l2 > 0:
            alpha = _newton(self.offset + self.feats @ lam0, self.kernel, y, loss, l2 / len(y), max_iter)
            lam = lam0 + self.feats.T @ alpha
        else:
            lam = _lbfgs(LinearObjective(self.offset, self.feats, y, lam0, loss, 0.0), max_iter)
        return lam.float().reshape(init.shape)


def _newton(p0: torch.Tensor, kernel: torch.Tensor, y: torch.Tensor, loss: PersonLoss, pull: float, max_iter: int) -> torch.Tensor:
    """α minimising ``loss(p0 + K α, y) + pull · αᵀ K α`` by damped Newton steps (Armijo backtracking)."""
    k = len(y)
    alpha = torch.zeros(k, dtype=torch.float64)
    terms = loss.terms(y)
    if terms is None:
        return alpha  # nothing to fit: λ0

    def value(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ka = kernel @ a
        pred = p0 + ka
        return loss.value(pred, y, terms) + pull * (a @ ka), pred, ka

    f, pred, _ = value(alpha)
    eye = torch.eye(k, dtype=torch.float64)
    for _ in range(max_iter):
        g, hess = loss.grad(pred, y, terms), loss.hessian(pred, y, terms)
        grad = g + 2.0 * pull * alpha  # ∇_λ J = Xᵀ grad
        step = torch.linalg.solve(hess @ kernel + 2.0 * pull * eye, -grad)
        slope = grad @ (kernel @ step)  # ∇_λ J · Δλ < 0
        if -slope <= 1e-15 * max(1.0, abs(float(f))):
            break
        t = 1.0
        while True:
            f_new, pred_new, _ = value(alpha + t * step)
            if f_new <= f + 1e-4 * t * slope or t < 1e-10:
                break
            t *= 0.5
        if t < 1e-10:
            break
        alpha, f, pred = alpha + t * step, f_new, pred_new
    return alpha


def _lbfgs(objective: LinearObjective, max_iter: int) -> torch.Tensor:
    lam = objective.lam0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([lam], lr=1.0, max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-14,
                            history_size=20, line_search_fn="strong_wolfe")

    @torch.no_grad()
    def closure() -> torch.Tensor:
        value, grad = objective(lam)
        lam.grad = grad
        return value

    opt.step(closure)
    return lam.detach()

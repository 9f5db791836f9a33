"""Training losses (pure torch): EMD, balanced CE, Bradley–Terry, and the expert loss.

Experts train with ``EMD + 10 * MSE + 0.001 * BalCE`` where a vote
distribution exists and ``MSE + 0.001 * BalCE`` otherwise; personalization
trains λ with the Bradley–Terry pairwise rank loss.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "balanced_ce",
    "bradley_terry_loss",
    "emd_loss",
    "emd_per_sample",
    "expert_loss",
    "expert_loss_terms",
    "nearest_bin",
]


def emd_per_sample(p: torch.Tensor, q: torch.Tensor, r: float = 2) -> torch.Tensor:
    """EMD between distributions over ordered bins (last dim), one value per sample.

    ``(mean_k |CDF_p[k] - CDF_q[k]|^r)^(1/r)`` (NIMA, Talebi & Milanfar 2018).
    The root is taken safely: identical rows give 0 with a zero (not NaN) gradient.
    """
    cdf_diff = torch.cumsum(p, dim=-1) - torch.cumsum(q, dim=-1)
    m = cdf_diff.abs().pow(r).mean(dim=-1)
    positive = m > 0
    safe = torch.where(positive, m, torch.ones_like(m))
    return torch.where(positive, safe.pow(1.0 / r), torch.zeros_like(m))


def emd_loss(p: torch.Tensor, q: torch.Tensor, r: float = 2) -> torch.Tensor:
    """Mean over the batch of :func:`emd_per_sample`."""
    return emd_per_sample(p, q, r).mean()


def _log_prior(class_prior: torch.Tensor | np.ndarray, like: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    prior = torch.as_tensor(class_prior, dtype=like.dtype, device=like.device)
    prior = prior / prior.sum()  # class counts are fine too
    return prior.clamp_min(eps).log()


def balanced_ce(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_prior: torch.Tensor | np.ndarray,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """Balanced-softmax / logit-adjusted CE: ``CE(logits + log(prior), target)``.

    ``class_prior`` is the training class frequency (counts or probabilities,
    normalised here). Adding ``log prior`` during training makes the raw
    ``logits`` an estimate for a class-balanced label distribution (Ren et al.
    2020; Menon et al. 2021).
    """
    return F.cross_entropy(
        logits + _log_prior(class_prior, logits), target.long(), reduction=reduction, ignore_index=ignore_index
    )


def bradley_terry_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pairwise Bradley–Terry rank loss over a batch.

    Mean over every ordered pair ``(i, j)`` with ``target_i > target_j`` (ties
    skipped) of ``-log sigmoid(pred_i - pred_j) = softplus(pred_j - pred_i)``.
    Returns a zero that still carries a graph when no pair is untied.
    """
    pred, target = pred.reshape(-1), target.reshape(-1).to(pred.dtype)
    diff = pred[:, None] - pred[None, :]
    mask = target[:, None] > target[None, :]
    if not bool(mask.any()):
        return pred.sum() * 0.0
    return F.softplus(-diff[mask]).mean()


class PersonLoss:
    """How a person's ratings ``y`` are fitted by predictions ``pred`` (1-D, one per rated image):
    called, the loss to back-propagate through; for solvers that work in closed form (instant's
    linear problem), its value, gradient and Hessian in the predictions, from :meth:`terms`."""

    name: str

    def __call__(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def terms(self, y: torch.Tensor):
        """What the closed-form functions need from ``y`` (computed once per support), or None
        when ``y`` gives nothing to fit (every prediction is as good as any other)."""
        raise NotImplementedError

    def value(self, pred: torch.Tensor, y: torch.Tensor, terms) -> torch.Tensor:
        raise NotImplementedError

    def grad(self, pred: torch.Tensor, y: torch.Tensor, terms) -> torch.Tensor:
        """∂ value / ∂ pred."""
        raise NotImplementedError

    def hessian(self, pred: torch.Tensor, y: torch.Tensor, terms) -> torch.Tensor:
        """∂² value / ∂ pred², ``(k, k)``."""
        raise NotImplementedError


class RankLoss(PersonLoss):
    """Bradley–Terry over the ordered pairs ``y_i > y_j`` (:func:`bradley_terry_loss`): only the
    order of a person's ratings counts, not their scale."""

    name = "rank"

    def __call__(self, pred, y):
        return bradley_terry_loss(pred, y)

    def terms(self, y):
        i, j = torch.nonzero(y[:, None] > y[None, :], as_tuple=True)
        return (i, j) if len(i) else None  # all ratings equal: nothing to rank

    def value(self, pred, y, terms):
        i, j = terms
        return F.softplus(-(pred[i] - pred[j])).mean()

    def grad(self, pred, y, terms):
        i, j = terms
        s = torch.sigmoid(-(pred[i] - pred[j]))
        return torch.zeros_like(pred).index_add_(0, i, -s / len(i)).index_add_(0, j, s / len(i))

    def hessian(self, pred, y, terms):
        i, j = terms
        s = torch.sigmoid(-(pred[i] - pred[j]))
        h = s * (1 - s) / len(i)  # the pair's curvature: h (e_i − e_j)(e_i − e_j)ᵀ
        k = len(pred)
        hess = torch.zeros(k, k, dtype=pred.dtype)
        hess.index_put_((i, j), -h, accumulate=True)
        hess.index_put_((j, i), -h, accumulate=True)
        hess.diagonal().add_(torch.zeros(k, dtype=pred.dtype).index_add_(0, i, h).index_add_(0, j, h))
        return hess


class MseLoss(PersonLoss):
    """Mean squared error to the ratings (their scale counts too)."""

    name = "mse"

    def __call__(self, pred, y):
        return (pred - y).pow(2).mean()

    def terms(self, y):
        return ()

    def value(self, pred, y, terms):
        return (pred - y).pow(2).mean()

    def grad(self, pred, y, terms):
        return 2.0 * (pred - y) / len(pred)

    def hessian(self, pred, y, terms):
        return torch.eye(len(pred), dtype=pred.dtype) * (2.0 / len(pred))


#: The losses a person's fit can take, by the name its options give (``loss: rank | mse``).
PERSON_LOSSES: dict[str, PersonLoss] = {loss.name: loss for loss in (RankLoss(), MseLoss())}


def person_loss(name: str) -> PersonLoss:
    """The person loss named ``name`` (``rank`` or ``mse``)."""
    if name not in PERSON_LOSSES:
        raise KeyError(f"unknown person loss {name!r}; known: {', '.join(PERSON_LOSSES)}")
    return PERSON_LOSSES[name]


def nearest_bin(score: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """Index of the template bin nearest to each score (ties go to the lower bin)."""
    return (score[..., None] - template).abs().argmin(dim=-1)


def expert_loss_terms(
    probs: torch.Tensor,
    logits: torch.Tensor | None,
    target_score: torch.Tensor,
    target_dist: torch.Tensor | None,
    template: torch.Tensor | np.ndarray,
    aux_logits: torch.Tensor | None = None,
    aux_target: torch.Tensor | None = None,
    class_prior: torch.Tensor | np.ndarray | None = None,
    w_mse: float = 10.0,
    w_bal: float = 0.001,
    r: float = 2,
) -> dict[str, torch.Tensor]:
    """The expert loss and its parts (for logging); see :func:`expert_loss`."""
    template = torch.as_tensor(template, dtype=probs.dtype, device=probs.device)
    target_score = target_score.to(probs.dtype).reshape(-1)
    pred_score = probs @ template
    mse = (pred_score - target_score).pow(2)

    if target_dist is None:
        has_dist = torch.zeros_like(mse, dtype=torch.bool)
        emd = torch.zeros_like(mse)
    else:
        target_dist = target_dist.to(probs.dtype)
        has_dist = torch.isfinite(target_dist).all(dim=-1)
        clean = torch.where(has_dist[:, None], target_dist, probs.detach())
        emd = torch.where(has_dist, emd_per_sample(probs, clean, r), torch.zeros_like(mse))
    per_sample = torch.where(has_dist, emd + w_mse * mse, mse)

    bal = torch.zeros((), dtype=probs.dtype, device=probs.device)
    if class_prior is not None:
        cls_logits = aux_logits if aux_logits is not None else logits
        if cls_logits is None:
            raise ValueError("class_prior given but neither aux_logits nor logits to classify")
        if aux_target is not None:
            cls_target = aux_target.long().reshape(-1)
        elif aux_logits is None:
            cls_target = nearest_bin(target_score, template)
        else:
            raise ValueError("aux_logits given without aux_target")
        per_bal = balanced_ce(cls_logits, cls_target.clamp_min(0), class_prior, reduction="none")
        valid = cls_target >= 0  # -1 marks a sample without a class label
        per_bal = torch.where(valid, per_bal, torch.zeros_like(per_bal))
        per_sample = per_sample + w_bal * per_bal
        bal = per_bal.sum() / valid.sum().clamp_min(1)

    n_dist = has_dist.sum().clamp_min(1)
    return {
        "loss": per_sample.mean(),
        "emd": emd.sum() / n_dist,
        "mse": mse.mean(),
        "bal_ce": bal,
        "frac_dist": has_dist.to(probs.dtype).mean(),
    }


def expert_loss(
    probs: torch.Tensor,
    logits: torch.Tensor | None,
    target_score: torch.Tensor,
    target_dist: torch.Tensor | None,
    template: torch.Tensor | np.ndarray,
    aux_logits: torch.Tensor | None = None,
    aux_target: torch.Tensor | None = None,
    class_prior: torch.Tensor | np.ndarray | None = None,
    w_mse: float = 10.0,
    w_bal: float = 0.001,
) -> torch.Tensor:
    """Expert fine-tuning loss, per sample, averaged over the batch.

    * sample with a vote distribution (a finite row of ``target_dist``):
      ``EMD(probs, dist) + w_mse * MSE``;
    * sample without one (``target_dist`` None or a NaN row): ``MSE``;
    * plus ``w_bal * BalCE`` for every sample when ``class_prior`` is given.

    ``MSE`` is ``(probs @ template - target_score)^2`` with ``target_score`` on
    the template scale (map it with :meth:`aestimo.data.scales.Scale.to_template`).
    Bal-CE classifies ``aux_logits`` against ``aux_target`` (entries ``-1``
    skipped) when given; otherwise the head's own bin ``logits`` against the
    template bin nearest to ``target_score``.
    """
    return expert_loss_terms(
        probs, logits, target_score, target_dist, template, aux_logits, aux_target, class_prior, w_mse, w_bal
    )["loss"]

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

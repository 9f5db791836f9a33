"""``output_mix``: a person's own linear mix of the experts' zero-shot scores.

The cheap alternative to mixing the experts in weight space: the prediction is
``bias + weights @ expert_scores`` (template scale), n weights and a bias learned
from the person's k support images with the same loss as ``task_vectors``
(Bradley–Terry rank loss, MSE as an option).

* It starts at the zero-shot ensemble (weights 1/n, bias 0) and an L2 pull
  keeps it near there: the objective is ``loss + (l2 / k) * sum_i ((u_i - u0_i) / tau)^2``.
  The loss is a mean over the support, so the pull weighs about as much as
  ``l2`` images would, and less as k grows.
* ``u_i`` is expert i's weight on its *standardised* scores (centred and divided
  by their spread over the support images), so the pull treats every expert
  alike whether its scores are spread or compressed; ``tau`` is the template's
  standard deviation, which makes ``l2`` mean the same on the five- and
  ten-bin templates. The standardisation is folded back into ``weights`` and
  ``bias``, so the state is a plain affine mix of the raw scores.
* The objective is convex in the weights for either loss, and tiny: it is
  solved to convergence by L-BFGS in float64 (deterministic, no seed used).
  With the rank loss the bias does not matter: the mix's mean over the
  support images stays the ensemble's.

In the pipeline ``l2`` is chosen on validation people (``personalize.selection``,
never on test people); the class default, 10 images' worth, is a round value
used where no validation people exist.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from aestimo.data.scales import SCALES
from aestimo.options import Options
from aestimo.personalization.registry import Context, Method, Query, State, Support, register
from aestimo.training.losses import person_loss


class OutputMixOptions(Options):
    loss: Literal["rank", "mse"] = "rank"  # "rank" (Bradley–Terry, as task_vectors) or "mse"
    l2: float = Field(default=10.0, ge=0)  # the pull toward the zero-shot ensemble, in images' worth (see the module)


def fit_mix(
    expert_scores: np.ndarray, y: np.ndarray, loss: str, l2: float, tau: float, max_iter: int = 1000
) -> tuple[np.ndarray, float]:
    """The mix's ``(weights (n,), bias)`` for one person's support set (see the module docstring)."""
    s = torch.as_tensor(np.asarray(expert_scores), dtype=torch.float64)
    y_t = torch.as_tensor(np.asarray(y), dtype=torch.float64).reshape(-1)
    n, k = s.shape
    mu = s.mean(dim=1)
    sd = s.std(dim=1, unbiased=False)
    sd = torch.where(sd > 1e-8 * (1.0 + mu.abs()), sd, torch.ones_like(sd))  # an expert constant on the support: z = 0
    z = (s - mu[:, None]) / sd[:, None]
    u0 = sd / n  # weights 1/n on the raw scores
    c0 = mu.mean()  # with u0: exactly the mean of the experts' scores
    u = u0.clone().requires_grad_(True)
    c = c0.clone().requires_grad_(True)
    fit = person_loss(loss)
    opt = torch.optim.LBFGS(
        [u, c], lr=1.0, max_iter=max_iter, max_eval=2 * max_iter, tolerance_grad=1e-10, tolerance_change=1e-14,
        history_size=20, line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        pred = c + u @ z
        data = fit(pred, y_t)
        obj = data + (l2 / k) * ((u - u0) / tau).pow(2).sum()
        obj.backward()
        return obj

    opt.step(closure)
    w = (u / sd).detach()
    b = (c - (w * mu).sum()).detach()
    return w.numpy(), float(b)


@register("output_mix")
class OutputMix(Method):
    """n weights and a bias over the experts' zero-shot scores, learned on the support set.

    The state is ``{"weights": (n,), "bias": (1,)}``: ``bias + weights @ expert_scores``.
    """

    Options = OutputMixOptions

    def fit(self, support: Support, ctx: Context) -> State:
        tau = float(np.std(SCALES[support.source].template_values))
        w, b = fit_mix(support.expert_scores, support.y.numpy(), self.options.loss, self.options.l2, tau)
        return {"weights": torch.as_tensor(w, dtype=torch.float32), "bias": torch.tensor([b], dtype=torch.float32)}

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        w = state["weights"].double().numpy()
        return float(state["bias"][0]) + w @ np.asarray(query.expert_scores, dtype=np.float64)

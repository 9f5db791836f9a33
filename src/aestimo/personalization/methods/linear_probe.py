"""``linear_probe``: ridge regression of a person's scores on θ0's pooled backbone features.

The baseline that ignores the experts: a linear model on the features the
shared backbone already computes (``ctx.features``, one row per cached image),
fitted to the person's k support scores, with an unpenalised intercept.

The ridge strength is chosen inside the support set only, by exact
leave-one-out error: with the eigendecomposition of the centred features' Gram
matrix ``Xc Xcᵀ = U diag(s²) Uᵀ`` (k × k: cheap, and LAPACK's SVD of a centred,
rank-deficient ``Xc`` is slow) every strength costs one pass over the
eigenvalues, and the leave-one-out residual of image i is ``e_i / (1 - H_ii)``
for the hat matrix ``H = 11ᵀ/k + U diag(s² / (s² + α)) Uᵀ``. The candidates ``alphas`` are relative
to the support features' mean squared centred norm (``‖Xc‖²_F / k``), so the
grid means the same for any feature scale; the default runs from 1e-3 (close to
the minimum-norm interpolant when k < d) to 1e4 (close to the limit where the
weights only follow ``Xcᵀ y``), in half-decades. Equal errors go to the stronger
strength. Nothing is random, so the state depends only on the support set.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
from pydantic import Field

from aestimo.options import Options
from aestimo.personalization.registry import Context, Method, Query, State, Support, register

DEFAULT_ALPHAS = tuple(float(10.0**e) for e in np.arange(-3.0, 4.25, 0.5))


class LinearProbeOptions(Options):
    # ridge strengths to choose from by leave-one-out, relative to ‖Xc‖²_F / k (one value: that strength, no choice)
    alphas: tuple[Annotated[float, Field(gt=0)], ...] = Field(default=DEFAULT_ALPHAS, min_length=1)


def ridge_loo(x: np.ndarray, y: np.ndarray, alphas: tuple[float, ...]) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Ridge with an unpenalised intercept, its strength chosen by exact leave-one-out MSE.

    ``alphas`` are relative (see the module docstring). Returns the weights ``(d,)``,
    the intercept, the chosen absolute strength and the leave-one-out MSE of each
    candidate, in the order of ``alphas``.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64).reshape(-1)
    k = len(y)
    if k < 3:
        raise ValueError(f"linear_probe: needs at least 3 support images to choose its strength, got {k}")
    x_mean, y_mean = x.mean(axis=0), y.mean()
    xc, yc = x - x_mean, y - y_mean
    s2, u = np.linalg.eigh(xc @ xc.T)
    s2 = np.clip(s2, 0.0, None)
    scale = float(s2.sum()) / k
    if scale <= 0.0:  # every support image has the same features: nothing to learn but the mean
        scale = 1.0
    uy = u.T @ yc
    absolute = np.asarray(alphas, dtype=np.float64) * scale
    errors = np.empty(len(absolute))
    for i, a in enumerate(absolute):
        shrink = s2 / (s2 + a)
        residual = yc - u @ (shrink * uy)
        hat = 1.0 / k + (u**2) @ shrink
        errors[i] = float(np.mean((residual / (1.0 - hat)) ** 2))
    tied = np.flatnonzero(errors <= errors.min() * (1.0 + 1e-9))
    best = int(tied[np.argmax(absolute[tied])])  # equal errors: the stronger strength
    a = float(absolute[best])
    w = xc.T @ (u @ (uy / (s2 + a)))
    return w, float(y_mean - x_mean @ w), a, errors


def _features(ctx: Context | None, rows: torch.Tensor) -> np.ndarray:
    if ctx is None or ctx.features is None:
        raise ValueError(
            "linear_probe: this context has no backbone features (ctx.features is None); "
            "build the Context with θ0's pooled features of the cached images (the backbone_features dataset)"
        )
    return ctx.features[rows].double().numpy()


@register("linear_probe")
class LinearProbe(Method):
    """Ridge on θ0's pooled backbone features, its strength chosen by leave-one-out on the support.

    The state is ``{"w": (d,), "b": (1,), "alpha": (1,)}`` (``alpha`` absolute); the
    prediction is ``features @ w + b``.
    """

    Options = LinearProbeOptions

    def fit(self, support: Support, ctx: Context) -> State:
        w, b, alpha, _ = ridge_loo(_features(ctx, support.rows), support.y.numpy(), self.options.alphas)
        return {
            "w": torch.as_tensor(w, dtype=torch.float32),
            "b": torch.tensor([b], dtype=torch.float32),
            "alpha": torch.tensor([alpha], dtype=torch.float32),
        }

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        return _features(ctx, query.rows) @ state["w"].double().numpy() + float(state["b"][0])

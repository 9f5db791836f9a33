"""The merged scorer's score as a linear function of λ around an expansion point.

Around ``λe``, a person's score of image ``x`` is, to first order,

    s(x; λ) ≈ s(x; λe) + Σ_{i,l} (λ[i,l] − λe[i,l]) · φ[i,l](x),
    φ[i,l](x) = ∂s/∂λ[i,l] = ⟨∂s/∂θ_l (x; θ(λe)), τ[i,l]⟩,

so one backward pass per image at ``λe`` turns λ learning into a small
problem over ``n × L`` numbers per image (:mod:`aestimo.personalization.methods.instant`).
The features come layer by layer from one forward and one backward pass per
batch of images (:mod:`aestimo.models.layer_derivatives`), so memory stays
bounded whatever the number of images. Scores are on
the image's source's template scale (an image is only ever scored for people
of its own source).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from aestimo.models.layer_derivatives import directional_derivatives
from aestimo.models.merged import MergedScorer


def score_features(
    merged: MergedScorer,
    x: torch.Tensor,
    at: torch.Tensor,
    template: torch.Tensor,
    batch: int = 32,
    progress: bool = False,
    desc: str = "features",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``s(x; at)`` ``(B,)`` and ``φ(x) = ∂s/∂λ`` at ``at`` ``(B, *at.shape)`` for images ``x`` (normalised NCHW).

    ``at`` is ``(n, L)`` (layer-wise) or ``(n,)`` (one coefficient per source:
    φ summed over layers). The merged model runs unfolded here: φ is with
    respect to the task vectors' own parameters.
    """
    n, L = merged.shape
    at = at.detach().float()
    point = at if at.dim() == 2 else at[:, None].expand(n, L)
    weights = merged.unfolded(point)
    bases, phis = [], []
    shown = {} if progress else {"disable": True}  # shown: TQDM_DISABLE may still hide it
    for i in tqdm(range(0, len(x), batch), desc=desc, leave=False, **shown):
        base, phi = directional_derivatives(merged.module, weights, merged.names, merged.taus, x[i : i + batch],
                                            lambda probs: probs @ template)
        bases.append(base.cpu())  # features live on the CPU: the per-person solves are small
        phis.append((phi if at.dim() == 2 else phi.sum(-1)).cpu())
    if not phis:
        return torch.empty(0), torch.empty((0, *at.shape))
    return torch.cat(bases), torch.cat(phis)


@dataclass
class LinearScores:
    """Base scores and features of some cached images at one expansion point, by cache row."""

    at: torch.Tensor  # (n, L): the expansion point λe
    rows: torch.Tensor  # (N,) sorted cache rows
    base: torch.Tensor  # (N,) s(x; λe)
    phi: torch.Tensor  # (N, n, L)

    def take(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(base, phi)`` of the given cache rows (each must have been computed)."""
        pos = torch.searchsorted(self.rows, rows)
        pos = pos.clamp(max=max(len(self.rows) - 1, 0))
        if len(rows) and (len(self.rows) == 0 or not bool((self.rows[pos] == rows).all())):
            raise KeyError("linearized scores: some images have no features (compute them in Method.prepare)")
        return self.base[pos], self.phi[pos]

    def missing(self, rows: torch.Tensor) -> torch.Tensor:
        """The cache rows among ``rows`` that have no features yet (sorted, unique)."""
        rows = torch.unique(rows)
        return rows[~torch.isin(rows, self.rows)]

    def extended(self, rows: torch.Tensor, base: torch.Tensor, phi: torch.Tensor) -> LinearScores:
        """These scores plus new rows (not already present)."""
        all_rows = torch.cat([self.rows, rows])
        order = torch.argsort(all_rows)
        return LinearScores(self.at, all_rows[order], torch.cat([self.base, base])[order], torch.cat([self.phi, phi])[order])

    @classmethod
    def empty(cls, at: torch.Tensor) -> LinearScores:
        return cls(at, torch.empty(0, dtype=torch.long), torch.empty(0), torch.empty((0, *at.shape)))


def linear_scores(base: torch.Tensor, phi: torch.Tensor, at: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """First-order scores at ``lam``: ``base + ⟨lam − at, φ⟩``; a ``(n,)`` ``lam`` is broadcast over layers."""
    if lam.dim() == 1 and at.dim() == 2:
        lam = lam[:, None].expand_as(at)
    return base + ((lam - at).to(phi.dtype) * phi).flatten(1).sum(1)

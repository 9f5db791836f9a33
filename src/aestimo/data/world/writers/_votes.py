"""Votes of anonymous voters and their per-image aggregates (histograms, mean, sd).

Used by the formats that publish only aggregates (AVA, TAD66K, KonIQ-10k,
SPAQ) and for the per-image summaries of the others.
"""

from __future__ import annotations

import numpy as np

from ..latents import rng_for
from ..people import latent_responses, make_raters, utilities
from ..pools import Pool


def group_stats(values: np.ndarray, groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population sd of ``values`` per group (NaN for an empty group)."""
    cnt = np.bincount(groups, minlength=n_groups).astype(float)
    s1 = np.bincount(groups, weights=values, minlength=n_groups)
    s2 = np.bincount(groups, weights=values * values, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / cnt
        sd = np.sqrt(np.maximum(s2 / cnt - mean**2, 0))
    return mean, sd


def group_hist(bins: np.ndarray, groups: np.ndarray, n_groups: int, n_bins: int) -> np.ndarray:
    """Counts ``[n_groups, n_bins]`` of each bin per group."""
    return np.bincount(groups * n_bins + bins, minlength=n_groups * n_bins).reshape(n_groups, n_bins)


def voter_votes(cfg, source, pool: Pool, n_voters, votes_per_image: np.ndarray, noise_sd):
    """Anonymous voters: returns (image index per vote, voter index per vote, response per vote)."""
    rng = rng_for(cfg.seed, "voters", source)
    voters = make_raters(rng, source, n_voters, [f"{source}_voter{i}" for i in range(n_voters)],
                         np.zeros(n_voters, bool), cfg, noise_sd, cfg.voter_idiosyncratic_mean)
    U = utilities(voters, pool.crit, pool.feats)  # [V, n]
    rng = rng_for(cfg.seed, "votes", source)
    order = np.argsort(rng.random((pool.n, n_voters)), axis=1)
    img_idx = np.repeat(np.arange(pool.n), votes_per_image)
    voter_idx = np.concatenate([order[i, :k] for i, k in enumerate(votes_per_image)]) if pool.n else np.zeros(0, int)
    y = latent_responses(rng, voters, voter_idx, U[voter_idx, img_idx])
    return img_idx, voter_idx, y

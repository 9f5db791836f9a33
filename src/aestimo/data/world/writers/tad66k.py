"""Writes TAD66K: per-image mean scores in ``labels/merge/{train,test}.csv``.

Only the means of anonymous voters' 1-10 votes are written, as in the real
set. Images go to ``tad66k/TAD66K/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import WorldConfig
from ..latents import rng_for
from ..people import TAD_VOTE_DIST, quantise
from ..pools import Pool
from ..truth import Truth
from ._files import fixed, write_text
from ._ids import unique_strings
from ._votes import group_stats, voter_votes


def write(root: Path, cfg: WorldConfig, truth: Truth, counts: dict) -> list[Pool]:
    pool = Pool(cfg, "tad66k", "train", cfg.tad66k_images)
    rng = rng_for(cfg.seed, "ids", "tad66k")
    pool.names = unique_strings(rng, pool.n, lambda r: f"{r.integers(10**6, 10**7)}.jpg")
    pool.paths = [f"tad66k/TAD66K/{n}" for n in pool.names]
    n_votes = np.full(pool.n, cfg.tad66k_votes_per_image)
    img_idx, _, y = voter_votes(cfg, "tad66k", pool, cfg.tad66k_voters, n_votes, cfg.voter_noise_sd)
    votes = quantise(y, TAD_VOTE_DIST) + 1.0
    mean, _ = group_stats(votes, img_idx, pool.n)
    n_test = int(round(cfg.tad66k_test_fraction * pool.n))
    is_test = np.zeros(pool.n, bool)
    is_test[rng.choice(pool.n, n_test, replace=False)] = True
    for split, mask in (("train", ~is_test), ("test", is_test)):
        rows = [f"{pool.names[k]},{fixed(mean[k], 4)}" for k in np.flatnonzero(mask)]
        write_text(root / f"tad66k/labels/merge/{split}.csv", "\n".join(["image,score"] + rows) + "\n")
    truth.add_pool(pool)
    counts["tad66k"] = {"images": pool.n, "votes": len(votes), "official_test_images": n_test}
    return [pool]

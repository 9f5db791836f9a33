"""Writes KonIQ-10k: 1-5 vote histograms, MOS, SD and z-score MOS per image, and the official sets.

Files: ``koniq10k_scores_and_distributions.csv`` and the same rows with a
``set`` column in ``koniq10k_distributions_sets.csv``. Images go to
``koniq10k/512x384/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import WorldConfig
from ..latents import rng_for
from ..people import KONIQ_VOTE_DIST, quantise
from ..pools import Pool
from ..truth import Truth
from ._files import fixed, write_text
from ._ids import unique_strings
from ._votes import group_hist, group_stats, voter_votes


def write(root: Path, cfg: WorldConfig, truth: Truth, counts: dict) -> list[Pool]:
    pool = Pool(cfg, "koniq10k", "train", cfg.koniq10k_images)
    rng = rng_for(cfg.seed, "ids", "koniq10k")
    pool.names = unique_strings(rng, pool.n, lambda r: f"{r.integers(10**9, 10**10)}.jpg")
    pool.paths = [f"koniq10k/512x384/{n}" for n in pool.names]
    k = cfg.koniq10k_votes_per_image
    n_votes = np.clip(np.rint(k * (1 + rng.uniform(-0.15, 0.15, pool.n))), 1, cfg.koniq10k_voters).astype(int)
    img_idx, voter_idx, y = voter_votes(cfg, "koniq10k", pool, cfg.koniq10k_voters, n_votes,
                                         cfg.quality_voter_noise_sd)
    votes = quantise(y, KONIQ_VOTE_DIST)
    H = group_hist(votes, img_idx, pool.n, 5)
    mos, sd = group_stats(votes + 1.0, img_idx, pool.n)
    # z-scores per voter, averaged per image, mapped from [-3, 3] onto [0, 100]
    vm, vsd = group_stats(votes + 1.0, voter_idx, cfg.koniq10k_voters)
    z = (votes + 1.0 - vm[voter_idx]) / np.where(vsd[voter_idx] > 0, vsd[voter_idx], 1.0)
    zm, _ = group_stats(z, img_idx, pool.n)
    zscore = np.clip((zm + 3) / 6 * 100, 0, 100)
    sets = np.array(["training"] * pool.n, dtype=object)
    perm = rng.permutation(pool.n)
    n_val, n_test = int(round(cfg.koniq10k_val_fraction * pool.n)), int(round(cfg.koniq10k_test_fraction * pool.n))
    sets[perm[:n_val]] = "validation"
    sets[perm[n_val:n_val + n_test]] = "test"
    head = "image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore"
    rows = [f"{pool.names[i]},{','.join(map(str, H[i]))},{H[i].sum()},{fixed(mos[i], 6)},{fixed(sd[i], 6)},{fixed(zscore[i], 6)}"
            for i in range(pool.n)]
    write_text(root / "koniq10k/koniq10k_scores_and_distributions.csv", "\n".join([head] + rows) + "\n")
    write_text(root / "koniq10k/koniq10k_distributions_sets.csv",
                "\n".join([head + ",set"] + [f"{r},{s}" for r, s in zip(rows, sets)]) + "\n")
    truth.add_pool(pool)
    counts["koniq10k"] = {"images": pool.n, "votes": int(H.sum()), "official_test_images": n_test}
    return [pool]

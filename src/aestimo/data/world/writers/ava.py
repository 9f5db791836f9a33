"""Writes AVA: ``ava/AVA.txt`` (one line of 10 vote counts, tags and challenge per image) and the test list.

Votes come from anonymous voters; only their per-image histograms are written,
as in the real ``AVA.txt``. Images go to ``ava/images/{id}.jpg``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import WorldConfig
from ..latents import THEMES, rng_for
from ..people import AVA_VOTE_DIST, quantise
from ..pools import Pool
from ..truth import Truth
from ._files import write_text
from ._ids import unique_strings
from ._votes import group_hist, voter_votes

AVA_TAGS = {"landscape": 14, "portrait": 15, "animal": 19, "architecture": 1, "food": 38, "night": 22, "abstract": 3}


def write(root: Path, cfg: WorldConfig, truth: Truth, counts: dict) -> list[Pool]:
    pool = Pool(cfg, "ava", "train", cfg.ava_images)
    rng = rng_for(cfg.seed, "ids", "ava")
    pool.names = sorted(unique_strings(rng, pool.n, lambda r: str(r.integers(100000, 1000000))), key=int)
    pool.paths = [f"ava/images/{i}.jpg" for i in pool.names]
    n_votes = np.clip(np.rint(cfg.ava_votes_median * np.exp(rng.normal(0, 0.3, pool.n))),
                      cfg.ava_votes_min, cfg.ava_votes_max).astype(int)
    n_votes = np.minimum(n_votes, cfg.ava_voters)
    img_idx, _, y = voter_votes(cfg, "ava", pool, cfg.ava_voters, n_votes, cfg.voter_noise_sd)
    H = group_hist(quantise(y, AVA_VOTE_DIST), img_idx, pool.n, 10)
    tag2 = rng.integers(0, 67, pool.n) * (rng.random(pool.n) < 0.6)
    challenge = rng.integers(1, 1400, pool.n)
    lines = [" ".join([str(k + 1), pool.names[k], *map(str, H[k]), str(AVA_TAGS[THEMES[pool.themes[k]]]),
                       str(tag2[k]), str(challenge[k])]) for k in range(pool.n)]
    write_text(root / "ava/AVA.txt", "\n".join(lines) + "\n")
    n_test = int(round(cfg.ava_test_fraction * pool.n))
    test = np.sort(rng.choice(pool.n, n_test, replace=False))
    write_text(root / "ava/aesthetics_image_lists/generic_test.jpgl", "".join(f"{pool.names[k]}\n" for k in test))
    truth.add_pool(pool)
    counts["ava"] = {"images": pool.n, "votes": int(H.sum()), "official_test_images": n_test}
    return [pool]

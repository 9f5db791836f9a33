"""Writes REAL-CUR: real users rating their own photo albums on 1-5.

``real_cur/test_list.csv`` (header ``worker,image_name,score``, one row per photo) and the
photos at ``real_cur/images/<worker>/<score>/<image_name>``, as in the release. Each user rates
only their own album, so every image has one rating and every user is a held-out person (the
data set is a test set). Their taste mixes the six criteria with no source of its own
(``WorldConfig.mixed_taste_concentration``) plus an idiosyncratic part, and their ratings are
quantised like the other sources' (crowded in the middle of the scale).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import WorldConfig
from ..latents import rng_for
from ..people import REAL_CUR_DIST, latent_responses, make_raters, quantise, utilities
from ..pools import Pool
from ..truth import Truth
from ._files import write_text
from ._ids import unique_strings

SOURCE = "real_cur"


def write(root: Path, cfg: WorldConfig, truth: Truth, counts: dict) -> list[Pool]:
    rng = rng_for(cfg.seed, "ids", SOURCE)
    n_users = cfg.real_cur_users
    users = [f"user{j + 1:02d}" for j in range(n_users)]
    sizes = rng.integers(cfg.real_cur_album_min, cfg.real_cur_album_max + 1, n_users)
    pool = Pool(cfg, SOURCE, "albums", int(sizes.sum()))
    owner = np.repeat(np.arange(n_users), sizes)
    files: list[str] = []
    for size in sizes:  # camera file names, unique within an album, in album order
        names = unique_strings(rng, int(size), lambda r: f"IMG_{r.integers(1000, 10000)}.jpg")
        files += sorted(names)

    prng = rng_for(cfg.seed, "people", SOURCE)
    people = make_raters(prng, SOURCE, n_users, users, np.ones(n_users, bool), cfg, cfg.rater_noise_sd,
                         concentration=cfg.mixed_taste_concentration)
    idx = np.arange(pool.n)
    u = utilities(people, pool.crit, pool.feats)[owner, idx] if pool.n else np.zeros(0)
    y = latent_responses(rng_for(cfg.seed, "ratings", SOURCE), people, owner, u)
    score = quantise(y, REAL_CUR_DIST) + 1

    pool.names = [f"{users[o]}/{f}" for o, f in zip(owner, files)]
    pool.paths = [f"{SOURCE}/images/{users[o]}/{s}/{f}" for o, s, f in zip(owner, score, files)]
    rows = ["worker,image_name,score"] + [f"{users[o]},{f},{s}" for o, f, s in zip(owner, files, score)]
    write_text(root / SOURCE / "test_list.csv", "\n".join(rows) + "\n")

    truth.add_pool(pool)
    truth.add_raters(people)
    truth.add_utilities(SOURCE, [users[o] for o in owner], [f"{SOURCE}:{n}" for n in pool.names], u)
    counts[SOURCE] = {"images": pool.n, "ratings": pool.n, "raters": n_users, "test_raters": n_users}
    return [pool]

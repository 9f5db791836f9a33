"""Writes SPAQ: MOS and five attribute scores (0-100) per image, and the scene labels, as xlsx.

Files under ``spaq/Annotations/``: ``MOS and Image attribute scores.xlsx`` and
``Scene category labels.xlsx``. Images go to ``spaq/TestImage/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import ndtr

from ..config import WorldConfig
from ..latents import LATENTS, THEMES, rng_for
from ..pools import Pool
from ..truth import Truth
from ._files import write_xlsx
from ._votes import group_stats, voter_votes

SPAQ_SCENES = {"landscape": "Landscape", "portrait": "Human", "animal": "Animal", "architecture": "Cityscape",
               "food": "Still life", "night": "Night scene", "abstract": "Others"}


def write(root: Path, cfg: WorldConfig, truth: Truth, counts: dict) -> list[Pool]:
    pool = Pool(cfg, "spaq", "train", cfg.spaq_images)
    pool.names = [f"{i + 1:05d}.jpg" for i in range(pool.n)]
    pool.paths = [f"spaq/TestImage/{n}" for n in pool.names]
    n_votes = np.full(pool.n, cfg.spaq_votes_per_image)
    img_idx, _, y = voter_votes(cfg, "spaq", pool, cfg.spaq_voters, n_votes, cfg.quality_voter_noise_sd)
    slider = 100 * ndtr(1.6 * (y - y.mean()) / (y.std() + 1e-12))
    mos, _ = group_stats(slider, img_idx, pool.n)
    rng = rng_for(cfg.seed, "attributes", "spaq")
    L = {n: pool.lat[:, j] for j, n in enumerate(LATENTS)}

    def attr(x):
        return np.clip(100 * (0.08 + 0.84 * x) + rng.normal(0, 5, pool.n), 0, 100)

    cols = {"Brightness": attr(L["exposure"]), "Colorfulness": attr(L["colorfulness"]),
            "Contrast": attr(L["contrast"]), "Noisiness": attr(1 - L["noise"]), "Sharpness": attr(L["sharpness"])}
    head = ["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"]
    rows = [[pool.names[i], round(float(mos[i]), 2)] + [round(float(cols[c][i]), 2) for c in head[2:]]
            for i in range(pool.n)]
    write_xlsx(root / "spaq/Annotations/MOS and Image attribute scores.xlsx", head, rows)
    write_xlsx(root / "spaq/Annotations/Scene category labels.xlsx", ["Image name", "Scene category"],
                [[pool.names[i], SPAQ_SCENES[THEMES[pool.themes[i]]]] for i in range(pool.n)])
    truth.add_pool(pool)
    counts["spaq"] = {"images": pool.n, "votes": len(slider)}
    return [pool]

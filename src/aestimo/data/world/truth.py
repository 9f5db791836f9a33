"""The hidden truth of a world: image latents, rater parameters and utilities.

Writers add to a :class:`Truth` as they go; the driver writes it under
``_truth/`` as parquet, for tests and evaluation to compare models against.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from .latents import LATENTS, SOURCES
from .people import BIG5, EXPERIENCE_LEVELS, Raters
from .pools import Pool

TRUTH_DIR = "_truth"


class Truth:
    """Collects the truth tables of every source; :meth:`write` stores them under ``root/_truth``."""

    def __init__(self):
        self.images: list[pl.DataFrame] = []
        self.raters: list[pl.DataFrame] = []
        self.utilities: list[pl.DataFrame] = []

    def add_pool(self, pool: Pool) -> None:
        d = {"image_id": [f"{pool.source}:{n}" for n in pool.names], "source": [pool.source] * pool.n,
             "pool": [pool.pool] * pool.n, "theme": pool.theme_names}
        d |= {name: pool.lat[:, j] for j, name in enumerate(LATENTS)}
        d |= {f"criterion_{s}": pool.crit[:, j] for j, s in enumerate(SOURCES)}
        self.images.append(pl.DataFrame(d))

    def add_raters(self, r: Raters) -> None:
        d = {"source": [r.source] * len(r), "rater_id": r.ids, "is_test": r.is_test}
        d |= {f"w_{s}": r.weights[:, j] for j, s in enumerate(SOURCES)}
        d |= {"idiosyncratic_weight": r.idio_weight, "bias": r.bias, "scale": r.scale, "noise_sd": r.noise_sd}
        d |= {f"big5_{t}": r.big5[:, j].astype(np.int64) for j, t in enumerate(BIG5)}
        d |= {"art_experience": [EXPERIENCE_LEVELS[i] for i in r.art_exp],
              "photo_experience": [EXPERIENCE_LEVELS[i] for i in r.photo_exp]}
        df = pl.DataFrame(d).with_columns(
            pl.Series("idiosyncratic_direction", r.direction.tolist(), dtype=pl.List(pl.Float64)))
        self.raters.append(df)

    def add_utilities(self, source: str, rater_ids: list[str], image_ids: list[str], util: np.ndarray) -> None:
        self.utilities.append(pl.DataFrame({"source": [source] * len(rater_ids), "rater_id": rater_ids,
                                            "image_id": image_ids, "utility": np.asarray(util, float)}))

    def write(self, root: Path) -> None:
        d = root / TRUTH_DIR
        d.mkdir(parents=True, exist_ok=True)
        pl.concat(self.images).write_parquet(d / "image_latents.parquet", statistics=False)
        pl.concat(self.raters, how="diagonal").write_parquet(d / "raters.parquet", statistics=False)
        pl.concat(self.utilities).write_parquet(d / "utilities.parquet", statistics=False)

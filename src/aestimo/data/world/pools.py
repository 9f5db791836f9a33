"""One pool of synthetic images: their names, files, themes and latent attributes.

A source has one pool (``train``) or two (``train`` / ``test``); each pool
draws its latents from its own seeded stream, so pools never share draws.
"""

from __future__ import annotations

from .config import WorldConfig
from .latents import THEMES, criteria, features, rng_for, sample_latents


class Pool:
    """Images of one source pool: names, themes, latents, features, criteria."""

    def __init__(self, cfg: WorldConfig, source: str, pool: str, n: int):
        rng = rng_for(cfg.seed, "latents", source, pool)
        self.source, self.pool, self.n = source, pool, n
        self.themes, self.lat = sample_latents(rng, n, source)
        self.feats = features(self.themes, self.lat)
        self.crit = criteria(self.themes, self.lat)
        self.names: list[str] = []  # id within source (canonical image_id = f"{source}:{name}")
        self.paths: list[str] = []  # relative to root

    @property
    def theme_names(self) -> list[str]:
        return [THEMES[t] for t in self.themes]

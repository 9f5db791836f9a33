"""Render every pool's images to JPEG files, in worker processes for large worlds.

Each image has its own seed, drawn per pool up front, so the pixels do not
depend on how the images are split between workers.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .config import WorldConfig
from .latents import rng_for
from .pools import Pool
from .render import jpeg_bytes, render


def _render_batch(args) -> None:
    """Render and write one batch ``(root, size, quality, items)``; runs in a worker process."""
    root, size, quality, items = args
    for rel, theme, lat, seed in items:
        arr = render(theme, np.asarray(lat), size, np.random.default_rng(seed))
        p = Path(root) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(jpeg_bytes(arr, quality))


def render_all(root: Path, cfg: WorldConfig, pools: list[Pool]) -> None:
    """Write every image of ``pools`` under ``root`` (in-process for small worlds, else up to 8 workers)."""
    items = []
    for pool in pools:
        seeds = rng_for(cfg.seed, "render", pool.source, pool.pool).integers(0, 2**63 - 1, pool.n)
        items += [(rel, int(t), pool.lat[i].tolist(), int(s))
                  for i, (rel, t, s) in enumerate(zip(pool.paths, pool.themes, seeds))]
    try:
        workers = min(len(os.sched_getaffinity(0)), 8)
    except AttributeError:  # not on Linux
        workers = min(os.cpu_count() or 1, 8)
    if len(items) < 1500 or workers < 2:
        _render_batch((str(root), cfg.image_size, cfg.jpeg_quality, items))
        return
    chunks = [items[i::workers * 4] for i in range(workers * 4)]
    with ProcessPoolExecutor(max_workers=workers) as ex:
        list(ex.map(_render_batch, [(str(root), cfg.image_size, cfg.jpeg_quality, c) for c in chunks]))

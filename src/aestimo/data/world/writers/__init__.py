"""Writers of the synthetic world: one module per real data set format, behind one table.

Each writer ``write(root, cfg, truth, counts)`` draws its source's images and
ratings, writes that data set's files under ``root``, adds the hidden truth
to ``truth``, puts its counts under ``counts[source]`` and returns its image
pools (rendered later by the driver). The table's order is the order the
truth tables and images are written in, so it is part of the world's bytes: a
new writer goes at the end, drawing only from its own seeded streams, so the
files of the sources before it stay byte-identical.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..config import WorldConfig
from ..pools import Pool
from ..truth import Truth
from . import aadb, ava, flickr_aes, koniq10k, para, real_cur, spaq, tad66k

Writer = Callable[[Path, WorldConfig, Truth, dict], list[Pool]]

WRITERS: dict[str, Writer] = {
    "ava": ava.write,
    "flickr_aes": flickr_aes.write,
    "tad66k": tad66k.write,
    "para": para.write,
    "koniq10k": koniq10k.write,
    "spaq": spaq.write,
    # people sources without an expert (their people are personalized with the six experts)
    "real_cur": real_cur.write,
    "aadb": aadb.write,
}

__all__ = ["WRITERS", "Writer"]

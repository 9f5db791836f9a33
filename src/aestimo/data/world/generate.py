"""Generate the synthetic aesthetic world: raw files in the real formats + hidden truth.

``generate_world(root, cfg)`` runs every writer of :data:`writers.WRITERS`,
renders the images and writes the truth in a sibling temp folder, writes
``manifest.json`` last, then renames the folder into place, so a killed run
never leaves a half world that ``world_exists`` would accept.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import polars as pl

from .config import WorldConfig
from .image_files import render_all
from .truth import TRUTH_DIR, Truth
from .writers import WRITERS

MANIFEST = "manifest.json"
FORMAT_VERSION = "aestimo-world/1"


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def generate_world(root: Path, config: WorldConfig | None = None) -> dict:
    """Write the synthetic world under ``root`` (replacing what is there) and return its manifest.

    The manifest (also written to ``root/manifest.json``, last) holds the
    seed, the configuration, counts per source and every file with its
    sha256. Identical configurations give byte-identical files.
    """
    cfg = config or WorldConfig()
    cfg.validate()
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        truth, counts, pools = Truth(), {}, []
        for write in WRITERS.values():
            pools += write(tmp, cfg, truth, counts)
        render_all(tmp, cfg, pools)
        truth.write(tmp)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {
            "format": FORMAT_VERSION,
            "seed": cfg.seed,
            "config": cfg.to_dict(),
            "counts": counts,
            "files": [{"path": p.relative_to(tmp).as_posix(), "bytes": p.stat().st_size, "sha256": _sha256(p)}
                      for p in files],
        }
        part = tmp / (MANIFEST + ".part")
        part.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(part, tmp / MANIFEST)
        if root.exists():
            old = root.parent / f".{root.name}.old-{os.getpid()}"
            os.replace(root, old)
            os.replace(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def read_manifest(root: Path) -> dict:
    """The manifest of the world under ``root`` (see :func:`generate_world`)."""
    return json.loads((Path(root) / MANIFEST).read_text())


def world_exists(root: Path, config: WorldConfig | None = None) -> bool:
    """True when a complete world (manifest written last) is on disk; with ``config``, also that it matches."""
    p = Path(root) / MANIFEST
    if not p.is_file():
        return False
    try:
        m = json.loads(p.read_text())
    except (OSError, ValueError):
        return False
    if m.get("format") != FORMAT_VERSION or "files" not in m:
        return False
    if config is not None and m.get("config") != config.to_dict():
        return False
    return True


def read_truth(root: Path) -> dict[str, pl.DataFrame]:
    """The hidden truth tables: ``image_latents``, ``raters``, ``utilities``."""
    d = Path(root) / TRUTH_DIR
    return {name: pl.read_parquet(d / f"{name}.parquet") for name in ("image_latents", "raters", "utilities")}

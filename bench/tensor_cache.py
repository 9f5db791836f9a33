"""uint8 tensor cache vs decoding the image files every epoch.

Writes ``--n-images`` JPEG files (``--file-size`` px, smooth random content so
they compress like photos, not like noise) to a temporary folder, then times
one epoch of building stage-2 training batches, both with the project's code:

* new: ``aestimo.data.images.build_cache`` once (timed separately), then per
  batch ``train_view`` (random crop + flip) and ``to_float`` on the cached
  uint8 tensor;
* baseline: per batch, ``load_image`` (PIL decode + resize) of every file of
  the batch, stacked to NCHW uint8, then the same ``train_view`` + ``to_float``.

Each path runs ``--epochs`` epochs; the median epoch is reported, with the
ratio baseline / cached per epoch and end-to-end over the epochs (cache
build counted once). ``--world`` uses the smoke synthetic world's JPEGs
(``aestimo.data.world``) instead of PIL-written files.

    python bench/tensor_cache.py [--n-images 300] [--file-size 80] [--cache-size 72]
        [--crop 64] [--batch 32] [--epochs 3] [--world]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import _common  # noqa: F401
import numpy as np
import torch
from _common import add_threads_arg, fmt_s, header, timer
from PIL import Image

from aestimo.data.images import build_cache, load_image, to_float, train_view

NORM = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # tf_efficientnet_lite0


def write_jpegs(folder: Path, n: int, size: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        im = Image.fromarray(small).resize((size, size), Image.BICUBIC)  # smooth, photo-like
        p = folder / f"img_{i:05d}.jpg"
        im.save(p, quality=90)
        paths.append(str(p))
    return paths


def world_jpegs(folder: Path, n: int) -> list[str]:
    from aestimo.data.world import generate_world, smoke_config

    generate_world(folder, smoke_config())
    files = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return files[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-images", type=int, default=300)
    ap.add_argument("--file-size", type=int, default=80)
    ap.add_argument("--cache-size", type=int, default=72, help="experts.cache_size of conf/base")
    ap.add_argument("--crop", type=int, default=64, help="experts.input_size of conf/base")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--world", action="store_true", help="use the smoke synthetic world's images")
    ap.add_argument("--seed", type=int, default=0)
    add_threads_arg(ap)
    args = ap.parse_args()
    header("tensor cache vs decoding files every epoch", args)

    with tempfile.TemporaryDirectory(prefix="aestimo_bench_") as tmp:
        folder = Path(tmp)
        paths = world_jpegs(folder, args.n_images) if args.world else write_jpegs(folder, args.n_images, args.file_size, args.seed)
        n = len(paths)
        ids = [Path(p).stem for p in paths]
        kib = sum(Path(p).stat().st_size for p in paths) / 1024
        print(f"   {n} files, {kib / max(n, 1):.1f} KiB each on average")

        t: dict[str, float] = {}
        with timer(t, "build"):
            cache = build_cache(ids, paths, args.cache_size, progress=False)
        gen = torch.Generator().manual_seed(args.seed)

        def epoch_cached() -> float:
            order = torch.randperm(n, generator=gen)
            with timer(t, "e"):
                for i in range(0, n, args.batch):
                    to_float(train_view(cache[order[i : i + args.batch]], args.crop, gen), *NORM)
            return t["e"]

        def epoch_files() -> float:
            order = torch.randperm(n, generator=gen)
            with timer(t, "e"):
                for i in range(0, n, args.batch):
                    pixels = torch.stack([load_image(paths[j], args.cache_size) for j in order[i : i + args.batch].tolist()])
                    to_float(train_view(pixels, args.crop, gen), *NORM)
            return t["e"]

        cached, files = [], []
        for _ in range(args.epochs):  # interleaved, so load changes hit both paths alike
            cached.append(epoch_cached())
            files.append(epoch_files())

    ec, ef = statistics.median(cached), statistics.median(files)
    print(f"   build_cache once ({args.cache_size}px, 2 decode threads) : {fmt_s(t['build'])}")
    print(f"   epoch from uint8 cache (train_view + to_float)  : {fmt_s(ec)}  ({ec / n * 1e6:.0f} us/image)")
    print(f"   epoch decoding files (load_image + same view)   : {fmt_s(ef)}  ({ef / n * 1e6:.0f} us/image)")
    print(f"   per-epoch speed-up (files / cache)              : {ef / ec:8.1f}x")
    for e, why in ((args.epochs, "--epochs"), (150 * args.batch / max(n, 1), "= stage 2 of conf/base, 150 steps x batch 32")):
        print(f"   end-to-end over {e:.1f} epochs ({why}), cache build counted once: "
              f"{(e * ef) / (t['build'] + e * ec):6.1f}x")


if __name__ == "__main__":
    main()

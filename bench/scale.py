"""Memory and time of ingest + experts + task vectors as the embedded world grows in images.

For each scale (×1, ×3, ×10 by default) the script lays out a temporary project
(the repository's ``conf/`` plus an environment ``scale`` naming its own data
folder), scales the world's image pools (AVA, FLICKR-AES, TAD66K, PARA,
KonIQ-10k and SPAQ; the people sources and every other knob stay at the
default world's values), and runs

    kedro run --pipelines ingest,experts,task_vectors --env scale

under ``/usr/bin/time -v``. Training is shortened (``--stage1-steps``,
``--stage2-steps``): the steps cost the same at every scale, so what remains
is what grows with the number of images (rendering the world, reading the
rating files, decoding into the image store, the feature pass, validation,
the experts' predictions). It prints, per scale, the images in the store, wall
time, peak RSS, and both as ratios to the first scale: memory should stay flat
and time grow about as the number of images.

``--src PATH`` runs another checkout's ``src/`` instead (e.g. the commit before
the image store, for the baseline's memory). Nothing is asserted.

    python bench/scale.py                      # ~15-25 min on 2 cores
    python bench/scale.py --scales 1 3 --keep  # keep the data folders (under --workdir)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the world's image pools (WorldConfig defaults); people and every other knob are left alone
POOLS = {
    "ava_images": 1500, "flickr_train_images": 1200, "flickr_test_images": 800, "tad66k_images": 1000,
    "para_train_images": 1200, "para_test_images": 800, "koniq10k_images": 1000, "spaq_images": 800,
}


def _env(folder: Path, scale: float, stage1: int, stage2: int) -> None:
    env = folder / "conf" / "scale"
    env.mkdir(parents=True)
    (env / "globals.yml").write_text(f"data_root: {folder / 'data'}\n")
    world = {k: int(round(v * scale)) for k, v in POOLS.items()}
    params = {
        "ingest": {"world": world},
        "experts": {
            "stage1": {"steps": stage1, "eval_every": max(1, stage1 // 2), "checkpoint_every": stage1},
            "stage2": {"steps": stage2, "eval_every": max(1, stage2 // 2), "checkpoint_every": stage2},
        },
    }
    (env / "parameters_scale.yml").write_text(json.dumps(params, indent=1))  # JSON is YAML


def _project(folder: Path) -> None:
    shutil.copytree(ROOT / "conf", folder / "conf", ignore=shutil.ignore_patterns("local"))
    (folder / "conf" / "local").mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, folder / name)
    (folder / "src").mkdir()


def _run(folder: Path, src: Path | None) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", KEDRO_DISABLE_TELEMETRY="1")
    if src is not None:
        env["PYTHONPATH"] = str(src)
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "kedro", "run", "--pipelines", "ingest,experts,task_vectors", "--env", "scale"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.stderr.write(out.stdout[-3000:] + out.stderr[-5000:])
        raise SystemExit(f"the run at {folder} failed (exit {out.returncode})")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
    return {"wall_s": wall, "peak_rss_gb": rss / 2**20}


def _images(folder: Path) -> int:
    from aestimo.bundle import load_bundle

    return len(load_bundle(folder / "data" / "04_feature" / "image_cache.safetensors", mmap=True).meta["image_ids"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", type=float, nargs="+", default=[1, 3, 10])
    ap.add_argument("--stage1-steps", type=int, default=200)
    ap.add_argument("--stage2-steps", type=int, default=10)
    ap.add_argument("--src", type=Path, default=None, help="another checkout's src/ to run instead of the installed package")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep each scale's project and data")
    args = ap.parse_args()
    base = args.workdir or Path(tempfile.mkdtemp(prefix="aestimo-scale-"))
    rows = []
    for scale in args.scales:
        folder = base / f"x{scale:g}"
        shutil.rmtree(folder, ignore_errors=True)
        _project(folder)
        _env(folder, scale, args.stage1_steps, args.stage2_steps)
        print(f"x{scale:g}: running in {folder} ...", flush=True)
        row = {"scale": scale, **_run(folder, args.src), "images": _images(folder)}
        print(f"   {row['images']} images, {row['wall_s']:.0f} s, peak RSS {row['peak_rss_gb']:.2f} GB", flush=True)
        rows.append(row)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    first = rows[0]
    print(f"\ningest + experts + task_vectors ({'src ' + str(args.src) if args.src else 'this checkout'}; "
          f"stage 1 {args.stage1_steps} steps, stage 2 {args.stage2_steps} steps per expert)")
    print(f"{'scale':>6} {'images':>8} {'wall s':>8} {'peak RSS GB':>12} {'images / x1':>12} {'time / x1':>10} {'RSS / x1':>9}")
    for r in rows:
        print(f"{r['scale']:>6g} {r['images']:>8d} {r['wall_s']:>8.0f} {r['peak_rss_gb']:>12.2f} "
              f"{r['images'] / first['images']:>12.2f} {r['wall_s'] / first['wall_s']:>10.2f} {r['peak_rss_gb'] / first['peak_rss_gb']:>9.2f}")
    if not args.keep and args.workdir is None:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

"""What the self_training stage costs per expert, against the expert's own stage-2 training.

Reads a finished default run's artifacts (``--data``, default ``data``) and times, per expert,
on this machine, in one run: the (β, t) grid search (a forward pass over the validation split and
the grid), pseudo-labelling the unlabelled pool (a forward pass), and the extra round; the
baseline is the same number of plain stage-2 steps (labelled batches only, no TFA / FLSA). It
prints seconds and the ratios round / baseline and (search + pseudo-labels + round) / baseline.
Seconds change from machine to machine; the ratios much less.

    python bench/self_training_cost.py [--data data] [--sources ava para] [--steps 30]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from aestimo import config
from aestimo.bundle import load_bundle
from aestimo.data.scales import SCALES
from aestimo.models.inference import predict
from aestimo.models.scorer import template_tensor
from aestimo.models.theta0 import load_scorer, normalisation
from aestimo.training.data import source_splits, unlabeled_pool
from aestimo.training.experts import finetune, self_train
from aestimo.training.long_tail import LongTailOptions
from aestimo.training.pseudo_labels import grid_search, pseudo_label


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data")
    ap.add_argument("--sources", nargs="*", default=None)
    ap.add_argument("--steps", type=int, default=None, help="round steps (default: the configured round)")
    args = ap.parse_args()
    import yaml

    raw = yaml.safe_load(Path("conf/base/parameters_self_training.yml").read_text())["self_training"]
    raw["checkpoint_dir"] = "unused"
    p = config.parse("self_training", raw)
    cfg = p.round_config()
    if args.steps:
        cfg = cfg.model_copy(update={"steps": args.steps, "eval_every": args.steps, "checkpoint_every": args.steps})
    d = Path(args.data)
    theta0 = load_bundle(d / "06_models/theta0.safetensors")
    cache = load_bundle(d / "04_feature/image_cache.safetensors")
    scores = pl.read_parquet(d / "03_primary/generic_scores.parquet")
    splits = pl.read_parquet(d / "05_model_input/generic_splits.parquet")
    ids, pixels = cache.meta["image_ids"], cache["pixels"]
    crop, norm = theta0.meta["input_size"], normalisation(theta0)
    sources = args.sources or sorted(x.stem for x in (d / "06_models/experts").glob("*.safetensors") if "_stage1_" not in x.name)
    print(f"{'expert':<12}{'search s':>10}{'pseudo s':>10}{'round s':>10}{'plain s':>10}{'round/plain':>13}{'stage/plain':>13}")
    for src in sources:
        weights = load_bundle(d / f"06_models/experts/{src}.safetensors")
        data = source_splits(src, scores, splits, ids)
        template = template_tensor(SCALES[src].template).double()
        mean = float(data["train"].labels.score.mean())
        t0 = time.perf_counter()
        probs = predict(load_scorer(theta0, weights.tensors), pixels[data["val"].rows], crop, norm).double()
        _, (beta, t) = grid_search(probs, data["val"].labels.score.double(), template, mean, p.experts.grid)
        t1 = time.perf_counter()
        rows, _ = unlabeled_pool(src, splits, ids, p.experts.pool_size, p.experts.seed)
        pool_probs = predict(load_scorer(theta0, weights.tensors), pixels[rows], crop, norm).double()
        pseudo = pseudo_label(pool_probs, template, mean, beta, t)
        t2 = time.perf_counter()
        common = dict(pixels_val=pixels[data["val"].rows], y_val=data["val"].labels, template=template.float(), crop=crop, norm=norm, seed=0)
        self_train(load_scorer(theta0, weights.tensors), pixels[data["train"].rows], data["train"].labels, pixels[rows], pseudo, cfg=cfg, **common)
        t3 = time.perf_counter()
        plain = cfg.model_copy(update={"long_tail": LongTailOptions()})
        finetune(load_scorer(theta0, weights.tensors), pixels[data["train"].rows], data["train"].labels, common["pixels_val"],
                 common["y_val"], common["template"], crop, norm, plain, 0)
        t4 = time.perf_counter()
        base = t4 - t3
        print(f"{src:<12}{t1 - t0:>10.2f}{t2 - t1:>10.2f}{t3 - t2:>10.2f}{base:>10.2f}{(t3 - t2) / base:>13.2f}{(t3 - t0) / base:>13.2f}")


if __name__ == "__main__":
    main()

"""Choose the self-training round's free settings on an expert's own validation split.

ELTA fixes τ1 = 0.2 and τ2 = 4.0; how many mixed samples TFA adds per real one
(``tfa_ratio``), FLSA's weight and the round's backbone rate are free choices
on this budget. For each combination this script trains the full round (TFA +
FLSA + APDS pseudo-labels) from the plain expert of a finished default run and
reads back the **validation** split's low / middle / high MAE; it picks the
combination with the lowest mean of the three (the long tail's objective).
Test splits are read only after the choice, to print what the chosen and the
configured settings give there (never to choose).

    python experiments/long_tail_round_sweep.py [--data data] [--source ava]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import polars as pl
import torch
import yaml

from aestimo.bundle import TensorBundle, load_bundle
from aestimo.evaluation.long_tail import segment_metrics
from aestimo.pipelines.self_training import nodes as st


def _val_and_test(source, theta0, cache, scores, splits, weights):
    from aestimo.training.data import source_splits

    data = source_splits(source, scores, splits, cache.meta["image_ids"])
    out = {}
    for split in ("val", "test"):
        probs = st._probs(theta0, weights, cache["pixels"][data[split].rows])
        pred = (probs @ st._template(source)).numpy()
        out[split] = {r["segment"]: r["mae"] for r in segment_metrics(data[split].labels.score.numpy(), pred)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data")
    ap.add_argument("--source", default="ava")
    ap.add_argument("--tfa-ratio", type=float, nargs="*", default=[0.5, 1.0, 2.0])
    ap.add_argument("--flsa", type=float, nargs="*", default=[0.1, 1.0])
    ap.add_argument("--lr-backbone", type=float, nargs="*", default=[1e-4, 3e-4])
    args = ap.parse_args()
    d, src = Path(args.data), args.source
    raw = yaml.safe_load(Path("conf/base/parameters_self_training.yml").read_text())["self_training"]
    theta0, cache = load_bundle(d / "06_models/theta0.safetensors"), load_bundle(d / "04_feature/image_cache.safetensors")
    scores = pl.read_parquet(d / "03_primary/generic_scores.parquet")
    splits = pl.read_parquet(d / "05_model_input/generic_splits.parquet")
    plain = load_bundle(d / f"06_models/experts/{src}.safetensors")
    plain = TensorBundle(plain.tensors, {**plain.meta, "source": src})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        raw["checkpoint_dir"] = tmp
        surface = st.choose_pseudo_labelling(src, theta0, plain, cache, scores, splits, raw)
        pseudo = st.pseudo_label_pool(src, theta0, plain, cache, scores, splits, surface, raw)
        base = _val_and_test(src, theta0, cache, scores, splits, plain)
        rows.append({"setting": "plain expert", **{f"{s}_{g}": base[s][g] for s in base for g in ("low", "middle", "high")}})
        for ratio, flsa, lr in itertools.product(args.tfa_ratio, args.flsa, args.lr_backbone):
            cfg = {**raw, "experts": {**raw["experts"], "long_tail": {**raw["experts"]["long_tail"], "tfa_ratio": ratio, "flsa": flsa},
                                       "round": {**raw["experts"]["round"], "lr_backbone": [lr, lr / 10]}}}
            weights, _ = st.self_train_expert(src, theta0, plain, cache, scores, splits, pseudo, cfg)
            m = _val_and_test(src, theta0, cache, scores, splits, weights)
            rows.append({"setting": f"tfa_ratio {ratio}, flsa {flsa}, lr_backbone {lr:g}",
                         **{f"{s}_{g}": m[s][g] for s in m for g in ("low", "middle", "high")}})
            torch.manual_seed(0)
    table = pl.DataFrame(rows).with_columns(
        ((pl.col("val_low") + pl.col("val_middle") + pl.col("val_high")) / 3).alias("val_balanced"))
    pl.Config.set_tbl_rows(100)
    pl.Config.set_tbl_width_chars(220)
    print(table.sort("val_balanced"))
    best = table.filter(pl.col("setting") != "plain expert").sort("val_balanced").row(0, named=True)
    print(f"chosen on validation: {best['setting']} (val balanced MAE {best['val_balanced']:.3f}); "
          f"its test low / middle / high MAE {best['test_low']:.3f} / {best['test_middle']:.3f} / {best['test_high']:.3f}")


if __name__ == "__main__":
    main()

"""Nodes of the ``self_training`` pipeline (thin: the work is in :mod:`aestimo.training.long_tail`,
:mod:`aestimo.training.pseudo_labels`, :mod:`aestimo.training.experts`, :mod:`aestimo.evaluation.long_tail`
and :mod:`aestimo.personalization.methods.self_training`)."""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402
import torch  # noqa: E402

from aestimo import config  # noqa: E402
from aestimo.bundle import TensorBundle  # noqa: E402
from aestimo.data.images import Rows, pixels_of  # noqa: E402
from aestimo.data.scales import SCALES  # noqa: E402
from aestimo.evaluation import people  # noqa: E402
from aestimo.evaluation.long_tail import plot_apds_surface, plot_long_tail_scatter, plot_segment_mae  # noqa: E402
from aestimo.evaluation.metrics import segment_bounds, segment_metrics  # noqa: E402
from aestimo.models.inference import predict  # noqa: E402
from aestimo.models.scorer import template_tensor  # noqa: E402
from aestimo.models.theta0 import load_scorer, normalisation  # noqa: E402
from aestimo.personalization.running import runs, selection  # noqa: E402
from aestimo.personalization.running.cluster import shared_out  # noqa: E402
from aestimo.personalization.running.jobs import prepare, run_jobs  # noqa: E402
from aestimo.personalization.running.runs import ConfiguredMethod, Sample  # noqa: E402
from aestimo.personalization import import_shared, method_class  # noqa: E402
from aestimo.personalization.running.context import build_context  # noqa: E402
from aestimo.training.data import source_splits, unlabeled_pool  # noqa: E402
from aestimo.training.experts import history_table, self_train  # noqa: E402
from aestimo.training.long_tail import LongTailOptions  # noqa: E402
from aestimo.training.pseudo_labels import PseudoLabels, grid_search, mean_surface, pseudo_label  # noqa: E402

log = logging.getLogger(__name__)


def _params(params: dict[str, Any]) -> config.SelfTrainingParams:
    p = config.parse("self_training", params)
    torch.set_num_threads(p.threads or os.cpu_count() or 1)
    return p


def _template(source: str) -> torch.Tensor:
    return template_tensor(SCALES[source].template).double()


def _probs(theta0: TensorBundle, weights: TensorBundle, image_cache: TensorBundle, rows: torch.Tensor, p: config.SelfTrainingParams) -> torch.Tensor:
    """Bin probabilities of an expert on some rows of the image store, on the configured device."""
    scorer = load_scorer(theta0, weights.tensors).to(p.torch_device)
    pixels = Rows(pixels_of(image_cache), rows)
    return predict(scorer, pixels, theta0.meta["input_size"], normalisation(theta0), precision=p.precision).double()


def _chosen(surface: pl.DataFrame) -> tuple[float, float]:
    row = surface.filter(pl.col("chosen")).row(0, named=True)
    return row["beta"], row["t"]


# --------------------------------------------------------------------------- experts


def choose_pseudo_labelling(
    source: str, theta0: TensorBundle, expert_weights: TensorBundle, image_cache: TensorBundle,
    generic_scores: pl.DataFrame, generic_splits: pl.DataFrame, params: dict[str, Any],
) -> pl.DataFrame:
    """APDS's (β, t) for one expert: the MAE surface of its kept pseudo-labels against the true labels
    of its **validation** split (never its test split), the chosen pair marked."""
    p = _params(params)
    data = source_splits(source, generic_scores, generic_splits, image_cache.meta["image_ids"])
    probs = _probs(theta0, expert_weights, image_cache, data["val"].rows, p)
    mean = float(data["train"].labels.score.mean())
    surface, (beta, t) = grid_search(probs, data["val"].labels.score.double(), _template(source), mean, p.experts.grid)
    log.info("%s: APDS beta %.3g, t %.3g chosen on %d validation images", source, beta, t, len(probs))
    return surface.with_columns(pl.lit(source).alias("expert"))


def pseudo_label_pool(
    source: str, theta0: TensorBundle, expert_weights: TensorBundle, image_cache: TensorBundle,
    generic_scores: pl.DataFrame, generic_splits: pl.DataFrame, apds_surface: pl.DataFrame, params: dict[str, Any],
) -> pl.DataFrame:
    """The expert's pseudo-labels of its unlabelled pool (other sources' training images), sharpened
    at its training mean with the chosen (β, t); ``kept`` marks the confident ones."""
    p = _params(params)
    rows, ids = unlabeled_pool(source, generic_splits, image_cache.meta["image_ids"], p.experts.pool_size, p.experts.seed)
    data = source_splits(source, generic_scores, generic_splits, image_cache.meta["image_ids"])
    probs = _probs(theta0, expert_weights, image_cache, rows, p)
    template = _template(source)
    beta, t = _chosen(apds_surface)
    pseudo = pseudo_label(probs, template, float(data["train"].labels.score.mean()), beta, t)
    log.info("%s: %d of %d pool images kept as pseudo-labels", source, int(pseudo.keep.sum()), len(ids))
    return pseudo.table(ids, probs @ template)


def _tag(long_tail: LongTailOptions, apds: bool) -> str:
    on = [name for name, flag in (("tfa", long_tail.tfa), ("flsa", long_tail.flsa > 0), ("apds", apds)) if flag]
    return "+".join(on) or "none"


def _round(
    source: str, theta0: TensorBundle, expert_weights: TensorBundle, image_cache: TensorBundle, generic_scores: pl.DataFrame,
    generic_splits: pl.DataFrame, pseudo_labels: pl.DataFrame | None, p: config.SelfTrainingParams, long_tail: LongTailOptions,
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """One self-training round from the plain expert (checkpointed: a rerun with the same inputs is free)."""
    ids = image_cache.meta["image_ids"]
    data = source_splits(source, generic_scores, generic_splits, ids)
    pixels = pixels_of(image_cache)
    if pseudo_labels is not None:
        pos = {iid: i for i, iid in enumerate(ids)}
        pool = Rows(pixels, torch.as_tensor([pos[i] for i in pseudo_labels["image_id"].to_list()], dtype=torch.long))
        pseudo = PseudoLabels.from_table(pseudo_labels)
    else:
        pool, pseudo = Rows(pixels, torch.empty(0, dtype=torch.long)), None
    tag = _tag(long_tail, pseudo is not None)
    return self_train(
        load_scorer(theta0, expert_weights.tensors).to(p.torch_device), Rows(pixels, data["train"].rows), data["train"].labels, pool, pseudo,
        Rows(pixels, data["val"].rows), data["val"].labels, _template(source).float(), theta0.meta["input_size"], normalisation(theta0),
        p.round_config(long_tail), p.experts.seed, checkpoint=Path(p.checkpoint_dir) / f"{source}_self_training_{tag}.safetensors",
        desc=f"{source} self-training ({tag})", select_by=p.experts.select_by,
    )


def self_train_expert(
    source: str, theta0: TensorBundle, expert_weights: TensorBundle, image_cache: TensorBundle,
    generic_scores: pl.DataFrame, generic_splits: pl.DataFrame, pseudo_labels: pl.DataFrame, params: dict[str, Any],
) -> tuple[TensorBundle, pl.DataFrame]:
    """The refreshed expert: one more round on labelled + kept pseudo-labelled images, TFA / FLSA as configured."""
    p = _params(params)
    best, history = _round(source, theta0, expert_weights, image_cache, generic_scores, generic_splits, pseudo_labels, p,
                           p.experts.long_tail)
    return TensorBundle(best, {"source": source, "stage": "self_training"}), history_table(history, 3)


def _test_predictions(source, theta0, image_cache, generic_scores, generic_splits, weights: dict[str, TensorBundle],
                      p: config.SelfTrainingParams) -> pl.DataFrame:
    """Each variant's scores of the expert's own test split (template scale), beside the true score."""
    data = source_splits(source, generic_scores, generic_splits, image_cache.meta["image_ids"])
    test = data["test"]
    ids = [image_cache.meta["image_ids"][i] for i in test.rows.tolist()]
    frames = []
    for variant, w in weights.items():
        score = _probs(theta0, w, image_cache, test.rows, p) @ _template(source)
        frames.append(pl.DataFrame({"expert": source, "variant": variant, "image_id": ids,
                                    "true": test.labels.score.double().numpy(), "predicted": score.numpy()}))
    return pl.concat(frames)


def _segment_rows(preds: pl.DataFrame, keys: dict[str, Any]) -> list[dict]:
    """Low / middle / high (and all) metrics of each variant, the segments cut on the test split's true scores."""
    out = []
    bounds = segment_bounds(preds.filter(pl.col("variant") == preds["variant"][0])["true"].to_numpy())
    for (variant,), t in preds.group_by(["variant"], maintain_order=True):
        for r in segment_metrics(t["true"].to_numpy(), t["predicted"].to_numpy(), bounds):
            out.append({**keys, "variant": variant, **r})
    return out


def evaluate_long_tail(
    theta0: TensorBundle, image_cache: TensorBundle, generic_scores: pl.DataFrame, generic_splits: pl.DataFrame,
    params: dict[str, Any], *weights: TensorBundle,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every expert, plain and self-trained, on its own test split: PLCC, SROCC and MAE overall and
    on the low 20 % / middle 60 % / high 20 % of the true scores; and the predictions behind them."""
    p = _params(params)
    half = len(weights) // 2
    plain, refreshed = weights[:half], weights[half:]
    preds = pl.concat([
        _test_predictions(a.meta["source"], theta0, image_cache, generic_scores, generic_splits, {"plain": a, "self_trained": b}, p)
        for a, b in zip(plain, refreshed)
    ])
    rows = [r for (src,), t in preds.group_by(["expert"], maintain_order=True) for r in _segment_rows(t, {"expert": src})]
    return pl.DataFrame(rows), preds


def ablate_long_tail(
    theta0: TensorBundle, image_cache: TensorBundle, generic_scores: pl.DataFrame, generic_splits: pl.DataFrame,
    params: dict[str, Any], *inputs: TensorBundle | pl.DataFrame,
) -> pl.DataFrame:
    """The eight on/off combinations of TFA, FLSA and APDS on one expert (``ablation.source``), each one
    round from the plain expert with the configured settings, beside the plain expert itself."""
    p = _params(params)
    src = p.ablation.source
    half = len(inputs) // 2
    weights = {w.meta["source"]: w for w in inputs[:half]}
    pseudo = dict(zip(weights, inputs[half:]))
    if src is None:
        return pl.DataFrame()
    if src not in weights:
        raise ValueError(f"parameter 'self_training.ablation.source': '{src}' is not an expert ({', '.join(weights)})")
    variants: dict[str, TensorBundle] = {"plain expert": weights[src]}
    flags: dict[str, tuple[bool, bool, bool]] = {"plain expert": (False, False, False)}
    lt = p.experts.long_tail
    for tfa, flsa, apds in itertools.product([False, True], repeat=3):
        options = lt.model_copy(update={"tfa": tfa, "flsa": lt.flsa if flsa else 0.0})
        name = "round: " + _tag(options, apds)
        best, _ = _round(src, theta0, weights[src], image_cache, generic_scores, generic_splits, pseudo[src] if apds else None, p, options)
        variants[name] = TensorBundle(best, {"source": src})
        flags[name] = (tfa, flsa, apds)
    preds = _test_predictions(src, theta0, image_cache, generic_scores, generic_splits, variants, p)
    table = pl.DataFrame(_segment_rows(preds, {"expert": src}))
    wide = table.pivot(on="segment", index=["expert", "variant"], values=["mae", "srocc", "plcc"])
    flag_table = pl.DataFrame([{"variant": v, "tfa": f[0], "flsa": f[1], "apds": f[2]} for v, f in flags.items()])
    return flag_table.join(wide, on="variant").select("expert", "variant", "tfa", "flsa", "apds", pl.exclude("expert", "variant", "tfa", "flsa", "apds"))


def choose_people_pseudo_labelling(*surfaces: pl.DataFrame) -> pl.DataFrame:
    """The (β, t) people's pseudo-labels use: the experts' validation MAE surfaces averaged, lowest mean MAE."""
    surface, _ = mean_surface(surfaces)
    return surface


def plot_long_tail(long_tail_predictions: pl.DataFrame, long_tail_metrics: pl.DataFrame, params: dict[str, Any]) -> tuple[plt.Figure, plt.Figure]:
    """Predicted against true for the ablation's expert (plain and self-trained, coloured by segment), and
    every expert's low / middle / high MAE, plain against self-trained."""
    p = _params(params)
    experts = long_tail_predictions["expert"].unique(maintain_order=True).to_list()
    src = p.ablation.source if p.ablation.source in experts else experts[0]
    t = long_tail_predictions.filter(pl.col("expert") == src)
    preds = {v: g["predicted"].to_numpy() for (v,), g in t.group_by(["variant"], maintain_order=True)}
    truth = t.filter(pl.col("variant") == next(iter(preds)))["true"].to_numpy()
    scatter = plot_long_tail_scatter(truth, preds, f"expert '{src}' on its test split: plain and self-trained (ELTA)")
    bars = plot_segment_mae(long_tail_metrics, "MAE per segment of the true score, mean over experts (dots: each expert)")
    return scatter, bars


def plot_pseudo_labelling(apds_people: pl.DataFrame, params: dict[str, Any], *surfaces: pl.DataFrame) -> tuple[plt.Figure, plt.Figure]:
    """The (β, t) MAE surface of the ablation's expert, and the mean surface the people use."""
    p = _params(params)
    by_expert = {s["expert"][0]: s for s in surfaces}
    src = p.ablation.source if p.ablation.source in by_expert else next(iter(by_expert))
    one = plot_apds_surface(by_expert[src], _chosen(by_expert[src]), f"APDS on expert '{src}': MAE of kept pseudo-labels (validation)")
    mean = plot_apds_surface(apds_people, _chosen(apds_people), "APDS, mean over experts: the (β, t) people's pseudo-labels use")
    return one, mean


# --------------------------------------------------------------------------- people


def self_train_people(
    plan: pl.DataFrame, fewshot_splits: pl.DataFrame, ratings: pl.DataFrame, expert_predictions: pl.DataFrame,
    world_utilities: pl.DataFrame, image_cache: TensorBundle, backbone_features: TensorBundle, theta0: TensorBundle,
    task_vectors: TensorBundle, self_trained_task_vectors: TensorBundle, chosen_settings: pl.DataFrame,
    apds_people: pl.DataFrame, personalization_metrics: pl.DataFrame, shared_features: TensorBundle,
    personalize_params: dict[str, Any], params: dict[str, Any],
) -> tuple[dict[str, TensorBundle], pl.DataFrame, pl.DataFrame]:
    """Person-level self-training of the configured base method on the planned people (its sample), on
    the task vectors ``people.task_vectors`` names, and the base on the other set for ``compare_sample``.
    Returns the refitted states, the metrics of these runs together with the base method's own rows on
    the same runs (from the personalize stage), and the time spent."""
    p = _params(params)
    pp = config.parse("personalize", personalize_params)
    sets = {"plain": task_vectors, "self_trained": self_trained_task_vectors}
    ctxs = {name: build_context(expert_predictions, image_cache, backbone_features, theta0, tv, p.torch_device, pp.precision) for name, tv in sets.items()}
    for c in ctxs.values():
        c.workers = pp.workers if p.torch_device.type == "cpu" else 1
        reused = import_shared(c, shared_features)  # the personalize stage's feature pass, where it is this set's
        if reused:
            log.info("self-training people: %d feature table(s) reused from the personalize stage", reused)
    configured = pp.configured_methods(ctxs["plain"].experts, selection.chosen_settings(chosen_settings))
    base_name = p.people.base or pp.deploy_method
    base = next((m for m in configured if m.name == base_name), None)
    if base is None:
        raise ValueError(f"parameter 'self_training.people.base': '{base_name}' is not a personalize.methods entry")
    if not base.method.deployable:
        raise ValueError(f"parameter 'self_training.people.base': '{base_name}' has no λ to pseudo-label with (use instant or task_vectors)")
    beta, t = _chosen(apds_people)
    try:
        if p.people.method is None:
            raise KeyError("not set: name the registered method that self-trains a person (conf/base sets self_training)")
        cls = method_class(p.people.method)
    except KeyError as err:
        raise ValueError(f"parameter 'self_training.people.method': {err.args[0]}") from None
    wrapper = cls(cls.Options(
        base=base.method.registry_name, base_options=base.method.options.model_dump(), beta=beta, t=t,
        pool_size=p.people.pool_size, album_size=p.people.album_size, seed=p.people.seed,
    ))
    sample = Sample(p.people.sample.people_per_source, p.people.sample.repeats) if p.people.sample else None
    use = p.people.task_vectors
    suffix = "" if use == "plain" else "@self_trained"
    planned: dict[str, list[ConfiguredMethod]] = {use: [ConfiguredMethod(f"{base.name}+self_training{suffix}", wrapper, base.ks, sample)]}
    if use == "self_trained":
        planned[use].append(ConfiguredMethod(f"{base.name}@self_trained", base.method, base.ks, sample))
    elif p.people.compare_sample is not None:
        cs = p.people.compare_sample
        planned["self_trained"] = [ConfiguredMethod(f"{base.name}@self_trained", base.method, base.ks, Sample(cs.people_per_source, cs.repeats))]
    data = runs.run_data(plan, fewshot_splits, ratings, expert_predictions, image_cache.meta["image_ids"], world_utilities)
    states, tables, timings = {}, [], []
    for name, methods in planned.items():
        jobs = runs.build_jobs(methods, data)
        log.info("self-training people: %d runs on the %s task vectors", len(jobs), name)
        with shared_out(ctxs[name]):  # this set's θ0 and τ reach the workers once, for the album's features and the runs
            prepared = prepare(ctxs[name], jobs)
            rows = runs.MetricRows(jobs, data)
            results = run_jobs(ctxs[name], jobs, workers=ctxs[name].workers, desc=f"self-training people ({name})", on_result=rows)
        meta = {"sources": sets[name].meta["sources"], "names": sets[name].meta["names"], "task_vectors": name}
        st, table, tm = runs.collect(jobs, results, data, meta, prepared, rows)
        for key, bundle in st.items():  # one file per person, whichever set their runs used
            states[key] = TensorBundle({**states[key].tensors, **bundle.tensors}, bundle.meta) if key in states else bundle
        tables.append(table)
        timings.append(tm)
    new = pl.concat(tables)
    base_rows = personalization_metrics.filter(pl.col("method") == base.name).join(
        new.select(*runs.RUN).unique(), on=runs.RUN, how="semi")
    return states, pl.concat([base_rows, new], how="diagonal_relaxed"), pl.concat(timings)


def summarize_self_training(self_training_metrics: pl.DataFrame, personalize_params: dict[str, Any],
                            params: dict[str, Any]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Over people (repeats averaged first): SROCC with its interval and low / middle / high MAE per
    method × k; and each self-training row paired with the base method over people."""
    p = _params(params)
    pp = config.parse("personalize", personalize_params)
    b = pp.bootstrap
    summary = people.summarize(self_training_metrics, False, b.seed, b.resamples)
    base = p.people.base or pp.deploy_method
    others = [m for m in self_training_metrics["method"].unique(maintain_order=True).to_list() if m != base]
    tables = [people.paired(self_training_metrics, m, base, b.seed, b.resamples) for m in others]
    comparisons = pl.concat(tables) if tables else pl.DataFrame(schema=people.COMPARISON_SCHEMA)
    return summary, comparisons


__all__ = [
    "ablate_long_tail", "choose_people_pseudo_labelling", "choose_pseudo_labelling", "evaluate_long_tail", "plot_long_tail",
    "plot_pseudo_labelling", "pseudo_label_pool", "self_train_expert", "self_train_people", "summarize_self_training",
]

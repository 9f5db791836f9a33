"""Nodes of the ``task_vectors`` pipeline."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402
import torch  # noqa: E402

from aestimo.bundle import TensorBundle  # noqa: E402
from aestimo.models import merged  # noqa: E402


def build_task_vectors(theta0: TensorBundle, *expert_weights: TensorBundle) -> TensorBundle:
    """Layer-wise task vectors of every expert against θ0 (n sources × L parameter tensors)."""
    return merged.task_vectors_of(theta0, *expert_weights)


def task_vector_norms(task_vectors: TensorBundle, theta0: TensorBundle) -> pl.DataFrame:
    """Per source and parameter tensor: ||tau||, and ||tau|| relative to ||theta_0||."""
    rows = []
    for j, name in enumerate(task_vectors.meta["names"]):
        base = float(theta0[name].float().norm())
        for i, source in enumerate(task_vectors.meta["sources"]):
            n = float(task_vectors[name][i].norm())
            rows.append({"source": source, "layer": j, "name": name, "norm": n, "relative_norm": n / base if base else float("nan")})
    return pl.DataFrame(rows)


def task_vector_similarity(task_vectors: TensorBundle) -> pl.DataFrame:
    """Cosine similarity between the sources' whole (layer-agnostic) task vectors."""
    flat = merged.layer_agnostic(task_vectors)
    sources = list(flat)
    m = torch.stack([flat[s] for s in sources])
    m = torch.nn.functional.normalize(m, dim=1)
    cos = (m @ m.T).numpy()
    return pl.DataFrame(
        [{"source_a": a, "source_b": b, "cosine": float(cos[i, j])} for i, a in enumerate(sources) for j, b in enumerate(sources)]
    )


def plot_similarity(similarity: pl.DataFrame) -> plt.Figure:
    sources = similarity["source_a"].unique(maintain_order=True).to_list()
    m = similarity["cosine"].to_numpy().reshape(len(sources), len(sources))
    fig, ax = plt.subplots(figsize=(1.0 * len(sources) + 2, 1.0 * len(sources) + 1))
    im = ax.imshow(m, cmap="coolwarm", vmin=-1, vmax=1)
    ax.set_xticks(range(len(sources)), sources, rotation=30, ha="right")
    ax.set_yticks(range(len(sources)), sources)
    for i in range(len(sources)):
        for j in range(len(sources)):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_title("cosine similarity of task vectors")
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def plot_norms(norms: pl.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for source in norms["source"].unique(maintain_order=True).to_list():
        t = norms.filter(pl.col("source") == source).sort("layer")
        ax.plot(t["layer"], t["relative_norm"], label=source, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("parameter tensor l (input -> head)")
    ax.set_ylabel("||tau[i, l]|| / ||theta_0[l]||")
    ax.set_title("layer-wise task-vector norms")
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    return fig




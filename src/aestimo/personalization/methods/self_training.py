"""Person-level pseudo-label self-training (ELTA's APDS, applied to one person's album).

A person rates a few photos of an album that holds many more. With the
person's personalized model (any method whose state is a λ: instant or the
exact task-vector method), the album's images they never rated are
pseudo-labelled, sharpened by APDS at the **person's own mean** (tail
predictions most), the confident ones kept, and the person's state refitted on
support + kept pseudo-labels with the same method. The person's query images
are rated by them, so they are never in the pool.

The album of a source is a seeded sample (``album_size``) of the images the
planned people of that source rated (the images the run has expert scores and
pixels for); a person's pool is ``pool_size`` of its images they did not rate.
The sample is the same for every person, so a feature pass (instant) over it
is shared, as for support images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pydantic import Field

from aestimo.options import Options
from aestimo.personalization.registry import Context, Method, Query, State, Support, method_class, register
from aestimo.training.pseudo_labels import pseudo_label

ALBUMS = "self_training/albums"
RATED = "self_training/rated"


class SelfTrainingOptions(Options):
    base: str = "instant"  # the registry method refitted (its state must hold a λ)
    base_options: dict[str, Any] = Field(default_factory=dict)
    beta: float = Field(default=5.0, ge=0)  # APDS sharpening strength (chosen on the experts' validation splits in the pipeline)
    t: float = Field(default=0.3, ge=0, le=1)  # keep a pseudo-label where the sharpened maximum probability reaches t
    pool_size: int = Field(default=32, ge=1)  # unrated album images pseudo-labelled per person
    album_size: int = Field(default=96, ge=1)  # images per source the pools are drawn from
    seed: int = 0


class Album:
    """One source's album sample: cache rows and the experts' scores of each."""

    def __init__(self, rows: torch.Tensor, expert_scores: np.ndarray):
        self.rows, self.expert_scores = rows, expert_scores

    def pool(self, rated: torch.Tensor, size: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
        """Up to ``size`` album images not in ``rated``, drawn from ``seed``."""
        free = np.flatnonzero(~np.isin(self.rows.numpy(), rated.numpy()))
        pick = np.sort(np.random.default_rng(seed).permutation(free)[:size])
        return self.rows[pick], self.expert_scores[:, pick]


def albums(supports: Sequence[Support], queries: Sequence[Query], size: int, seed: int) -> dict[str, Album]:
    """Each source's album: a seeded sample of ``size`` of the images its planned people rated."""
    seen: dict[str, dict[int, np.ndarray]] = {}
    for s, q in zip(supports, queries):
        by_row = seen.setdefault(s.source, {})
        for rows, scores in ((s.rows, s.expert_scores), (q.rows, q.expert_scores)):
            for j, r in enumerate(rows.tolist()):
                by_row.setdefault(r, scores[:, j])
    out = {}
    for source, by_row in sorted(seen.items()):
        rows = np.array(sorted(by_row))
        rows = np.sort(np.random.default_rng(seed).permutation(rows)[:size])
        out[source] = Album(torch.as_tensor(rows, dtype=torch.long), np.stack([by_row[r] for r in rows], axis=1))
    return out


@register("self_training")
class SelfTraining(Method):
    """``base`` fitted on the support, its pseudo-labels of the person's unrated album images
    (APDS at the person's mean), then ``base`` refitted on support + kept pseudo-labels. The
    state is the refitted one plus ``pseudo_kept`` (how many pseudo-labels were kept)."""

    Options = SelfTrainingOptions
    deployable = True
    heavy = True

    def __init__(self, options: SelfTrainingOptions | None = None):
        super().__init__(options)
        cls = method_class(self.options.base)
        if not cls.deployable:
            raise ValueError(f"self_training: base method '{self.options.base}' has no λ to pseudo-label with; use instant or task_vectors")
        self.base = cls(cls.Options.model_validate(self.options.base_options))

    def prepare(self, supports: Sequence[Support], queries: Sequence[Query], ctx: Context) -> None:
        o = self.options
        ctx.shared[ALBUMS] = albums(supports, queries, o.album_size, o.seed)
        ctx.shared[RATED] = rated_by_person(supports, queries)
        self.base.prepare(supports, queries, ctx)
        cover = getattr(self.base, "cover", None)  # e.g. instant's features of the album images too
        if cover is not None:
            cover({src: a.rows for src, a in ctx.shared[ALBUMS].items()}, ctx)

    def fit(self, support: Support, ctx: Context) -> State:
        o = self.options
        state = self.base.fit(support, ctx)
        album = ctx.shared.get(ALBUMS, {}).get(support.source)
        if album is None:
            raise RuntimeError("self_training: no album for this source; run Method.prepare on the planned runs first")
        # never a rated image: the support, and everything the person rated in any planned run (their queries)
        rated = torch.cat([support.rows, ctx.shared.get(RATED, {}).get((support.source, support.rater_id), support.rows)])
        rows, scores = album.pool(rated, o.pool_size, support.seed)
        if not len(rows):
            return {**state, "pseudo_kept": torch.tensor(0.0)}
        template = ctx.template(support.source)
        probs = ctx.merged.probs(ctx.images(rows), state["lambda"]).double()
        pseudo = pseudo_label(probs, template.double(), float(support.y.mean()), o.beta, o.t)
        keep = pseudo.keep
        if not bool(keep.any()):
            return {**state, "pseudo_kept": torch.tensor(0.0)}
        bigger = Support(
            support.source, support.rater_id, support.k, support.repeat, support.seed,
            torch.cat([support.rows, rows[keep]]),
            torch.cat([support.y, pseudo.score[keep].float()]),
            np.concatenate([support.expert_scores, scores[:, keep.numpy()]], axis=1),
        )
        return {**self.base.fit(bigger, ctx), "pseudo_kept": torch.tensor(float(keep.sum()))}

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        return self.base.predict({k: v for k, v in state.items() if k != "pseudo_kept"}, query, ctx)


def rated_by_person(supports: Sequence[Support], queries: Sequence[Query]) -> dict[tuple[str, str], torch.Tensor]:
    """Every image each person rated (support and query rows of all their runs): never pseudo-labelled."""
    out: dict[tuple[str, str], list[torch.Tensor]] = {}
    for s, q in zip(supports, queries):
        out.setdefault((s.source, s.rater_id), []).extend([s.rows, q.rows])
    return {k: torch.unique(torch.cat(v)) for k, v in out.items()}


__all__ = ["ALBUMS", "Album", "SelfTraining", "SelfTrainingOptions", "albums", "rated_by_person"]

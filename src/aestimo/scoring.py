"""Score images for one person: merge θ0 + Σ λ τ once, then run a plain scorer.

:class:`PersonalScorer` is built from bundles (θ0, the task vectors, the
person's λ) or from their files (:meth:`PersonalScorer.from_files`), so it
works from any directory. Finding a person's files by id in a project is the
command line's job (:mod:`aestimo.console`). Scores are on the person's own
scale.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import torch

from aestimo import device as devices
from aestimo.bundle import TensorBundle, load_bundle
from aestimo.data.images import center_view, load_image, to_float
from aestimo.data.scales import SCALES, Scale, user_scale
from aestimo.models.merged import merge_state
from aestimo.models.scorer import Scorer, template_tensor
from aestimo.models.theta0 import load_scorer, normalisation
from aestimo.personalization.running.keys import parse_state_key, split_person_key, state_key

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class ScoreResult:
    table: pl.DataFrame  # path, score
    errors: list[str] = field(default_factory=list)


class PersonalScorer:
    """A person's merged scorer, ready to score images (the model is built once)."""

    def __init__(self, theta0: TensorBundle, task_vectors: TensorBundle, lam: torch.Tensor, source: str, scale: Scale | None = None,
                 device: str | torch.device = "cpu"):
        self.device = devices.resolve(device)
        self.scorer: Scorer = load_scorer(theta0, merge_state(theta0, task_vectors, lam)).to(self.device)
        self.source = source
        self.scale = scale if scale is not None else SCALES[source]  # the person's own (a new person's file states it)
        self.template = template_tensor(self.scale.template)
        self.cache_size = int(theta0.meta.get("cache_size", theta0.meta["input_size"]))
        self.crop = int(theta0.meta["input_size"])
        self.norm = normalisation(theta0)

    @classmethod
    def from_bundles(
        cls,
        theta0: TensorBundle,
        task_vectors: TensorBundle,
        coefficients: TensorBundle,
        method: str | None = None,
        k: int | None = None,
        repeat: int = 0,
        source: str | None = None,
        device: str | torch.device = "cpu",
    ) -> PersonalScorer:
        """The person whose fitted states are ``coefficients``, with ``method``'s λ (default: the run's deployed method).

        Scores are on the source's scale, or on the person's own ``scale`` ``[lo, hi]`` where the
        coefficients' metadata holds one (people personalized from their own ratings file)."""
        name, lam = pick_lambda(coefficients, method, k, repeat)
        source = source or coefficients.meta.get("source")
        if source not in SCALES:
            raise ValueError(f"the coefficients name no known source (got {source!r}); pass source= one of {sorted(SCALES)}")
        own = coefficients.meta.get("scale")
        log.info("scoring with λ '%s'", name)
        return cls(theta0, task_vectors, lam, source, user_scale(*own) if own else None, device)

    @classmethod
    def from_files(
        cls, theta0: str | Path, task_vectors: str | Path, coefficients: str | Path, method: str | None = None, k: int | None = None, repeat: int = 0,
        device: str | torch.device = "cpu",
    ) -> PersonalScorer:
        """As :meth:`from_bundles`, from safetensors files (the person's source from the file's
        metadata, else from its name ``<source>__<rater_id>.safetensors``)."""
        bundle = load_bundle(coefficients)
        source = bundle.meta.get("source") or split_person_key(Path(coefficients).stem)[0]
        return cls.from_bundles(load_bundle(theta0), load_bundle(task_vectors), bundle, method, k, repeat, source, device)

    @torch.no_grad()
    def score_tensor(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, 3, cache_size, cache_size)`` -> scores on the person's scale."""
        x = to_float(center_view(devices.to(pixels, self.device), self.crop), *self.norm)
        return self.scale.from_template((self.scorer(x) @ self.template.to(self.device)).cpu())

    def score_paths(self, paths: list[Path], batch: int = 64) -> ScoreResult:
        ok_paths, pixels, errors = [], [], []
        for p in paths:
            try:
                img = load_image(p, self.cache_size)
            except FileNotFoundError:
                errors.append(f"{p}: file not found")
                continue
            except Exception as err:  # PIL raises several types for non-images
                errors.append(f"{p}: not a readable image ({type(err).__name__}: {err})")
                continue
            ok_paths.append(str(p))
            pixels.append(img)
        scores = []
        for i in range(0, len(pixels), batch):
            scores.append(self.score_tensor(torch.stack(pixels[i : i + batch])))
        values = torch.cat(scores).tolist() if scores else []
        return ScoreResult(pl.DataFrame({"path": ok_paths, "score": values}, schema={"path": pl.String, "score": pl.Float64}), errors)


def expand_inputs(inputs: list[str | Path]) -> tuple[list[Path], list[str]]:
    """Files as given; folders expanded to the image files inside (sorted). Missing paths are errors."""
    files, errors = [], []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                errors.append(f"{p}: folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            errors.append(f"{p}: no such file or folder")
    return files, errors


def pick_lambda(coefficients: TensorBundle, method: str | None, k: int | None, repeat: int = 0) -> tuple[str, torch.Tensor]:
    """The λ to deploy: ``method`` (default: the run's deploy method), the largest k, repeat 0."""
    method = method or coefficients.meta.get("deploy_method", "layerwise_rank")
    fitted = [parse_state_key(key) for key in coefficients.tensors]
    ks = sorted({kk for m, kk, _, t in fitted if m == method and t == "lambda"})
    if not ks:
        raise KeyError(f"no coefficients for method '{method}'; have {sorted({m for m, _, _, t in fitted if t == 'lambda'})}")
    key = state_key(method, ks[-1] if k is None else k, repeat, "lambda")
    if key not in coefficients.tensors:
        raise KeyError(f"no coefficients '{key}'; have {sorted(state_key(m, kk, r, t) for m, kk, r, t in fitted if m == method)}")
    return key, coefficients.tensors[key]


def score_images(scorer: PersonalScorer, images) -> ScoreResult:
    """Score image files or folders; bad files are reported, the rest scored."""
    paths, errors = expand_inputs(list(images) if isinstance(images, (list, tuple)) else [images])
    result = scorer.score_paths(paths)
    result.errors[:0] = errors
    return result

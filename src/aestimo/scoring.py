"""Score images for one person: merge θ0 + Σ λ τ once, then run a plain scorer.

``score(images, user=...)`` loads θ0, the task vectors and that person's λ
from the project's catalog, builds the merged weights a single time and scores
at the speed of the plain backbone. Scores are on the person's own scale.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import torch

from aestimo.datasets.safetensors_dataset import TensorBundle
from aestimo.imagecache import center_view, load_image, to_float
from aestimo.models.scorer import Scorer, template_tensor
from aestimo.scales import SCALES
from aestimo.taskvec import MergedScorer

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class UnknownPersonError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class ScoreResult:
    table: pl.DataFrame  # path, score
    errors: list[str] = field(default_factory=list)


class PersonalScorer:
    """A person's merged scorer, ready to score images."""

    def __init__(self, theta0: TensorBundle, task_vectors: TensorBundle, lam: torch.Tensor, source: str):
        from aestimo import experts

        module = experts.scorer_from_state(theta0)
        merged = MergedScorer(module, theta0.tensors, task_vectors)
        state = merged.state_dict(lam)
        self.scorer: Scorer = experts.scorer_from_state(theta0, state)
        self.source = source
        self.template = template_tensor(SCALES[source].template)
        self.cache_size = int(theta0.meta.get("cache_size", theta0.meta["input_size"]))
        self.crop = int(theta0.meta["input_size"])
        self.norm = experts.norm_of(theta0)

    @torch.no_grad()
    def score_tensor(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, 3, cache_size, cache_size)`` -> scores on the person's scale."""
        x = to_float(center_view(pixels, self.crop), *self.norm)
        return SCALES[self.source].from_template(self.scorer(x) @ self.template)

    def score_paths(self, paths: list[Path], batch: int = 64) -> ScoreResult:
        ok_paths, pixels, errors = [], [], []
        for p in paths:
            try:
                arr = load_image(p, self.cache_size)
            except FileNotFoundError:
                errors.append(f"{p}: file not found")
                continue
            except Exception as err:  # PIL raises several types for non-images
                errors.append(f"{p}: not a readable image ({type(err).__name__}: {err})")
                continue
            ok_paths.append(str(p))
            pixels.append(torch.from_numpy(arr).permute(2, 0, 1))
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
    keys = [key for key in coefficients.tensors if key.startswith(f"{method}/")]
    if not keys:
        raise KeyError(f"no coefficients for method '{method}'; have {sorted({k.split('/')[0] for k in coefficients.tensors})}")
    ks = sorted({int(key.split("/")[1][1:]) for key in keys})
    k = ks[-1] if k is None else k
    key = f"{method}/k{k}/r{repeat}"
    if key not in coefficients.tensors:
        raise KeyError(f"no coefficients '{key}'; have {sorted(keys)}")
    return key, coefficients.tensors[key]


def _catalog(project_path: str | Path, env: str | None):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
    project_path = Path(project_path).resolve()
    bootstrap_project(project_path)
    session = KedroSession.create(project_path=project_path, env=env)
    return session.load_context().catalog


def load_person(
    user: str, project_path: str | Path = ".", env: str | None = None, method: str | None = None, k: int | None = None, repeat: int = 0
) -> PersonalScorer:
    """Find ``user`` (``source:rater_id`` or a bare id) among the personalized people and build its scorer."""
    catalog = _catalog(project_path, env)
    partitions = catalog.load("user_coefficients")
    src, _, rid = user.rpartition(":")
    matches = [key for key in partitions if key.split("__", 1)[1] == rid and (not src or key.split("__", 1)[0] == src)]
    if not matches:
        known = sorted(key.replace("__", ":", 1) for key in partitions)
        raise UnknownPersonError(
            f"unknown person '{user}': no personalized coefficients. Personalized people: {', '.join(known[:10])}"
            + (" ..." if len(known) > 10 else "")
        )
    if len(matches) > 1:
        raise UnknownPersonError(f"'{user}' is ambiguous ({matches}); write it as source:rater_id")
    key = matches[0]
    coefficients = partitions[key]()
    name, lam = pick_lambda(coefficients, method, k, repeat)
    log.info("scoring for %s with λ '%s'", key, name)
    return PersonalScorer(catalog.load("theta0"), catalog.load("task_vectors"), lam, key.split("__", 1)[0])


def score(images, user: str, project_path: str | Path = ".", env: str | None = None, **kwargs) -> ScoreResult:
    """Score image files or folders for ``user``; bad files are reported, the rest scored."""
    scorer = load_person(user, project_path, env, **kwargs)
    paths, errors = expand_inputs(list(images) if isinstance(images, (list, tuple)) else [images])
    result = scorer.score_paths(paths)
    result.errors[:0] = errors
    return result

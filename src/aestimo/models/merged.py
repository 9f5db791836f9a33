"""Layer-wise task vectors and the merged forward.

``tau[i, l] = theta_i[l] - theta_0[l]`` for every source ``i`` and every
parameter tensor ``l``. A person's model is ``theta_0 + sum_i lambda[i, l] *
tau[i, l]``; :class:`MergedScorer` builds those tensors and runs the scorer
through ``torch.func.functional_call``, so gradients reach ``lambda`` alone and
no model is ever copied. Batch-norm running statistics are buffers shared by
θ0 and every expert (they are frozen during fine-tuning), so a merge is exact,
and each merged model's batch norms are folded into its convolutions
(:mod:`aestimo.models.folding`) before it runs.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call, vmap

from aestimo.bundle import TensorBundle
from aestimo.device import autocast
from aestimo.models.folding import BatchNormFolding
from aestimo.models.inference import SCORE_BATCH, batch_slices
from aestimo.models.staged import StagedScorer
from aestimo.models.theta0 import load_scorer


def parameter_names(module: nn.Module) -> list[str]:
    return [n for n, _ in module.named_parameters()]


def build_task_vectors(
    module: nn.Module, theta0: Mapping[str, torch.Tensor], experts: Mapping[str, Mapping[str, torch.Tensor]], atol: float = 0.0
) -> TensorBundle:
    """Stack ``tau[:, l]`` per parameter tensor ``l`` as ``(n_sources, *shape)``.

    Checks that every expert kept θ0's buffers (batch-norm statistics): a
    merge would not be exact otherwise.
    """
    names = parameter_names(module)
    params = set(names)
    sources = list(experts)
    for s, state in experts.items():
        for k, v in state.items():
            if k not in params and k in theta0 and v.is_floating_point() and not torch.allclose(v, theta0[k], atol=atol, rtol=0):
                raise ValueError(
                    f"expert '{s}' changed buffer '{k}': batch-norm statistics must stay frozen at θ0 "
                    "(fine-tune with aestimo.models.scorer.freeze_bn_stats)"
                )
    taus = {n: torch.stack([experts[s][n].float() - theta0[n].float() for s in sources]) for n in names}
    return TensorBundle(taus, {"sources": sources, "names": names})


def task_vectors_of(theta0: TensorBundle, *expert_weights: TensorBundle) -> TensorBundle:
    """Layer-wise task vectors of every expert bundle (its ``source`` in its metadata) against θ0."""
    return build_task_vectors(load_scorer(theta0), theta0.tensors, {b.meta["source"]: b.tensors for b in expert_weights})


def layer_agnostic(task_vectors: TensorBundle) -> dict[str, torch.Tensor]:
    """One flat vector per source (the layer-agnostic view, for ablations)."""
    flat = torch.cat([task_vectors[n].flatten(1) for n in task_vectors.meta["names"]], dim=1)
    return {s: flat[i] for i, s in enumerate(task_vectors.meta["sources"])}


def merge_parameters(
    theta0: Mapping[str, torch.Tensor], names: list[str], taus: list[torch.Tensor], lam: torch.Tensor
) -> dict[str, torch.Tensor]:
    """``theta_0[l] + sum_i lam[i, l] * tau[i, l]`` for every parameter tensor ``l`` in ``names``.

    ``lam`` is ``(n, L)`` (layer-wise) or ``(n,)`` (layer-agnostic, broadcast over layers).
    """
    if lam.dim() == 1:
        lam = lam[:, None].expand(-1, len(names))
    return {n: theta0[n].float() + torch.tensordot(lam[:, j], tau, dims=1) for j, (n, tau) in enumerate(zip(names, taus))}


def merge_state(theta0: TensorBundle, task_vectors: TensorBundle, lam: torch.Tensor) -> dict[str, torch.Tensor]:
    """A plain state dict of the merged model (θ0's buffers kept): merge once, then score at backbone speed."""
    names = list(task_vectors.meta["names"])
    with torch.no_grad():
        merged = merge_parameters(theta0.tensors, names, [task_vectors[n].float() for n in names], lam)
    return {**theta0.tensors, **merged}


def channels_last(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Conv weights (4-D) in channels_last, like the scorer's own: mixed layouts are slow on CPU."""
    return {n: w.contiguous(memory_format=torch.channels_last) if w.dim() == 4 else w for n, w in weights.items()}


def _in_vmap() -> bool:
    return torch._C._functorch.maybe_current_level() is not None


class MergedScorer:
    """``theta_0 + sum_i lambda[i, l] * tau[i, l]`` through one module, never copied.

    ``lam`` has shape ``(n_sources, n_layers)`` (layer-wise) or ``(n_sources,)``
    (layer-agnostic, broadcast over layers). :meth:`batched` maps over people:
    ``lam`` ``(P, n, L)`` and inputs ``(P, B, ...)``.
    """

    def __init__(
        self, module: nn.Module, theta0: Mapping[str, torch.Tensor], task_vectors: TensorBundle,
        fold: bool = True, probe_shape: tuple[int, ...] | None = None, precision: str = "fp32",
    ):
        self.module = module.eval()
        #: the precision :meth:`probs` scores in (fp32, or bf16 / fp16 under autocast); λ learning is always fp32
        self.precision = precision
        self.names: list[str] = list(task_vectors.meta["names"])
        self.sources: list[str] = list(task_vectors.meta["sources"])
        self.theta0 = {n: theta0[n].detach().float() for n in self.names}
        self.taus = [task_vectors[n].detach().float() for n in self.names]
        self.buffers = {n: b.detach() for n, b in module.named_buffers()}
        for n, b in self.buffers.items():
            if n in theta0:
                self.buffers[n] = theta0[n].detach()
        for p in module.parameters():
            p.requires_grad_(False)
        #: batch norms folded into the convolutions after each merge (None: run the module as it is)
        self.folding = BatchNormFolding.of(module, probe_shape) if fold else None
        #: the module that scores many images at one λ in two batch sizes (None: batches of one size)
        base = self.folding.module if self.folding is not None else self.module
        self.staged = StagedScorer.of(base, probe_shape) if probe_shape is not None else None

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.sources), len(self.names)

    @property
    def device(self) -> torch.device:
        """Where θ0, the task vectors and the module sit (inputs and λ are moved here)."""
        return self.taus[0].device if self.taus else torch.device("cpu")

    @classmethod
    def from_bundles(cls, theta0: TensorBundle, task_vectors: TensorBundle, device: torch.device | str = "cpu",
                     precision: str = "fp32") -> MergedScorer:
        """θ0's scorer with the task vectors attached: ``theta_0 + sum_i lambda[i, l] tau[i, l]`` for any λ,
        on ``device``, scoring in ``precision``."""
        size = int(theta0.meta.get("input_size", 64))
        device = torch.device(device)
        if device.type != "cpu":
            theta0 = TensorBundle({k: v.to(device) for k, v in theta0.tensors.items()}, theta0.meta)
            task_vectors = TensorBundle({k: v.to(device) for k, v in task_vectors.tensors.items()}, task_vectors.meta)
        return cls(load_scorer(theta0).to(device), theta0.tensors, task_vectors, probe_shape=(2, 3, size, size), precision=precision)

    def merged(self, lam: torch.Tensor) -> dict[str, torch.Tensor]:
        """The merged module's parameters (plain layout, batch norms unfolded); ``lam`` moves to the scorer's device."""
        return merge_parameters(self.theta0, self.names, self.taus, lam.to(self.device))

    def unfolded(self, lam: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every weight of the plain module at ``lam``: merged parameters, θ0's buffers, conv weights
        in channels_last (what the unfolded module runs on: exact derivatives, fine-tuning)."""
        return channels_last({**self.merged(lam), **self.buffers})

    def _weights(self, lam: torch.Tensor) -> tuple[nn.Module, dict[str, torch.Tensor]]:
        """The module to run and its weights at ``lam``: folded when the folding holds."""
        out = {**self.merged(lam), **self.buffers}
        module = self.module
        if self.folding is not None:
            out, module = self.folding.fold(out), self.folding.module
        return module, out if _in_vmap() else channels_last(out)

    def __call__(self, x: torch.Tensor, lam: torch.Tensor, drop_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Bin probabilities of the merged model, ``(B, 10)``; ``drop_mask``: the head's dropout (see ScoreHead.logits)."""
        args = (x,) if drop_mask is None else (x, drop_mask)
        module, weights = self._weights(lam)
        return functional_call(module, weights, args)

    @torch.inference_mode()
    def probs(self, x: torch.Tensor, lam: torch.Tensor, batch: int = SCORE_BATCH) -> torch.Tensor:
        """Bin probabilities ``(B, 10)`` of many images at one λ: merged (and folded) once, scored in
        batches of equal size (at most ``batch``; the low-resolution stages in larger ones, see
        :mod:`aestimo.models.staged`)."""
        if not len(x):
            return torch.empty((0, 10), device=x.device)
        module, weights = self._weights(lam)
        with autocast(self.device, self.precision):
            if self.staged is not None:
                return functional_call(self.staged, weights, (x,), {"front_batch": batch}).float()
            return torch.cat([functional_call(module, weights, (x[part],)) for part in batch_slices(len(x), batch)]).float()

    def batched(self, x: torch.Tensor, lam: torch.Tensor, drop_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Many people at once: ``x`` ``(P, B, C, H, W)``, ``lam`` ``(P, n, L)`` (``drop_mask`` ``(P, B, hidden)``) -> ``(P, B, 10)``."""
        args = (x, lam) if drop_mask is None else (x, lam, drop_mask)
        return vmap(self.__call__, in_dims=0, randomness="error")(*args)


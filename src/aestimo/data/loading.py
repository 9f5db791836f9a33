"""Batches of stored images for the training and inference passes, read in the process or ahead
of it by a ``torch.utils.data.DataLoader``'s worker processes (``experts.loader_workers``).

Reading never changes a number: a worker reads exactly the rows the process would have read.
In-order passes (the feature pass, predictions, validation) hand each worker a block of rows.
Training batches are random, and their draws (rows, crop offsets, flips) come from the stage's
seeded generator: the sampler draws each step's :class:`ViewPlan` from a copy of it, in the
order the process would, and every batch carries the generator's state after its draws, which
the training loop takes over when it consumes the batch. So a run with workers trains the same
weights as one without, and a checkpoint resumes where it would have.

The pixels are a tensor, a :class:`~aestimo.bundle.StoredRows` or a
:class:`~aestimo.data.images.Rows` of one: a stored table travels to a worker as its file's path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import DataLoader, Dataset


@dataclass(frozen=True)
class ViewPlan:
    """One training batch's random draws: which rows, where each crop starts, which are flipped."""

    idx: torch.Tensor
    tops: torch.Tensor
    lefts: torch.Tensor
    flips: torch.Tensor


def draw_views(n: int, h: int, w: int, crop: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Crop offsets and flips for ``n`` images of ``h`` × ``w``, drawn from ``generator``."""
    tops = torch.randint(0, h - crop + 1, (n,), generator=generator)
    lefts = torch.randint(0, w - crop + 1, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    return tops, lefts, flips


def apply_views(pixels: torch.Tensor, crop: int, tops: torch.Tensor, lefts: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """The ``crop``-pixel views of ``pixels`` at the drawn offsets, flipped where drawn."""
    views = []
    for i in range(len(pixels)):
        v = TF.crop(pixels[i], int(tops[i]), int(lefts[i]), crop, crop)
        views.append(TF.horizontal_flip(v) if flips[i] else v)
    return torch.stack(views) if views else pixels[:, :, :crop, :crop]


def draw_plan(n_train: int, batch: int, shape: tuple[int, ...], crop: int, generator: torch.Generator) -> ViewPlan:
    """A training batch's draws, in the order the training loop has always made them."""
    idx = torch.randint(0, n_train, (min(batch, n_train),), generator=generator)
    return ViewPlan(idx, *draw_views(len(idx), shape[-2], shape[-1], crop, generator))


def _loader(dataset, workers: int, pin: bool, sampler=None) -> DataLoader:
    # its own generator: a DataLoader seeds its workers from the global RNG otherwise, and the
    # global RNG is the model's (dropout): reading ahead would change the weights trained
    return DataLoader(
        dataset, batch_size=None, sampler=sampler, num_workers=workers, pin_memory=pin,
        prefetch_factor=2 if workers else None, persistent_workers=False, generator=torch.Generator().manual_seed(0),
    )


class _Blocks(Dataset):
    """Item ``i``: rows ``i·size … (i+1)·size`` of ``pixels``."""

    def __init__(self, pixels, size: int):
        self.pixels, self.size = pixels, size

    def __len__(self) -> int:
        return -(-len(self.pixels) // self.size)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.pixels[i * self.size : (i + 1) * self.size]


def blocks(pixels, size: int, workers: int = 0, pin: bool = False) -> Iterator[torch.Tensor]:
    """The rows of ``pixels`` in order, ``size`` at a time: read here (``workers`` 0) or ahead by
    that many worker processes (``pin``: into page-locked memory, for a fast copy to a GPU)."""
    if workers <= 0:
        for i in range(0, len(pixels), size):
            yield pixels[i : i + size]
        return
    yield from _loader(_Blocks(pixels, size), workers, pin)


class _Plans:
    """Endless training plans drawn from a copy of the loop's generator (in the main process,
    where a ``DataLoader`` runs its sampler), each with the generator's state after it."""

    def __init__(self, n_train: int, batch: int, shape: tuple[int, ...], crop: int, state: torch.Tensor):
        self.args, self.state = (n_train, batch, shape, crop), state

    def __iter__(self):
        gen = torch.Generator()
        gen.set_state(self.state)
        while True:
            plan = draw_plan(*self.args, gen)
            yield plan, gen.get_state()


class _Views(Dataset):
    """Item ``(plan, state)``: the plan's rows read and cropped, with the plan and the state."""

    def __init__(self, pixels, crop: int):
        self.pixels, self.crop = pixels, crop

    def __getitem__(self, item):
        plan, state = item
        return plan, apply_views(self.pixels[plan.idx], self.crop, plan.tops, plan.lefts, plan.flips), state


def training_views(pixels, n_train: int, batch: int, crop: int, generator: torch.Generator, workers: int, pin: bool = False):
    """Every training step's ``(plan, uint8 views)``, read ahead by ``workers`` processes; drawn
    from ``generator``'s current state, which is moved to the state after each step's draws as
    that step is handed out (the same draws, and the same state to checkpoint, as drawing here)."""
    sampler = _Plans(n_train, batch, tuple(pixels.shape), crop, generator.get_state())
    for plan, views, state in _loader(_Views(pixels, crop), workers, pin, sampler=sampler):
        generator.set_state(state)
        yield plan, views

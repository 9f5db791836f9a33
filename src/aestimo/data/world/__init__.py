"""Synthetic aesthetic world: procedural images rated by simulated people, written in real formats.

Public API: :class:`WorldConfig`, :func:`generate_world`, :func:`world_exists`,
:func:`read_truth`, :func:`world_statistics`.
"""

from .config import SMOKE_OVERRIDES, WorldConfig, smoke_config
from .generate import generate_world, read_manifest, read_truth, world_exists
from .statistics import world_statistics

__all__ = ["WorldConfig", "SMOKE_OVERRIDES", "smoke_config", "generate_world", "world_exists", "read_truth",
           "read_manifest", "world_statistics"]

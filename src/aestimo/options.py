"""The base of every typed parameter group: unknown keys are errors, values are frozen.

Each group is defined once, next to the code that uses it (a training stage in
:mod:`aestimo.training.experts`, a personalization method's options in its
module), and :mod:`aestimo.config` composes them into the pipelines' blocks.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

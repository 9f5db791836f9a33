"""Few-shot personalization: one registry of methods, one interface (fit a person's state on their
support set, predict scores from it), and the machinery that runs them over every planned person.

Importing this package registers the built-in methods: ``task_vectors`` (λ learned through the
merged scorer), ``zero_shot_ensemble``, ``single_expert``, ``best_expert_on_support`` and the
``oracle`` ceiling. A new method is one module with a ``@register("name")`` class, imported below.
"""

import importlib

from aestimo.personalization.registry import REGISTRY, Context, Method, Query, Support, method_class, register

for _m in ("task_vectors", "expert_choice", "oracle"):
    importlib.import_module(f"{__name__}.{_m}")

__all__ = ["REGISTRY", "Context", "Method", "Query", "Support", "method_class", "register"]

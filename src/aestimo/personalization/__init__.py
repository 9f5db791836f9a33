"""Few-shot personalization: one registry of methods, one interface (fit a person's state on their
support set, predict scores from it), and the machinery that runs them over every planned person.

Importing this package registers the built-in methods: ``task_vectors`` (λ learned through the
merged scorer), ``instant`` (λ from the linearized scorer), ``zero_shot_ensemble``, ``single_expert``, ``best_expert_on_support``, ``output_mix``
(a learned mix of the experts' outputs), ``linear_probe`` (ridge on θ0's features) and the
``oracle`` and ``mixing_ceiling`` ceilings; ``self_training`` (person-level pseudo-labels), ``pa_iaa``,
``aesmamba_p`` (prompts), ``multi_attribute``, ``finetune_head`` and ``finetune_all``. A new method is one module with a ``@register("name")`` class in ``methods/``, imported there.
The machinery that runs them is ``running/``.
"""

from aestimo.personalization.registry import (
    REGISTRY, Context, GenericModel, Method, Query, Support, export_shared, generic_models, import_shared, method_class, register,
    shareable,
)
from aestimo.personalization import methods  # noqa: E402,F401  (registers every method)

__all__ = [
    "REGISTRY", "Context", "GenericModel", "Method", "Query", "Support", "export_shared", "generic_models", "import_shared",
    "method_class", "register", "shareable",
]

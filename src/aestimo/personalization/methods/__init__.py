"""The personalization methods, one module each (the field's methods, which start from generic
models trained beforehand, in ``field``). Importing this package registers every one of them."""

import importlib

for _m in ("task_vectors", "instant", "expert_choice", "output_mix", "linear_probe", "oracle", "self_training", "finetune",
           "field.pa_iaa", "field.prompts", "field.multi_attribute"):
    importlib.import_module(f"{__name__}.{_m}")

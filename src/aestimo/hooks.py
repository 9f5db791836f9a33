"""Project hooks: validate every parameter block before any node runs."""

from __future__ import annotations

from kedro.framework.hooks import hook_impl


class ParameterValidationHooks:
    @hook_impl
    def after_context_created(self, context) -> None:
        from aestimo import config

        params = context.params
        for section in config.SECTIONS:
            if section in params:
                config.parse(section, params[section])

"""Typed settings from the environment that fail loudly when a value is wrong.

django-environ reads the variables; this subclass makes booleans strict (``maybe`` is an
error, not ``False``) and adds choices, so a typo in production stops the process at start.
"""

from __future__ import annotations

import builtins
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class Env(environ.Env):
    """environ.Env with strict booleans and enumerated choices."""

    def bool(self, var: str, default: Any = environ.Env.NOTSET) -> bool:
        raw = self.str(var, default=None)
        if raw is None:
            if default is environ.Env.NOTSET:
                raise ImproperlyConfigured(f"Set the {var} environment variable")
            return bool(default)
        word = raw.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ImproperlyConfigured(
            f"{var}={raw!r} is not a boolean: use one of {sorted(TRUE_WORDS | FALSE_WORDS - {''})}"
        )

    def int(self, var: str, default: Any = environ.Env.NOTSET) -> int:
        try:
            return super().int(var, default=default)
        except ValueError as error:
            raise ImproperlyConfigured(f"{var}: {self.str(var)!r} is not an integer") from error

    def choice(self, var: str, choices: tuple[str, ...], default: str) -> str:
        value = self.str(var, default=default).strip().lower()
        if value not in choices:
            raise ImproperlyConfigured(f"{var}={value!r} must be one of {', '.join(choices)}")
        return value

    def positive_int(self, var: str, default: builtins.int) -> builtins.int:
        value = self.int(var, default=default)
        if value <= 0:
            raise ImproperlyConfigured(f"{var}={value} must be a positive integer")
        return value

"""evo: evolutionary, population-based search that improves code against a measured metric.

Users' targets import evo (their fixed parts live outside this repository), so a documented name
that moves keeps working from its old place: `forwarding` serves it from its new one with a
FutureWarning (the warning category meant for users, shown by default) that names the new import.
targets/README.md ("Public names") lists the names that are kept this way.
"""

import importlib
import warnings
from collections.abc import Callable

__version__ = "0.1.0"


def forwarding(module: str, moved: dict[str, str]) -> Callable[[str], object]:
    """A module's `__getattr__` (PEP 562) that serves each old name of `moved` from where it
    lives now ("package.module", or "package.module:name" for a name inside a module)."""

    def __getattr__(name: str) -> object:
        if name not in moved:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        where, _, attribute = moved[name].partition(":")
        if attribute:
            new = f"`from {where} import {attribute}`"
            found = getattr(importlib.import_module(where), attribute)
        else:
            package, _, leaf = where.rpartition(".")
            new = f"`from {package} import {leaf}`"
            found = importlib.import_module(where)
        warnings.warn(
            f"`from {module} import {name}` is deprecated: use {new}", FutureWarning, stacklevel=2
        )
        return found

    return __getattr__


# the layout of 2026-11-27 moved the target protocol into evo.target
__getattr__ = forwarding(__name__, {"protocol": "evo.target.protocol"})

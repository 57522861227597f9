"""Lazy package attributes (PEP 562): ``skytriage.<task>.run`` without importing torch,
OpenCV or scikit-learn until it is used, so that ``skytriage --help`` stays fast."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, modules: dict[str, tuple[str, ...]]
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for a package exporting ``modules``' names.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    modules : dict
        Sub-module (relative to ``package``) → names it exports.
    """
    where = {name: f"{package}.{module}" for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(where[name]), name)

    def __dir__() -> list[str]:
        return sorted(where)

    return __getattr__, __dir__, sorted(where)

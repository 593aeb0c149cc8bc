"""Methods: vanilla and every way of skipping work at sampling time, one file each (base.py says how).

Every module of this package is imported here, so each method registers itself; nothing lists them by hand.
"""

from __future__ import annotations

import importlib
import pkgutil

from ablate.methods.base import (REGISTRY, Knobs, Method, build, check_base_support, defaults, get, knobs,
                                 parse_knobs, run_name, source)

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["REGISTRY", "Knobs", "Method", "build", "check_base_support", "defaults", "get", "knobs", "parse_knobs",
           "run_name", "source"]

"""An import-only stand-in for torchvision: EBM-BB's toy trainer imports torchvision (``torchvision.utils``,
``datasets``, ``transforms``) at module level but never calls it on the toy path. The CPU build of torch here
cannot load torchvision's compiled operators, so the real package does not import. Any use raises."""

import types


class _Missing:
    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise RuntimeError(f"torchvision stub: {self._name}.{attr} is not available (toy path only)")

    def __call__(self, *a, **k):
        raise RuntimeError(f"torchvision stub: {self._name} is not available (toy path only)")


def _module(name):
    m = types.ModuleType(f"torchvision.{name}")

    def getattr_(attr):
        if attr.startswith("__"):  # introspection (inspect, pickle) must see a plain module
            raise AttributeError(attr)
        return _Missing(f"{name}.{attr}")

    m.__getattr__ = getattr_
    return m


import sys as _sys  # noqa: E402

for _n in ("utils", "datasets", "transforms", "models"):
    _mod = _module(_n)
    globals()[_n] = _mod
    _sys.modules[f"torchvision.{_n}"] = _mod

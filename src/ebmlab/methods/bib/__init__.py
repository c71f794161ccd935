"""BiB — energy-based models trained with bidirectional bounds, as a small package: ``bounds.py`` holds the bound
objects (two lower bounds of the generator's entropy, three upper sides of the energy's loss), ``method.py`` the
method that composes one of each (:class:`BiB`), its Config, options and registered pairings. The method's
docstring is in ``method.py``.
"""

from .bounds import LOWER_BOUNDS, UPPER_BOUNDS, DiffusionUpper, GPUpper, JacobianLower, LowerBound, MILower, OneSided, \
    UpperBound
from .method import BIB_METHODS, BiB, BiBConfig, BiBJacDiff, BiBMiDiff, BiBMiGp, BiBOneSided

__all__ = ["BIB_METHODS", "LOWER_BOUNDS", "UPPER_BOUNDS", "BiB", "BiBConfig", "BiBJacDiff", "BiBMiDiff", "BiBMiGp",
           "BiBOneSided", "DiffusionUpper", "GPUpper", "JacobianLower", "LowerBound", "MILower", "OneSided",
           "UpperBound"]

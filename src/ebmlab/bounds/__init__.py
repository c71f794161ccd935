"""Shared maths as pure functions: entropy lower bounds, KL upper bounds, ELBO/IWAE, KALE,
the pull-away term and the differentiable optimiser used for unrolled look-aheads.

Import from the submodules (``ebmlab.bounds.entropy``, ``ebmlab.bounds.elbo``, ...).
"""

"""Architectures only (no losses)."""

from .mlp import BoundedExpertHead, mlp

__all__ = ["BoundedExpertHead", "mlp"]

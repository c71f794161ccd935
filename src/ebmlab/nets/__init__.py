"""Architectures only (no losses)."""

from .mlp import BoundedExpertHead, ScaledTanh, mlp

__all__ = ["BoundedExpertHead", "ScaledTanh", "mlp"]
